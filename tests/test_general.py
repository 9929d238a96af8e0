"""The forgetting check: the general reference set (examples/general) loads in every format and template, eval.py
--general_eval writes the general delta into metrics.json and warns on an over-trained model, and sft.py logs
eval_general_loss during training."""

import contextlib
import io
import json
import logging
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import ROOT, load_script, run_sft, write_json
from trl import TrlParser

sft = load_script("sft")
ev = load_script("eval")
GENERAL = ROOT / "examples" / "general"
# A few general examples keep the runs on the tiny model short; the real set is checked for loading below.
SMALL_SET = [{"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}
             for question, answer in [
                 ("Why do we sleep?", "Sleep lets the body repair itself and the brain store memories."),
                 ("Name three fruits.", "Apples, bananas and oranges."),
                 ("Translate into French: \"Good night.\"", "Bonne nuit."),
                 ("What is 12 times 3?", "12 × 3 = 36."),
                 ("Write a haiku about snow.", "Soft snow on the roofs\nfootsteps vanish in the white\nthe town holds "
                                               "its breath")]]


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def as_format(record, data_format):
    """One messages record in another format sft.py and eval.py read (None where the format cannot hold it)."""
    messages = record["messages"]
    single = len(messages) == 2 and messages[0]["role"] == "user"
    if data_format == "messages":
        return {"messages": messages}
    if data_format == "sharegpt":
        names = {"user": "human", "assistant": "gpt", "system": "system"}
        return {"conversations": [{"from": names[m["role"]], "value": m["content"]} for m in messages]}
    if data_format == "conversational prompt-completion":
        return {"prompt": messages[:-1], "completion": messages[-1:]}
    if not single:
        return None
    if data_format == "prompt-completion":
        return {"prompt": messages[0]["content"], "completion": messages[1]["content"]}
    return {"instruction": messages[0]["content"], "input": "", "output": messages[1]["content"]}  # alpaca


def test_generator_output_is_committed_and_the_splits_are_disjoint(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("general_generate", GENERAL / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    instruct_train = ROOT / "examples" / "instruct" / "train.json"
    shutil.copy(instruct_train, tmp_path / "instruct_train.json")
    generate.main(tmp_path, tmp_path / "instruct_train.json")
    for ours, committed in [(tmp_path / "test.jsonl", GENERAL / "test.jsonl"),
                            (tmp_path / "train.jsonl", GENERAL / "train.jsonl"),
                            (tmp_path / "instruct_train.json", instruct_train)]:  # the mix is refreshed, not doubled
        assert ours.read_text() == committed.read_text(), "rerun python examples/general/generate.py"
    test, train = read_jsonl(GENERAL / "test.jsonl"), read_jsonl(GENERAL / "train.jsonl")
    prompts = lambda records: {json.dumps(r["messages"][:-1]) for r in records}  # noqa: E731
    assert not prompts(test) & prompts(train)
    assert len(test) >= 200 and len({r["category"] for r in test}) >= 12 and len({r["language"] for r in test}) >= 4


@pytest.mark.parametrize("template", ["chat", "mistral", "llama2", "alpaca", "none"])
def test_general_set_loads_in_every_template(tokenizer, template):
    """sft.py tokenizes every example (ending in one EOS, with answer tokens to learn) and eval.py renders them all."""
    tok = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    if template in sft.PROMPT_TEMPLATES:
        tok.chat_template = sft.PROMPT_TEMPLATES[template]
    raw = sft.load_raw_dataset(str(GENERAL))
    test = raw[sft.pick_split(raw, "test")]
    args = SimpleNamespace(completion_only_loss=None, max_length=1024)
    extra = SimpleNamespace(too_long="truncate", prompt_template=template)
    tokenized, stats = sft.tokenize_dataset(test, tok, sft.detect_format(test.column_names, "general"), args, extra)
    assert stats["kept"] == stats["examples"] == len(test) and stats["too_long"] == 0
    assert all(ids[-1] == tok.eos_token_id for ids in tokenized["input_ids"])
    assert all(any(mask) for mask in tokenized["completion_mask"])
    rows = ev.build_rows(ev.load_records(str(GENERAL), None, "test"), tok, "general")
    assert len(rows) == len(test) and all(row["prompt"] and row["reference"] for row in rows)


@pytest.mark.parametrize("data_format", ["messages", "sharegpt", "conversational prompt-completion",
                                         "prompt-completion", "alpaca"])
def test_general_set_loads_in_every_format(tokenizer, tmp_path, data_format):
    pairs = [(r, converted) for r in read_jsonl(GENERAL / "test.jsonl") if (converted := as_format(r, data_format))]
    path = write_json(tmp_path / "general.jsonl", [converted for _, converted in pairs], lines=True)
    dataset = sft.load_raw_dataset(str(path))["train"]
    args = SimpleNamespace(completion_only_loss=None, max_length=1024)
    extra = SimpleNamespace(too_long="truncate", prompt_template="chat")
    _, stats = sft.tokenize_dataset(dataset, tokenizer, sft.detect_format(dataset.column_names, str(path)), args, extra)
    assert stats["kept"] == len(pairs) > 150
    rows = ev.build_rows(ev.load_records(str(path), None, "test"), tokenizer, str(path))
    assert [row["reference"] for row in rows] == [r["messages"][-1]["content"] for r, _ in pairs]


# --- a deliberately over-trained tiny model: sft.py logs the general loss, eval.py warns -----------------------------


@contextlib.contextmanager
def info_lines(name):
    """The INFO lines of a script's logger inside the block (pytest's caplog lives per test, the fixture per module)."""
    stream, script_logger = io.StringIO(), logging.getLogger(name)
    handler, level = logging.StreamHandler(stream), script_logger.level
    script_logger.addHandler(handler)
    script_logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        script_logger.removeHandler(handler)
        script_logger.setLevel(level)


@pytest.fixture(scope="module")
def overtrained(tmp_path_factory, tiny_model_dir):
    """A base that knows the general set (the tiny model fitted to it), then over-trained on one repeated answer.

    A random model cannot forget anything (any training lowers its perplexity everywhere), hence the first run."""
    folder = tmp_path_factory.mktemp("overtrained")
    general = write_json(folder / "general.jsonl", SMALL_SET, lines=True)
    common = ["--per_device_train_batch_size", "5", "--learning_rate", "1e-2", "--logging_steps", "10",
              "--max_length", "64"]
    run_sft("--model_name_or_path", tiny_model_dir, "--dataset_name", general, "--output_dir", folder / "knows",
            "--max_steps", "20", "--eval_strategy", "no", *common)
    train = write_json(folder / "data" / "train.json",
                       [{"instruction": f"Say it {i}.", "input": "", "output": "Okay okay okay."} for i in range(15)])
    out = folder / "model"
    with info_lines("sft") as log:
        run_sft("--model_name_or_path", folder / "knows", "--dataset_name", train, "--output_dir", out, "--max_steps",
                "30", "--eval_strategy", "steps", "--eval_steps", "10", "--save_strategy", "steps", "--save_steps",
                "10", "--load_best_model_at_end", "True", "--metric_for_best_model", "eval_general_loss",
                "--general_eval_dataset", general, *common)
    return SimpleNamespace(out=out, general=general, log=log.getvalue())


def test_sft_logs_the_general_eval_loss_next_to_the_task_loss(overtrained):
    log = json.loads((overtrained.out / "trainer_state.json").read_text())["log_history"]
    task = [entry for entry in log if "eval_loss" in entry]
    general = [entry for entry in log if "eval_general_loss" in entry]
    assert len(task) >= 3 and len(general) >= 3
    # TRL's token accuracy of the general set is named as general, never mixed into the task's entry
    assert all(key.startswith("eval_general_") for entry in general for key in entry if key.startswith("eval_"))
    state = json.loads((overtrained.out / "trainer_state.json").read_text())
    assert state["best_metric"] == min(entry["eval_general_loss"] for entry in general[:3])  # chosen on general loss
    assert "eval_general_loss" in json.loads((overtrained.out / "all_results.json").read_text())
    assert "general eval 5 examples" in overtrained.log


def test_eval_reports_the_general_delta_and_warns_when_the_model_forgot(overtrained, tmp_path, capsys, caplog):
    data = write_json(tmp_path / "test.json", [{"instruction": "Say it 99.", "input": "", "output": "Okay okay okay."}])
    ev.main(TrlParser([ev.EvalArguments]).parse_args_and_config(
        ["--model_name_or_path", str(overtrained.out), "--dataset", str(data), "--compare_base", "--metrics",
         "perplexity,rouge", "--max_new_tokens", "4", "--general_dataset", str(overtrained.general),
         "--general_generations", "2", "--output_dir", str(tmp_path / "eval")])[0])
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["general_perplexity"] > 1.05 * metrics["base"]["general_perplexity"]
    assert metrics["general_perplexity_change"] == pytest.approx(
        metrics["general_perplexity"] / metrics["base"]["general_perplexity"] - 1)
    assert metrics["general_forgetting"] is True and "general_rougeL_change" in metrics
    out = capsys.readouterr().out
    assert "| general_perplexity |" in out and "General ability on" in out
    assert "clearly worse than its base on general instructions" in caplog.text
    assert len(read_jsonl(tmp_path / "eval" / "general_predictions.jsonl")) == 2


def test_no_warning_without_forgetting_and_a_flag_turns_the_check_off(tiny_model_dir, tmp_path, caplog):
    general = write_json(tmp_path / "general.jsonl", SMALL_SET, lines=True)
    base = dict(model_name_or_path=tiny_model_dir, dataset=str(general), compare_base=True,
                base_model=tiny_model_dir, metrics="perplexity", general_dataset=str(general),
                general_generations=0)
    ev.main(ev.EvalArguments(**base, output_dir=str(tmp_path / "same")))
    metrics = json.loads((tmp_path / "same" / "metrics.json").read_text())
    assert metrics["general_perplexity_change"] == pytest.approx(0, abs=1e-6)
    assert metrics["general_forgetting"] is False
    assert "clearly worse" not in caplog.text
    ev.main(ev.EvalArguments(**base, output_dir=str(tmp_path / "off"), general_eval=False))
    assert "general_perplexity" not in json.loads((tmp_path / "off" / "metrics.json").read_text())


def test_missing_general_set_is_a_clear_error_only_when_asked_for(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(ev, "__file__", str(tmp_path / "eval.py"))  # no examples/general beside the script either
    args = ev.EvalArguments(model_name_or_path=tiny_model_dir, dataset="x", general_eval=True)
    with pytest.raises(SystemExit, match="--general_eval: no general reference set"):
        ev.general_dataset_path(args)
    assert ev.general_dataset_path(ev.EvalArguments(model_name_or_path=tiny_model_dir, compare_base=True)) is None
    assert ev.general_dataset_path(ev.EvalArguments(model_name_or_path=tiny_model_dir)) is None  # off by default


@pytest.mark.parametrize("too_long", ["drop", "truncate"])
def test_the_token_count_is_of_what_trains(tokenizer, too_long):
    """tokens/s and the Data: line count the kept examples' tokens: dropped ones once counted too (1.47M reported for
    0.7M trained on a real tool-calling run)."""
    raw = sft.load_raw_dataset(str(GENERAL))
    test = raw[sft.pick_split(raw, "test")]
    args = SimpleNamespace(completion_only_loss=None, max_length=64)
    extra = SimpleNamespace(too_long=too_long, prompt_template="chat")
    tokenized, stats = sft.tokenize_dataset(test, tokenizer, sft.detect_format(test.column_names, "general"), args,
                                            extra)
    assert stats["too_long"] > 0 and stats["tokens"] == sum(map(len, tokenized["input_ids"]))
    assert stats["tokens"] <= 64 * stats["kept"]
