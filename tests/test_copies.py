"""Blocks repeated across the standalone scripts stay identical to their one original.

A copy is marked by a comment line above it (only comments or blank lines in between):
    # copy of sft.py:convert_gguf — keep identical (tests/test_copies.py)
    # copies of training_data.py:FINQA_SANDBOX_* — keep identical (tests/test_copies.py)
    # copies of sft.py:SHAREGPT_ROLES..chat_messages — keep identical (tests/test_copies.py)
naming the original script and one or more comma-separated top-level functions or constants: a name, a shell-style
pattern, or a range FIRST..LAST, whose whole text (comments included) must match from FIRST's first line to LAST's
last line. Every top-level name defined in two scripts must be such a copy, or be listed in DIFFERENT_ON_PURPOSE."""

import ast
import fnmatch
import re
from collections import defaultdict
from functools import lru_cache

import pytest
from conftest import ROOT

SCRIPTS = ("sft.py", "eval.py", "training_data.py", "create_mixed_dataset.py", "export.py")
MARKER = re.compile(r"^# cop(?:y|ies) of (\w+\.py):(\S+) — keep identical \(tests/test_copies\.py\)$")
# Same name, different job: each script's own logger, entry point, arguments and way to turn its rows into messages.
DIFFERENT_ON_PURPOSE = {"logger", "main", "parse_arguments", "to_messages"}


def script_lines(script):
    return (ROOT / script).read_text(encoding="utf-8").splitlines()


@lru_cache(maxsize=None)
def top_level_blocks(script):
    """{name: (first line, last line) of the top-level def or assignment, comments above it excluded} of a script."""
    blocks = {}
    for node in ast.parse((ROOT / script).read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef):
            names = [node.name]
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [target.id for target in targets if isinstance(target, ast.Name)]
        else:
            continue
        for name in names:
            blocks[name] = (node.lineno, node.end_lineno)
    return blocks


def expand(pattern, original):
    """The names a marker's pattern covers, each with the span (first name, last name) whose text is compared."""
    blocks = top_level_blocks(original)
    if ".." in pattern:
        first, last = pattern.split("..")
        assert first in blocks and last in blocks, f"{original} defines no {first} or no {last}"
        return [(name, (first, last)) for name in blocks if blocks[first][0] <= blocks[name][0] <= blocks[last][0]]
    return [(name, (name, name)) for name in sorted(fnmatch.filter(blocks, pattern))]


def marked_copies():
    """(copy script, original script, name, span) for every name every marker covers."""
    found = []
    for script in SCRIPTS:
        lines = script_lines(script)
        blocks = top_level_blocks(script)
        for number, line in enumerate(lines, 1):
            match = MARKER.match(line)
            if not match:
                continue
            original, patterns = match.groups()
            for pattern in patterns.split(","):
                covered = expand(pattern, original)
                assert covered, f"{script}:{number}: {original} defines nothing named {pattern}"
                for name, span in covered:
                    assert name in blocks, f"{script}:{number}: the copy of {original}:{name} is missing"
                    found.append((script, original, name, span))
            first = min(blocks[name][0] for name, _ in expand(patterns.split(",")[0], script))
            between = lines[number:first - 1]
            assert all(not text.strip() or text.startswith("#") for text in between), \
                f"{script}:{number}: the marker must sit right above the copy"
    return found


COPIES = marked_copies()


def span_text(script, span):
    blocks = top_level_blocks(script)
    return "\n".join(script_lines(script)[blocks[span[0]][0] - 1:blocks[span[1]][1]])


@pytest.mark.parametrize("script, original, name, span", COPIES, ids=[f"{c[0]}:{c[2]}" for c in COPIES])
def test_copy_matches_its_original(script, original, name, span):
    assert span_text(script, (name, name)) == span_text(original, (name, name)), \
        f"{script}:{name} differs from {original}:{name}; change the original and copy it over"
    assert span_text(script, span) == span_text(original, span), \
        f"{script}: {span[0]}..{span[1]} differs from {original}'s (comments count too)"


def test_every_repeated_name_is_a_marked_copy():
    defined = defaultdict(list)
    for script in SCRIPTS:
        for name in top_level_blocks(script):
            defined[name].append(script)
    marked = {(script, name) for script, _, name, _ in COPIES}
    originals = {(original, name) for _, original, name, _ in COPIES}
    unmarked = [
        f"{name} in {', '.join(scripts)}"
        for name, scripts in defined.items()
        if len(scripts) > 1 and name not in DIFFERENT_ON_PURPOSE
        and any((script, name) not in marked | originals for script in scripts)
    ]
    assert unmarked == [], "defined in several scripts without a copy marker: " + "; ".join(unmarked)


def test_the_known_shared_blocks_are_covered():
    covered = {(script, name) for script, _, name, _ in COPIES}
    for script in ("eval.py", "training_data.py", "create_mixed_dataset.py"):
        assert (script, "fail") in covered
    for name in ("cache_dir", "resolve_model", "convert_gguf", "load_tokenizer", "read_json_records", "SEQ2SEQ_TEMPLATE",
                 "model_kind", "encoder_ids", "decoder_labels", "SHAREGPT_ROLES", "parse_tool_call", "chat_messages"):
        assert ("eval.py", name) in covered
    assert ("create_mixed_dataset.py", "read_json_records") in covered
    for name in ("FINQA_SANDBOX_BOOTSTRAP", "finqa_check_code", "finqa_run_code", "finqa_answers_match",
                 "finqa_extract_code"):
        assert ("eval.py", name) in covered
