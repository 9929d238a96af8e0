"""Blocks repeated across the standalone scripts stay identical to their one original.

A copy is marked by the comment line right above it:
    # copy of sft.py:convert_gguf — keep identical (tests/test_copies.py)
    # copies of training_data.py:FINQA_SANDBOX_* — keep identical (tests/test_copies.py)
naming the original script and one or more comma-separated top-level functions or constants (shell-style patterns
allowed). Every top-level name defined in two scripts must be such a copy, or be listed in DIFFERENT_ON_PURPOSE."""

import ast
import fnmatch
import re
from collections import defaultdict
from functools import lru_cache

import pytest
from conftest import ROOT

SCRIPTS = ("sft.py", "eval.py", "training_data.py", "create_mixed_dataset.py")
MARKER = re.compile(r"^# cop(?:y|ies) of (\w+\.py):(\S+) — keep identical \(tests/test_copies\.py\)$")
# Same name, different job: each script's own logger, entry point and way to turn its rows into chat messages.
DIFFERENT_ON_PURPOSE = {"logger", "main", "to_messages"}


@lru_cache(maxsize=None)
def top_level_blocks(script):
    """{name: source lines of the top-level def or assignment (comment lines above it excluded)} of one script."""
    source = (ROOT / script).read_text(encoding="utf-8")
    lines = source.splitlines()
    blocks = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef):
            names = [node.name]
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [target.id for target in targets if isinstance(target, ast.Name)]
        else:
            continue
        for name in names:
            blocks[name] = (node.lineno, "\n".join(lines[node.lineno - 1:node.end_lineno]))
    return blocks


def marked_copies():
    """(copy script, original script, name) for every name every marker covers."""
    found = []
    for script in SCRIPTS:
        lines = (ROOT / script).read_text(encoding="utf-8").splitlines()
        blocks = top_level_blocks(script)
        original_blocks = {}
        for number, line in enumerate(lines, 1):
            match = MARKER.match(line)
            if not match:
                continue
            original, patterns = match.groups()
            original_blocks.setdefault(original, top_level_blocks(original))
            for pattern in patterns.split(","):
                names = sorted(fnmatch.filter(original_blocks[original], pattern))
                assert names, f"{script}:{number}: {original} defines nothing named {pattern}"
                for name in names:
                    assert name in blocks, f"{script}:{number}: the copy of {original}:{name} is missing"
                    found.append((script, original, name))
            first = min(blocks[name][0] for name in fnmatch.filter(blocks, patterns.split(",")[0]))
            assert first == number + 1, f"{script}:{number}: the marker must sit right above the copy"
    return found


COPIES = marked_copies()


@pytest.mark.parametrize("script, original, name", COPIES, ids=[f"{s}:{n}" for s, _, n in COPIES])
def test_copy_matches_its_original(script, original, name):
    copy_text = top_level_blocks(script)[name][1]
    original_text = top_level_blocks(original)[name][1]
    assert copy_text == original_text, f"{script}:{name} differs from {original}:{name}; change the original and " \
                                       "copy it over, or drop the marker if they must differ"


def test_every_repeated_name_is_a_marked_copy():
    defined = defaultdict(list)
    for script in SCRIPTS:
        for name in top_level_blocks(script):
            defined[name].append(script)
    marked = {(script, name) for script, _, name in COPIES}
    originals = {(original, name) for _, original, name in COPIES}
    unmarked = [
        f"{name} in {', '.join(scripts)}"
        for name, scripts in defined.items()
        if len(scripts) > 1 and name not in DIFFERENT_ON_PURPOSE
        and any((script, name) not in marked | originals for script in scripts)
    ]
    assert unmarked == [], "defined in several scripts without a copy marker: " + "; ".join(unmarked)


def test_the_known_shared_blocks_are_covered():
    covered = {(script, name) for script, _, name in COPIES}
    for script in ("eval.py", "training_data.py", "create_mixed_dataset.py"):
        assert (script, "fail") in covered
    for name in ("cache_dir", "resolve_model", "convert_gguf", "load_tokenizer", "read_json_records", "SEQ2SEQ_TEMPLATE",
                 "model_kind", "encoder_ids", "decoder_labels"):
        assert ("eval.py", name) in covered
    assert ("create_mixed_dataset.py", "read_json_records") in covered
    for name in ("FINQA_SANDBOX_BOOTSTRAP", "finqa_check_code", "finqa_run_code", "finqa_answers_match",
                 "finqa_extract_code"):
        assert ("eval.py", name) in covered
