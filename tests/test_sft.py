"""sft.py: data loading and formats, templates and EOS, the length policy, bad inputs, and short training runs."""

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import load_script, run_script, run_sft, write_json

sft = load_script("sft")

PROMPT_COMPLETION = {"prompt": "What is 2 + 3?", "completion": "2 + 3 = 5."}
EXAMPLES = {
    "prompt-completion": PROMPT_COMPLETION,
    "conversational prompt-completion": {"prompt": [{"role": "user", "content": "Hi there"}],
                                         "completion": [{"role": "assistant", "content": "Hello!"}]},
    "messages": {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                              {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"},
                              {"role": "assistant", "content": "Goodbye."}]},
    "alpaca": {"instruction": "Translate to German.", "input": "good morning", "output": "Guten Morgen"},
    "sharegpt": {"conversations": [{"from": "human", "value": "Name a color."}, {"from": "gpt", "value": "Blue."}]},
    "text": {"text": "Plain pretraining text."},
}


def tokenize_one(tokenizer, example, template="chat", completion_only_loss=None, max_length=1024, too_long="truncate"):
    from datasets import Dataset

    tokenizer = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    if template in sft.PROMPT_TEMPLATES:
        tokenizer.chat_template = sft.PROMPT_TEMPLATES[template]
    dataset = Dataset.from_list([example])
    data_format = sft.detect_format(dataset.column_names, "test")
    args = SimpleNamespace(completion_only_loss=completion_only_loss, max_length=max_length)
    extra = SimpleNamespace(too_long=too_long, prompt_template=template)
    tokenized, stats = sft.tokenize_dataset(dataset, tokenizer, data_format, args, extra)
    return tokenizer, tokenized, stats


@pytest.mark.parametrize("template", ["chat", "mistral", "llama2", "alpaca", "none"])
@pytest.mark.parametrize("name", list(EXAMPLES))
def test_every_example_ends_with_exactly_one_eos(tokenizer, template, name):
    tok, tokenized, _ = tokenize_one(tokenizer, EXAMPLES[name], template)
    ids = tokenized[0]["input_ids"]
    assert ids[-1] == tok.eos_token_id
    assert ids[-2] != tok.eos_token_id
    assert tokenized[0]["completion_mask"][-1] == 1  # the model is trained to stop


def test_mistral_template_renders_the_documented_format(tokenizer):
    tok, tokenized, _ = tokenize_one(tokenizer, PROMPT_COMPLETION, "mistral")
    text = tok.decode(tokenized[0]["input_ids"])
    assert text == f"{tok.bos_token}[INST] What is 2 + 3? [/INST] 2 + 3 = 5.{tok.eos_token}"


def test_loss_only_on_completion_by_default(tokenizer):
    tok, tokenized, _ = tokenize_one(tokenizer, PROMPT_COMPLETION)
    ids, mask = tokenized[0]["input_ids"], tokenized[0]["completion_mask"]
    trained = tok.decode([i for i, m in zip(ids, mask) if m])
    assert trained == f"2 + 3 = 5.{tok.eos_token}"
    _, full, _ = tokenize_one(tokenizer, PROMPT_COMPLETION, completion_only_loss=False)
    assert all(full[0]["completion_mask"])


def test_multi_turn_messages_train_every_assistant_turn(tokenizer):
    tok, tokenized, _ = tokenize_one(tokenizer, EXAMPLES["messages"])
    ids, mask = tokenized[0]["input_ids"], tokenized[0]["completion_mask"]
    trained = tok.decode([i for i, m in zip(ids, mask) if m])
    assert "Hello." in trained and "Goodbye." in trained
    assert "Bye" not in trained.replace("Goodbye", "") and "Be brief" not in trained


@pytest.mark.parametrize("too_long,kept", [("truncate", 1), ("drop", 0)])
def test_long_examples_are_counted_and_truncated_or_dropped(tokenizer, too_long, kept):
    long = {"prompt": "Hi", "completion": "word " * 200}
    _, tokenized, stats = tokenize_one(tokenizer, long, max_length=64, too_long=too_long)
    assert stats["too_long"] == 1 and stats["kept"] == kept
    if kept:
        assert len(tokenized[0]["input_ids"]) == 64


@pytest.mark.parametrize("columns,expected", [
    (["messages", "source"], "messages"), (["prompt", "completion", "id"], "prompt-completion"),
    (["instruction", "input", "output"], "alpaca"), (["instruction", "output"], "alpaca"), (["text"], "text"),
    (["conversations"], "sharegpt"),
])
def test_format_detection(columns, expected):
    assert sft.detect_format(columns, "data.json") == expected


def test_unknown_columns_list_what_was_found():
    with pytest.raises(SystemExit, match=r"data.json: unrecognized columns \['answer', 'question'\]; expected"):
        sft.detect_format(["question", "answer"], "data.json")


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv", ".parquet"])
def test_local_files_load(tmp_path, suffix):
    import pandas as pd

    records = [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(5)]
    path = tmp_path / f"data{suffix}"
    if suffix == ".csv":
        pd.DataFrame(records).to_csv(path, index=False)
    elif suffix == ".parquet":
        pd.DataFrame(records).to_parquet(path)
    else:
        write_json(path, records, lines=suffix == ".jsonl")
    dataset = sft.load_raw_dataset(str(path))
    assert list(dataset) == ["train"] and dataset["train"][4] == records[4]


def test_save_to_disk_folder_and_split_files_load(tmp_path):
    from datasets import Dataset, DatasetDict

    DatasetDict({"train": Dataset.from_list([PROMPT_COMPLETION] * 3),
                 "validation": Dataset.from_list([PROMPT_COMPLETION])}).save_to_disk(tmp_path / "saved")
    assert sorted(sft.load_raw_dataset(str(tmp_path / "saved"))) == ["train", "validation"]
    write_json(tmp_path / "files" / "train.jsonl", [PROMPT_COMPLETION], lines=True)
    write_json(tmp_path / "files" / "dev.json", [PROMPT_COMPLETION])
    dataset = sft.load_raw_dataset(str(tmp_path / "files"))
    assert sft.pick_split(dataset, "validation") == "dev"


def test_invalid_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(PROMPT_COMPLETION) + "\n{not json\n")
    with pytest.raises(SystemExit, match=r"bad.jsonl:2: invalid JSON line"):
        sft.load_raw_dataset(str(path))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no such file or folder"):
        sft.load_raw_dataset(str(tmp_path / "missing.json"))


def tiny_command(model, data, output_dir, *extra):
    return ["sft.py", "--model_name_or_path", model, "--dataset_name", data, "--output_dir", output_dir,
            "--max_steps", "2", "--per_device_train_batch_size", "2", "--logging_steps", "1", "--max_length", "128",
            "--learning_rate", "1e-3", *extra]


@pytest.fixture(scope="module")
def train_file(tmp_path_factory):
    records = [{"instruction": f"Add {i} and {i + 1}.", "input": "", "output": f"{2 * i + 1}."} for i in range(24)]
    return str(write_json(tmp_path_factory.mktemp("data") / "train.json", records))


@pytest.mark.parametrize("peft", [True, False])
def test_training_writes_a_complete_output_folder(tiny_model_dir, train_file, tmp_path, peft):
    out = tmp_path / "out"
    extra = ["--use_peft"] if peft else []
    result = run_script(*tiny_command(tiny_model_dir, train_file, out, "--eval_strategy", "steps",
                                      "--eval_steps", "1", *extra))
    assert result.returncode == 0, result.stderr[-3000:]
    names = set(p.name for p in out.iterdir())
    assert ("adapter_model.safetensors" if peft else "model.safetensors") in names
    assert {"tokenizer.json", "chat_template.jinja", "trainer_state.json", "README.md", "training_loss.png",
            "eval_loss.png"} <= names
    assert not any(name.startswith(".final") for name in names)
    assert "Trainable parameters" in result.stderr and "format alpaca" in result.stderr
    assert "attention eager" in result.stderr  # CPU + rows of at most 256 tokens: the faster attention here
    card = (out / "README.md").read_text()
    assert "train.json" in card and "python sft.py" in card
    # eval.py --compare_base finds the base of both kinds of output: the adapter's config or this card
    assert load_script("eval").trained_from(out) == str(tiny_model_dir)
    log = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert any("loss" in entry for entry in log) and any("eval_loss" in entry for entry in log)
    # a finished model is never overwritten by accident
    again = run_script(*tiny_command(tiny_model_dir, train_file, out, *extra))
    assert again.returncode == 1 and "already holds a finished model" in again.stderr
    assert "Traceback" not in again.stderr


@pytest.mark.parametrize("requested,cuda,packing,max_length,expected", [
    (None, False, False, 192, "eager"),   # short unpacked rows on CPU: the faster attention there
    (None, False, False, 256, "eager"),
    (None, False, True, 192, None),       # packed rows need the fused kernels' position_ids handling
    (None, False, False, 512, None),      # long rows make eager's T^2 scores cost more
    (None, False, False, None, None),
    (None, True, False, 192, None),       # GPUs keep the fused kernels
    ("sdpa", False, False, 192, "sdpa"),  # an explicit choice always wins
])
def test_attention_choice(requested, cuda, packing, max_length, expected):
    assert sft.pick_attention(requested, cuda, packing, max_length) == expected
    assert sft.pick_attention(requested, cuda, packing, max_length, compiled=True) == requested  # compiled: SDPA


def test_prompt_template_saved_and_export_merges_the_adapter(tiny_model_dir, train_file, tmp_path):
    out = tmp_path / "out"
    result = run_script(*tiny_command(tiny_model_dir, train_file, out, "--use_peft", "--prompt_template", "mistral"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[INST]" in (out / "chat_template.jinja").read_text()
    load_script("export").write_merged(out)  # --merge_adapter moved to export.py --merge_only
    assert (out / "merged" / "model.safetensors").exists()
    assert "[INST]" in (out / "merged" / "chat_template.jinja").read_text()
    with pytest.raises(SystemExit, match=r"--merge_adapter moved to export.py: .*export.py --output_dir .* --merge_only"):
        sft.parse_arguments(["--output_dir", str(tmp_path / "again"), "--use_peft", "--merge_adapter"])


def test_resume_gives_the_same_result_as_an_uninterrupted_run(tiny_model_dir, train_file, tmp_path):
    import shutil

    flags = ["--max_steps", "4", "--save_strategy", "steps", "--save_steps", "2", "--use_peft", "--seed", "3"]
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    assert run_script(*tiny_command(tiny_model_dir, train_file, full, *flags)).returncode == 0
    # simulate a run killed after step 2: only its first checkpoint exists
    resumed.mkdir()
    shutil.copytree(full / "checkpoint-2", resumed / "checkpoint-2")
    result = run_script(*tiny_command(tiny_model_dir, train_file, resumed, *flags,
                                      "--resume_from_checkpoint", "True"))
    assert result.returncode == 0, result.stderr[-3000:]

    def losses(folder):
        return [e["loss"] for e in json.loads((folder / "trainer_state.json").read_text())["log_history"]
                if "loss" in e]

    assert losses(resumed) == pytest.approx(losses(full), rel=1e-4)
    from safetensors.torch import load_file

    a, b = load_file(full / "adapter_model.safetensors"), load_file(resumed / "adapter_model.safetensors")
    assert all((a[k] - b[k]).abs().max() < 1e-5 for k in a)


BAD_INPUTS = [
    ("missing", [], "no such file or folder"),
    ("bad_line", [], "train.jsonl:2: invalid JSON line"),
    ("empty", [], "is empty"),
    ("columns", [], "unrecognized columns ['answer', 'question']"),
    ("ok", ["--resume_from_checkpoint", "True"], "no checkpoint-* folder"),
    ("ok", ["--load_in_8bit", "--use_peft"], "needs a CUDA GPU"),
    ("ok", ["--load_in_4bit"], "trains adapters only: add --use_peft"),
    ("ok", ["--push_to_hub"], "needs a Hugging Face token"),
    ("no_tokenizer", [], "has no usable tokenizer"),
    ("ok", ["--init_adapter", "/nonexistent"], "no adapter_config.json"),
]
for _reporter in ("wandb", "tensorboard"):
    _packages = sft.REPORTER_PACKAGES[_reporter]  # sft.py's own table: the check and this test cannot drift apart
    if not any(importlib.util.find_spec(package) for package in _packages):
        BAD_INPUTS.append(("ok", ["--report_to", _reporter], f"pip install {_packages[0]}"))


def bad_input_command(setup, flags, tiny_model_dir, tmp_path):
    import shutil

    data = tmp_path / "train.jsonl"
    model = tiny_model_dir
    if setup == "bad_line":
        data.write_text(json.dumps(PROMPT_COMPLETION) + "\n{oops\n")
    elif setup == "empty":
        data.write_text("")
    elif setup == "columns":
        write_json(data, [{"question": "q", "answer": "a"}], lines=True)
    elif setup in ("ok", "no_tokenizer"):
        write_json(data, [PROMPT_COMPLETION] * 4, lines=True)
    if setup == "no_tokenizer":
        model = tmp_path / "model"
        shutil.copytree(tiny_model_dir, model)
        for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
            (model / name).unlink(missing_ok=True)
    return tiny_command(model, data, tmp_path / "out", *flags)


@pytest.mark.parametrize("setup,flags,message", BAD_INPUTS)
def test_bad_inputs_fail_with_one_line_and_leave_nothing(tiny_model_dir, tmp_path, setup, flags, message):
    # In this process: the command line's exact code path (parser, then main) without ~15 s of imports per case.
    # The environment is restored afterwards, since TrainingArguments exports settings for accelerate.
    command = bad_input_command(setup, flags, tiny_model_dir, tmp_path)
    with pytest.raises(SystemExit) as stop:
        run_sft(*command[1:])
    error = str(stop.value.code)
    assert error.startswith("error: ") and "\n" not in error and message in error, error
    assert not sft.is_finished_model(tmp_path / "out")


def test_a_bad_input_exits_1_with_one_line_and_no_traceback(tiny_model_dir, tmp_path):
    result = run_script(*bad_input_command("bad_line", [], tiny_model_dir, tmp_path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "train.jsonl:2: invalid JSON line" in last
    assert not sft.is_finished_model(tmp_path / "out")


def test_qlora_runs_on_cpu_and_its_adapter_loads_in_eval(tiny_model_dir, train_file, tmp_path):
    out = tmp_path / "qlora"
    result = run_script(*tiny_command(tiny_model_dir, train_file, out, "--use_peft", "--load_in_4bit",
                                      "--max_steps", "1"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "QLoRA on CPU" in result.stderr
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA"
    evaluated = run_script("eval.py", "--model_name_or_path", out, "--dataset", train_file, "--split", "train",
                           "--max_samples", "2", "--max_new_tokens", "4", "--metrics", "exact_match")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]


@pytest.mark.parametrize("flag", ["--use_dora", "--use_rslora"])
def test_dora_and_rslora_train(tiny_model_dir, train_file, tmp_path, flag):
    out = tmp_path / "out"
    run_sft(*tiny_command(tiny_model_dir, train_file, out, "--use_peft", flag, "--max_steps", "1")[1:])  # no start-up
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["use_dora" if flag == "--use_dora" else "use_rslora"] is True


def test_unreachable_hub_dataset_is_a_clear_error(tiny_model_dir, tmp_path):
    result = run_script(*tiny_command(tiny_model_dir, "someone/no-such-dataset", tmp_path / "out"),
                        env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    assert result.returncode == 1 and "could not load it from the Hugging Face hub" in result.stderr
    assert "Traceback" not in result.stderr


def test_export_data_writes_messages_jsonl(tmp_path, train_file, tiny_model_dir):
    run_sft("--model_name_or_path", tiny_model_dir, "--dataset_name", train_file,  # in-process: no start-up
            "--export_data", tmp_path / "exported")
    first = json.loads((tmp_path / "exported" / "train.jsonl").read_text().splitlines()[0])
    assert first["messages"][-1] == {"role": "assistant", "content": "1."}


def test_gguf_alias_converts_once_to_plain_safetensors(default_model_dir):
    config = json.loads((Path(default_model_dir) / "config.json").read_text())
    assert "quantization_config" not in config
    assert (Path(default_model_dir) / "model.safetensors").exists()
    assert sft.resolve_model("smollm2-135m-instruct") == default_model_dir
    assert sft.resolve_model("HuggingFaceTB/SmolLM2-135M") == "HuggingFaceTB/SmolLM2-135M"  # hub ids pass through


def test_columns_with_mixed_types_load_as_text(tmp_path):
    # FinQA gold answers are numbers or "yes"/"no": Arrow cannot hold both in one column
    path = write_json(tmp_path / "mixed.jsonl", [{"prompt": "a", "completion": "b", "gold": 0.5},
                                                 {"prompt": "c", "completion": "d", "gold": "yes"}], lines=True)
    dataset = sft.load_raw_dataset(str(path))["train"]
    assert dataset["gold"] == ["0.5", "yes"]


def test_push_uploads_the_finished_folder_as_it_is(tmp_path, monkeypatch):
    """--push_to_hub uploads the output folder sft.py finished (its card, the adapter's base named by its alias),
    without checkpoints or hidden temporaries; trainer.push_to_hub would save the model again over both."""
    import huggingface_hub

    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, private=None, exist_ok=False):
            calls["create"] = (repo_id, private, exist_ok)
            return huggingface_hub.RepoUrl(f"https://huggingface.co/me/{repo_id}")

        def upload_folder(self, **kwargs):
            calls["upload"] = kwargs

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setenv("HF_TOKEN", "secret")
    args = SimpleNamespace(hub_token=None, hub_model_id=None, hub_private_repo=True)
    sft.push_output(SimpleNamespace(hub_model_id=None), tmp_path / "my-run", args)
    assert calls["token"] == "secret" and calls["create"] == ("my-run", True, True)
    upload = calls["upload"]
    assert upload["repo_id"] == "me/my-run" and upload["folder_path"] == str(tmp_path / "my-run")
    assert {"checkpoint-*", ".*"} <= set(upload["ignore_patterns"])
