"""Every top-level script stands alone. Its PEP 723 header (for `uv run sft.py ...` or `pipx run`) names each package
it imports, pinned as requirements.txt pins it; and a copy of it alone in an empty folder (no sibling scripts, no
examples/) answers --help and runs a tiny job from files it is given. The lonely copies of sft.py and export.py train
and export a tiny LoRA run in tests/test_export.py, whose tests need that run anyway."""

import ast
import importlib.metadata
import importlib.util
import json
import os
import re
import sys
import tomllib
from unittest import mock

import pytest
import yaml
from conftest import ROOT, load_script, lonely_copy, run_script, write_json

SCRIPTS = ("sft.py", "eval.py", "export.py", "training_data.py", "create_mixed_dataset.py")
HEADER = re.compile(r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$")  # PEP 723's own regex
# Opt-in integrations: imported only where used, with a one-line install hint, so a header does not pull them in.
OPTIONAL = {"wandb", "tensorboard", "bitsandbytes", "vllm"}
INSTALLED_BY = {"psutil": "accelerate", "tqdm": "transformers"}  # imported directly, installed by a listed package
# Needed though not imported: transformers reads the default model's GGUF file with it.
READ_THROUGH = {"gguf"}


def normalized(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def header(script):
    """The script's PEP 723 metadata, read as the PEP's reference implementation reads it."""
    blocks = [m for m in HEADER.finditer((ROOT / script).read_text()) if m.group("type") == "script"]
    assert len(blocks) == 1, f"{script} needs exactly one `# /// script` block"
    content = "".join(line[2:] if line.startswith("# ") else line[1:]
                      for line in blocks[0].group("content").splitlines(keepends=True))
    return tomllib.loads(content)


def requirement_pins():
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    pins = [line.split("#")[0].strip() for line in lines]
    return {normalized(pin.split("==")[0]): pin for pin in pins if pin}


def imported_modules(script):
    """(third-party modules imported at the top level, those imported anywhere) by the script, as top-level names."""
    tree = ast.parse((ROOT / script).read_text())
    top, anywhere = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module]
        else:
            continue
        roots = {name.split(".")[0] for name in names} - set(sys.stdlib_module_names)
        anywhere |= roots
        if node in tree.body:
            top |= roots
    return top, anywhere


@pytest.mark.parametrize("script", SCRIPTS)
def test_header_pins_what_requirements_txt_pins(script):
    metadata = header(script)
    assert metadata["requires-python"] == ">=3.11"
    pins = requirement_pins()
    for dependency in metadata["dependencies"]:
        name = normalized(re.match(r"[A-Za-z0-9_.-]+", dependency).group())
        assert pins.get(name) == dependency, f"{script}: {dependency}, requirements.txt: {pins.get(name)}"


@pytest.mark.parametrize("script", SCRIPTS)
def test_header_names_every_package_the_script_imports(script):
    declared = {normalized(re.match(r"[A-Za-z0-9_.-]+", d).group()) for d in header(script)["dependencies"]}
    distributions = importlib.metadata.packages_distributions()
    top, anywhere = imported_modules(script)
    needed = set()
    for module in sorted(anywhere - OPTIONAL):
        if module in INSTALLED_BY:
            assert normalized(INSTALLED_BY[module]) in declared, f"{script} imports {module}"
        else:
            needed.add(normalized(distributions[module][0]))
    assert needed <= declared, f"{script} imports {needed - declared} without naming them in its header"
    assert declared - needed <= READ_THROUGH, f"{script}'s header names {declared - needed - READ_THROUGH} unused"
    assert not top & OPTIONAL, f"{script} imports {top & OPTIONAL} at the top; import optional packages where used"


@pytest.mark.parametrize("script", [script for script in SCRIPTS if script != "sft.py"])
def test_a_lonely_copy_answers_help(script, tmp_path):
    result = run_script(lonely_copy(script, tmp_path), "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("usage:") and "Traceback" not in result.stderr


def test_a_lonely_sft_help_is_trl_parsers_text_without_loading_peft(tmp_path, monkeypatch):
    """sft.py --help keeps peft (and what it pulls in) from loading, for start-up time; the text must not change."""
    sft = load_script("sft")  # imported as a module: the whole stack, peft included
    assert sys.modules.get("peft") is not None
    monkeypatch.setenv("COLUMNS", "120")  # argparse wraps to the terminal's width
    parser = sft.make_parser()
    parser.prog = "sft.py"
    result = run_script(lonely_copy("sft.py", tmp_path), "--help", cwd=tmp_path, env={"COLUMNS": "120"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == parser.format_help()


@pytest.mark.parametrize("script, argv, message", [
    ("sft", ["--no_such_flag"], "not used by the HfArgumentParser: ['--no_such_flag']"),
    ("sft", ["--max_steps", "many"], "argument --max_steps/--max-steps: invalid int value: 'many'"),
    ("sft", ["--config", "missing.yaml"], "No such file or directory: 'missing.yaml'"),
    ("eval", ["--no_such_flag"], "not used by the HfArgumentParser: ['--no_such_flag']"),
    ("eval", ["--max_new_tokens", "many"], "argument --max_new_tokens/--max-new-tokens: invalid int value: 'many'"),
    ("eval", ["--config", "missing.yaml"], "No such file or directory: 'missing.yaml'"),
    ("export", ["--output_dir", "run", "--no_such_flag"], "not used by the HfArgumentParser: ['--no_such_flag']"),
    ("export", ["--output_dir"], "argument --output_dir/--output-dir: expected one argument"),
])
def test_bad_arguments_are_one_line_errors(script, argv, message):
    with pytest.raises(SystemExit) as raised:
        load_script(script).parse_arguments(argv)
    text = str(raised.value)
    assert text.startswith("error: ") and message in text and "\n" not in text, text
    assert text.endswith(f"; see python {script}.py --help")


@pytest.mark.parametrize("flag", ["--export", "--export_type=q4_0"])
def test_sft_points_the_old_export_flags_to_export_py(flag):
    with pytest.raises(SystemExit, match=f"error: {flag.split('=')[0]} moved to export.py: .*python export.py"):
        load_script("sft").parse_arguments(["--output_dir", "out", flag, "gguf"])


def test_a_lonely_eval_scores_given_predictions(tmp_path):
    rows = [{"prompt": "2 + 2?", "reference": "4", "prediction": "4"},
            {"prompt": "Capital of France?", "reference": "Paris", "prediction": "Rome"}]
    write_json(tmp_path / "rows.jsonl", rows, lines=True)
    result = run_script(lonely_copy("eval.py", tmp_path), "--predictions", "rows.jsonl", "--metrics",
                        "exact_match,rouge", "--output_dir", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["exact_match"] == 0.5 and (tmp_path / "out" / "predictions.jsonl").exists()


def test_a_lonely_training_data_collects_given_skill_files(tmp_path):
    weather = ("#### Prompt:\nweather(location)\nCurrent weather for a place.\n\n#### Prompt Examples:\n"
               "### User: What's the weather in Berlin?\n### Assistant: weather(location='Berlin')\n\n"
               "### User: weather in Rome\n### Assistant: weather(location='Rome')\n")
    other = "#### Prompt:\nother()\nNo skill applies.\n\n#### Prompt Examples:\n### User: thanks\n### Assistant: other()\n"
    (tmp_path / "weather_examples.txt").write_text(weather)
    (tmp_path / "other_examples.txt").write_text(other)
    result = run_script(lonely_copy("training_data.py", tmp_path), "-t", "--files", "other_examples.txt",
                        "weather_examples.txt", "--test_fraction", "0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    records = json.loads(result.stdout)
    assert [r["completion"] for r in records] == ["other()", 'weather(location="Berlin")', 'weather(location="Rome")']


def test_a_lonely_create_mixed_dataset_mixes_given_files(tmp_path):
    rows = [{"question": f"Question {i}?", "answer": f"Answer {i}."} for i in range(20)]
    write_json(tmp_path / "qa.jsonl", rows, lines=True)
    config = {"sources": [{"name": "qa.jsonl", "label": "qa", "proportion": 1.0,
                           "columns": {"user": "question", "assistant": "answer"}}]}
    (tmp_path / "mix.yaml").write_text(yaml.safe_dump(config))
    result = run_script(lonely_copy("create_mixed_dataset.py", tmp_path), "--config", "mix.yaml", "--output_dir",
                        "out", "--offline", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "mix_summary.json").read_text())
    assert [(s["source"], s["taken"]) for s in summary["sources"]] == [("qa", 20)]


@pytest.mark.parametrize("script, argv, message", [
    ("eval", ["--metrics", "sql_exact_match"], "--metrics sql_exact_match needs the sqlglot package: "
                                               "pip install sqlglot==30.30.0"),
    ("sft", ["--plots", "True"], "--plots needs the matplotlib package: pip install matplotlib==3.11.2 (or turn "
                                 "--plots off)"),
])
def test_a_missing_optional_package_is_a_one_line_hint_before_any_model_loads(script, argv, message, tmp_path,
                                                                                monkeypatch):
    module = load_script(script)
    missing = {"eval": "sqlglot", "sft": "matplotlib"}[script]
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *rest: None if name == missing else
                        find_spec(name, *rest))
    data = write_json(tmp_path / "rows.jsonl", [{"prompt": "a", "reference": "b", "prediction": "b"}], lines=True)
    source = ["--predictions", data] if script == "eval" else ["--dataset_name", data, "--output_dir", tmp_path / "out"]
    # the environment is restored afterwards: TrainingArguments exports settings for accelerate
    with mock.patch.dict(os.environ, {"HF_TOKEN": ""}), pytest.raises(SystemExit) as raised:
        arguments = module.parse_arguments([str(arg) for arg in source + argv])
        module.main(*arguments) if script == "sft" else module.main(arguments)
    assert str(raised.value) == f"error: {message}"
