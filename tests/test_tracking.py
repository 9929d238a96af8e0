"""Experiment tracking and a newcomer's traps (issue 17): W&B with the real client offline and TensorBoard from sft.py
(metrics, eval_perplexity, prediction samples, the model artifact), eval.py's prompt overrides, --save_steps /
--eval_steps, accelerate --cpu, make help, the DATA -> DATA_OUT flow, MPS, HF_API_KEY."""

import json
import math
import os
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
from conftest import (ROOT, load_script, offline_wandb_env, read_tensorboard, read_wandb_runs, run_script,
                      write_json)

sft = load_script("sft")
ev = load_script("eval")

RECORDS = [{"prompt": f"What is {i} + {i}?", "completion": f"{i} + {i} = {2 * i}."} for i in range(16)]
SECRET = "hf_not_a_real_token_0123456789"


# ------------------------------------------------------------------------------------------ sft.py end to end


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory, tiny_model_dir):
    """One short LoRA run with everything on: W&B offline and TensorBoard, --log_model, --log_predictions 2, and
    --save_steps/--eval_steps without their strategies (the trap: they used to be ignored)."""
    folder = tmp_path_factory.mktemp("tracked")
    data = write_json(folder / "data" / "train.jsonl", RECORDS, lines=True)
    out = folder / "out"
    result = run_script(
        "sft.py", "--model_name_or_path", tiny_model_dir, "--dataset_name", data, "--output_dir", out, "--use_peft",
        "--max_steps", "2", "--per_device_train_batch_size", "4", "--logging_steps", "1", "--save_steps", "1",
        "--eval_steps", "1", "--eval_split_size", "0.125", "--report_to", "wandb,tensorboard", "--log_model",
        "--log_predictions", "2",
        env={**offline_wandb_env(folder / "wb"), "HF_API_KEY": SECRET, "HF_TOKEN": ""})
    assert result.returncode == 0, result.stderr[-4000:]
    return result, out, folder / "wb"


def test_explicit_save_and_eval_steps_take_effect(tracked_run):
    result, out, _ = tracked_run
    assert "--save_steps 1 given: save_strategy is now 'steps' (was 'epoch')" in result.stderr
    assert "--eval_steps 1 given: eval_strategy is now 'steps' (was 'no')" in result.stderr
    assert (out / "checkpoint-1").is_dir() and (out / "checkpoint-2").is_dir()
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert [entry["step"] for entry in history if "eval_loss" in entry][:2] == [1, 2]


def test_eval_perplexity_is_logged_and_in_the_model_card(tracked_run):
    _, out, _ = tracked_run
    evaluations = [e for e in json.loads((out / "trainer_state.json").read_text())["log_history"] if "eval_loss" in e]
    assert evaluations and all(e["eval_perplexity"] == pytest.approx(math.exp(e["eval_loss"])) for e in evaluations)
    assert "| eval_perplexity |" in (out / "README.md").read_text()


def test_prediction_samples_are_written_at_each_evaluation(tracked_run):
    _, out, _ = tracked_run
    for step in (1, 2):
        rows = [json.loads(line) for line in (out / f"predictions_step{step}.jsonl").read_text().splitlines()]
        assert len(rows) == 2 and all(row["step"] == step for row in rows)
        for row in rows:
            # the fixed eval prompts: the rendered chat prompt, the reference completion, the model's greedy answer
            record = next(r for r in RECORDS if r["prompt"] in row["prompt"])
            assert row["reference"] == record["completion"] and row["prompt"].endswith("assistant\n")
            assert isinstance(row["prediction"], str)


def test_wandb_gets_metrics_the_predictions_table_and_the_adapter(tracked_run):
    _, out, wandb_dir = tracked_run
    (run,) = read_wandb_runs(wandb_dir)
    logged = {key for entry in run["history"] for key in entry}
    assert {"train/loss", "eval/loss", "eval/perplexity", "train/global_step"} <= logged
    tables = sorted((run["dir"] / "files" / "media" / "table" / "eval").glob("predictions_*.table.json"))
    assert len(tables) == 2  # one per evaluation; the final evaluate() at the same step adds none
    table = json.loads(tables[-1].read_text())
    assert table["columns"] == ["step", "prompt", "reference", "prediction"] and len(table["data"]) == 2
    expected = [json.loads(line) for line in (out / "predictions_step2.jsonl").read_text().splitlines()]
    assert [dict(zip(table["columns"], row)) for row in table["data"]] == expected

    (model,) = [artifact for artifact in run["artifacts"] if artifact["type"] == "model"]
    # adapters only (LoRA), with the tokenizer and the chat template it was trained with; no checkpoints or run logs
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "chat_template.jinja",
            "README.md"} <= set(model["files"])
    assert not {"trainer_state.json", "model.safetensors", "training_loss.png"} & set(model["files"])
    assert not any(name.startswith(("checkpoint-", "predictions_step")) for name in model["files"])
    staged = Path(model["files"]["adapter_model.safetensors"])
    assert staged.read_bytes() == (out / "adapter_model.safetensors").read_bytes()


def test_tensorboard_gets_metrics_and_prediction_text(tracked_run):
    _, out, _ = tracked_run
    logged = read_tensorboard(out / "runs")
    assert "eval/perplexity" in logged and "train/loss" in logged
    texts = dict(logged["eval/predictions"])
    assert set(texts) == {1, 2} and texts[2].startswith("| step | prompt | reference | prediction |")


def test_hf_api_key_is_accepted_and_never_printed(tracked_run):
    result, _, _ = tracked_run
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize("env,expected", [
    ({"HF_TOKEN": "a"}, "a"),
    ({"HF_API_KEY": "b"}, "b"),
    ({"HF_TOKEN": "a", "HF_API_KEY": "b"}, "a"),
    ({}, None),
])
def test_hub_token_comes_from_hf_token_or_hf_api_key(env, expected):
    clean = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HF_API_KEY", "HUGGING_FACE_HUB_TOKEN")}
    with mock.patch.dict(os.environ, {**clean, **env}, clear=True):
        assert sft.hub_token_from_env() == expected
        assert os.environ.get("HF_TOKEN") == expected  # exported, so huggingface_hub's own downloads use it too


# ------------------------------------------------------------------------------ bad tracking setups, early


def tiny_command(model, data, out, *flags):
    return ["sft.py", "--model_name_or_path", model, "--dataset_name", data, "--output_dir", out, *flags]


@pytest.mark.parametrize("flags,env,message", [
    (["--log_model"], {}, "--log_model uploads the model to Weights & Biases: add --report_to wandb"),
    (["--report_to", "wandb"], {"WANDB_MODE": "online", "WANDB_API_KEY": ""}, "run `wandb login`"),
    (["--save_strategy", "epoch", "--save_steps", "5"], {}, "--save_steps 5 has no effect with --save_strategy epoch"),
])
def test_sft_tracking_mistakes_fail_before_training(tiny_model_dir, tmp_path, flags, env, message):
    data = write_json(tmp_path / "train.jsonl", RECORDS, lines=True)
    command = [str(arg) for arg in tiny_command(tiny_model_dir, data, tmp_path / "out", *flags)]
    environment = {**offline_wandb_env(tmp_path / "wb"), **env}
    with mock.patch.dict(os.environ, environment), mock.patch.object(sft.sys, "argv", command), \
            pytest.raises(SystemExit) as stop:
        sft.main(*sft.make_parser().parse_args_and_config(command[1:]))
    error = str(stop.value.code)
    assert error.startswith("error: ") and "\n" not in error and message in error, error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("reporter", ["wandb", "tensorboard"])
def test_a_missing_reporter_package_is_still_a_one_line_error(tiny_model_dir, tmp_path, reporter):
    real_find_spec = sft.importlib.util.find_spec
    packages = sft.REPORTER_PACKAGES[reporter]
    hidden = lambda name, *args: None if name in packages else real_find_spec(name, *args)  # noqa: E731
    data = write_json(tmp_path / "train.jsonl", RECORDS, lines=True)
    command = [str(arg) for arg in tiny_command(tiny_model_dir, data, tmp_path / "out", "--report_to", reporter)]
    arguments = sft.make_parser().parse_args_and_config(command[1:])
    with mock.patch.object(sft.importlib.util, "find_spec", hidden), pytest.raises(SystemExit) as stop:
        sft.main(*arguments)
    assert str(stop.value.code).startswith(f"error: --report_to {reporter}: the {packages[0]} package is not "
                                           f"installed; pip install {packages[0]}")
    with mock.patch.object(ev.importlib.util, "find_spec", hidden), pytest.raises(SystemExit) as stop:
        ev.parse_reporters(reporter)
    assert f"pip install {ev.REPORTERS[reporter]}" in str(stop.value.code)


# ------------------------------------------------------------------------------------ --save_steps / --eval_steps


@pytest.mark.parametrize("strategy,given,expected", [
    ("epoch", {"save_steps": 2}, "steps"),                      # --save_steps alone: the default epoch gives way
    ("epoch", {"save_steps": 2, "save_strategy": 1}, "steps"),  # recipe says epoch, the command line save_steps
    ("no", {"save_steps": 2, "save_strategy": 1}, "steps"),
    ("epoch", {"save_steps": 1, "save_strategy": 2}, "epoch"),  # recipe save_steps, command line --save_strategy
    ("epoch", {}, "epoch"),
    ("epoch", {"save_steps": 2, "save_strategy": 2}, "error"),  # both on the command line: contradictory
    ("no", {"save_steps": 1, "save_strategy": 1}, "error"),     # both in the recipe
])
def test_apply_step_flags(strategy, given, expected):
    args = SimpleNamespace(save_strategy=strategy, save_steps=500, eval_strategy="no", eval_steps=None)
    if expected == "error":
        with pytest.raises(SystemExit, match="has no effect with --save_strategy"):
            sft.apply_step_flags(args, given)
        return
    sft.apply_step_flags(args, given)
    assert args.save_strategy == expected and args.eval_strategy == "no"


def test_given_flags_reads_the_command_line_and_the_recipe(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("save_strategy: epoch\neval_steps: 10\n")
    given = sft.given_flags(["--config", str(recipe), "--save_steps=4", "--eval-strategy", "no"])
    assert given == {"config": 2, "save_steps": 2, "eval_strategy": 2, "save_strategy": 1, "eval_steps": 1}


# --------------------------------------------------------------------------------- accelerate launch --cpu


@pytest.mark.parametrize("launcher,expected", [
    (["/v/bin/python", "/v/bin/accelerate", "launch", "--cpu", "--num_processes", "2", "sft.py", "--x"], 2),
    (["/v/bin/python", "/v/bin/accelerate", "launch", "--cpu", "--num_processes=4", "sft.py"], 4),
    (["accelerate", "launch", "--config_file", "CONFIG", "sft.py", "--num_processes", "8"], 3),
    (["/v/bin/python", "/v/bin/accelerate", "launch", "sft.py", "--num_processes", "8"], None),  # sft.py's own args
    (["python", "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2", "/r/sft.py"], 2),
    (["bash", "-c", "python sft.py --num_processes 2"], None),
    (["make", "instruct-train"], None),
])
def test_requested_processes_reads_the_launcher_command(tmp_path, launcher, expected):
    config = tmp_path / "cpu.yaml"
    config.write_text("distributed_type: MULTI_CPU\nuse_cpu: true\nnum_processes: 3\n")
    launcher = [str(config) if arg == "CONFIG" else arg for arg in launcher]
    assert sft.requested_processes(launcher, "sft.py") == expected


def test_accelerate_cpu_with_several_processes_fails_with_the_fix():
    launcher = ["/v/bin/python", "/v/bin/accelerate", "launch", "--cpu", "--num_processes", "2", "sft.py"]
    with mock.patch.object(sft.sys, "argv", ["sft.py"]), pytest.raises(SystemExit) as stop:
        sft.check_process_count(1, launcher)
    error = str(stop.value.code)
    assert "asked for 2 processes but started 1" in error and "accelerate launch --multi_gpu --num_processes 2" in error
    sft.check_process_count(2, launcher)  # really two processes: fine
    with mock.patch.object(sft.sys, "argv", ["sft.py"]):
        sft.check_process_count(1, ["make", "instruct-train"])


# -------------------------------------------------------------------------------------------- devices, copies


@pytest.mark.parametrize("cuda,mps,macos14,device,use_cpu,bf16", [
    (False, True, True, "mps", False, True),     # Apple Silicon, macOS 14+: the GPU, bf16
    (False, True, False, "mps", False, False),   # older macOS: the GPU in fp32
    (False, False, False, "cpu", True, None),    # CPU: bf16 only with bf16 units (cpu_has_fast_bf16)
])
def test_apple_silicon_trains_and_evaluates_on_mps(cuda, mps, macos14, device, use_cpu, bf16):
    import torch

    with mock.patch.object(torch.cuda, "is_available", return_value=cuda), \
            mock.patch.object(torch.backends.mps, "is_available", return_value=mps), \
            mock.patch.object(torch.backends.mps, "is_macos_or_newer", return_value=macos14):
        assert sft.pick_device() == device and ev.pick_device() == device
        parser = sft.make_parser()
        assert parser.get_default("use_cpu") is use_cpu
        assert parser.get_default("bf16") is (sft.cpu_has_fast_bf16() if bf16 is None else bf16)
        assert parser.get_default("gradient_checkpointing") is False


# ------------------------------------------------------------------------------------- eval.py prompt overrides


@pytest.fixture(scope="module")
def eval_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("eval-data")
    records = [{"messages": [{"role": "system", "content": "Old system prompt."},
                             {"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4"}]},
               {"prompt": "Name a color.", "completion": "Blue."}]
    return write_json(folder / "test.jsonl", records, lines=True)


@pytest.mark.parametrize("overrides,system,starts", [
    ({}, None, "<|im_start|>system\nOld system prompt."),
    ({"system_prompt": "Answer in one word."}, "Answer in one word.", "<|im_start|>system\nAnswer in one word."),
    ({"system_prompt_file": "FILE"}, "From a file.\nSecond line.", "<|im_start|>system\nFrom a file.\nSecond line."),
    ({"prompt_template": "mistral", "system_prompt": "Be brief."}, "Be brief.", "<|im_start|>[INST] Be brief.\n\n"),
])
def test_system_prompt_and_template_reach_every_prompt_and_metrics(tiny_model_dir, eval_data, tmp_path, overrides,
                                                                      system, starts):
    if overrides.get("system_prompt_file") == "FILE":
        (tmp_path / "system.txt").write_text("From a file.\nSecond line.\n")
        overrides = {"system_prompt_file": str(tmp_path / "system.txt")}
    out = tmp_path / "eval"
    ev.main(ev.EvalArguments(model_name_or_path=tiny_model_dir, dataset=str(eval_data), metrics="exact_match",
                             max_new_tokens=2, output_dir=str(out), report_to="tensorboard", **overrides))
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    # the tiny model's tokenizer has SmolLM2's template; mistral's starts with BOS, which is <|im_start|> here
    assert all(row["prompt"].startswith(starts) for row in rows[:1])
    if system is not None:
        assert all(row["prompt"].count(system) == 1 and "Old system prompt" not in row["prompt"] for row in rows)
    recorded = json.loads((out / "metrics.json").read_text())["prompt"]
    assert recorded["system_prompt"] == system and recorded["first_prompt"] == rows[0]["prompt"]
    assert recorded["template"] == overrides.get("prompt_template", "chat (saved with the model)")
    text = dict(read_tensorboard(out / "runs")["eval/predictions"])[0]
    assert text.startswith("| ") and "exact_match" in text.splitlines()[0]


@pytest.mark.parametrize("overrides,message", [
    ({"system_prompt": "a", "system_prompt_file": "x.txt"}, "pass one of them"),
    ({"system_prompt_file": "/nonexistent/system.txt"}, "--system_prompt_file /nonexistent/system.txt: no such file"),
    ({"system_prompt_file": "EMPTY"}, "the file is empty"),
])
def test_prompt_override_mistakes_fail_with_one_line(tiny_model_dir, eval_data, tmp_path, overrides, message):
    if overrides.get("system_prompt_file") == "EMPTY":
        (tmp_path / "empty.txt").write_text("\n")
        overrides = {"system_prompt_file": str(tmp_path / "empty.txt")}
    with pytest.raises(SystemExit) as stop:
        ev.main(ev.EvalArguments(model_name_or_path=tiny_model_dir, dataset=str(eval_data), **overrides))
    assert str(stop.value.code).startswith("error: ") and message in str(stop.value.code)


def test_shipped_skill_prompts_exist():
    prompts = ROOT / "examples" / "skills" / "prompts"
    assert {"smollm2_default.txt", "voice_assistant.txt"} <= {p.name for p in prompts.iterdir()}
    assert all(p.read_text().strip() for p in prompts.glob("*.txt"))


# ---------------------------------------------------------------------------------------------------- Makefile


def test_make_help_prints_every_line_of_two_line_comments():
    result = run_script("make", "--no-print-directory", "help")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("  finqa-data "))
    assert "FINQA_CONTEXT=full puts the whole report in the prompt" in lines[first + 1]
    assert lines[first + 1].startswith(" " * 21) and lines[first + 2].startswith("  finqa-train ")


@pytest.mark.parametrize("case", ["instruct", "finance"])
def test_train_and_eval_read_what_the_data_step_wrote(case, tmp_path):
    """make -n: the data step exports DATA to DATA_OUT first, then training and evaluation read DATA_OUT."""
    data_out = tmp_path / "prepared"
    result = run_script("make", "-n", "--no-print-directory", f"{case}-train", f"{case}-eval", f"DATA_OUT={data_out}",
                        "OUT=out")
    assert result.returncode == 0, result.stderr
    commands = [line for line in result.stdout.splitlines() if "sft.py" in line or "eval.py" in line]
    assert f"--export_data {data_out}" in commands[0]
    assert f"--dataset_name {data_out} " in commands[1] and f"--dataset {data_out} " in commands[2]
    assert len(commands) == 3  # the data step runs once for both


DATA_STEPS = {"instruct": "--export_data", "finqa": "training_data.py", "skills": "training_data.py",
              "tools": "--tools_data", "orca": "create_mixed_dataset.py", "finance": "--export_data",
              "text2sql": "training_data.py", "text2sql2": "training_data.py", "spider": "training_data.py"}


@pytest.mark.parametrize("case", DATA_STEPS)
@pytest.mark.parametrize("data_out,given,runs", [("missing", "", True), ("existing", "", False),
                                                 ("existing", "DATA=x", True), ("existing", "DATA_ARGS=--y", True),
                                                 ("empty", "", True)])
def test_every_family_builds_missing_data_before_train_and_eval(case, data_out, given, runs, tmp_path):
    """One rule for every family: train/tune/eval run <case>-data first (once) when DATA_OUT is missing or empty (an
    interrupted data step's mkdir -p) or DATA / DATA_ARGS are given; an existing DATA_OUT is read as it is (no silent
    rebuild of downloaded or teacher data)."""
    folder = tmp_path / data_out
    if data_out != "missing":
        folder.mkdir()
    if data_out == "existing":
        (folder / "train.jsonl").write_text("{}\n")
    elif data_out == "empty":
        (folder / ".train.json.tmp").write_text("{")  # a half-written temporary does not make the folder built
    targets = [f"{case}-train", f"{case}-eval"] + ([f"{case}-tune"] if case in ("instruct", "finqa", "spider") else [])
    result = run_script("make", "-n", "--no-print-directory", *targets, f"DATA_OUT={folder}", "OUT=out",
                        *([given] if given else []))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    data_steps = [i for i, line in enumerate(lines) if DATA_STEPS[case] in line and "sft.py --config" not in line]
    assert len(data_steps) == (1 if runs else 0), result.stdout
    if runs:  # before any training or evaluation
        assert data_steps[0] < min(i for i, line in enumerate(lines) if "sft.py --config" in line or "eval.py" in line)


@pytest.mark.parametrize("case,given,runs", [("finqa", "FINQA_DIR=x", True), ("finqa", "CONVFINQA_DIR=x", True),
                                              ("finqa", "FINQA_CONTEXT=full", True), ("spider", "SQL_DB=x", False),
                                              ("instruct", "SQL_DB=x", False)])
def test_a_case_s_own_data_inputs_on_the_command_line_rebuild_its_data(case, given, runs, tmp_path):
    """FinQA's inputs are not only DATA: FINQA_DIR, CONVFINQA_DIR and FINQA_CONTEXT on the command line run the data
    step (once) before an existing DATA_OUT is read; another case's inputs do not. Spider's SQL_DB does not either:
    spider-eval executes on it (make spider-eval SQL_DB=... must not rebuild the data from the default DATA)."""
    folder = tmp_path / "existing"
    folder.mkdir()
    (folder / "train.jsonl").write_text("{}\n")
    targets = [f"{case}-train", f"{case}-eval"] + ([f"{case}-tune"] if case in ("instruct", "finqa", "spider") else [])
    result = run_script("make", "-n", "--no-print-directory", *targets, f"DATA_OUT={folder}", "OUT=out", given)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    data_steps = [i for i, line in enumerate(lines) if DATA_STEPS[case] in line and "sft.py --config" not in line]
    assert len(data_steps) == (1 if runs else 0), result.stdout
    if runs:
        assert f" {given.split('=')[1]} " in " ".join(lines[data_steps[0]:data_steps[0] + 3])  # its continued lines
        assert data_steps[0] < min(i for i, line in enumerate(lines) if "sft.py --config" in line or "eval.py" in line)
    if case == "spider":
        assert "--sql_database_dir x" in result.stdout  # evaluation runs on the databases given


def test_make_help_states_the_data_rule_and_multi_node():
    help_text = run_script("make", "--no-print-directory", "help").stdout
    assert "runs <case>-data first when DATA_OUT does not exist yet" in help_text
    assert "or is empty" in help_text and "FINQA_DIR" in help_text
    assert "NNODES=N NODE_RANK=0..N-1 MASTER_ADDR=" in help_text


def test_a_model_without_chat_template_evaluates_with_prompt_template(tiny_model_dir, eval_data, tmp_path):
    import shutil

    model = tmp_path / "base-model"
    shutil.copytree(tiny_model_dir, model)
    (model / "chat_template.jinja").unlink()
    arguments = dict(model_name_or_path=str(model), dataset=str(eval_data), metrics="exact_match", max_new_tokens=2,
                     output_dir=str(tmp_path / "eval"))
    with pytest.raises(SystemExit, match="pass --prompt_template"):
        ev.main(ev.EvalArguments(**arguments))
    ev.main(ev.EvalArguments(**arguments, prompt_template="alpaca"))
    prompt = json.loads((tmp_path / "eval" / "metrics.json").read_text())["prompt"]["first_prompt"]
    assert "### Instruction:\nWhat is 2 + 2?\n\n### Response:\n" in prompt


def test_a_full_model_artifact_holds_the_model_not_the_run(tmp_path):
    names = ["model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
             "chat_template.jinja", "README.md", "trainer_state.json", "all_results.json", "training_args.bin",
             "training_loss.png", "predictions_step3.jsonl", ".final-partial"]
    for name in names:
        (tmp_path / name).write_text("x")
    (tmp_path / "checkpoint-3").mkdir()
    (tmp_path / "merged").mkdir()
    assert [path.name for path in sft.model_files(tmp_path)] == sorted(names[:7])
