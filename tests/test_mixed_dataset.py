"""create_mixed_dataset.py: prompt erasure, proportions, determinism, config mixes, bad input, atomic output."""

import json
import logging

import datasets
import pytest
import yaml
from conftest import ROOT, load_script

cm = load_script("create_mixed_dataset")

TEACHER_PROMPT = "You are an AI assistant. Think step by step and justify each step of your answer."


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    # Tests never touch the network: hub checks answer "unreachable" at once.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(cm, "hub_reachable", lambda: False)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def qa_rows(prefix, n):
    return [{"question": f"{prefix} question {i}?", "answer": f"{prefix} answer {i}."} for i in range(n)]


def sharegpt_rows(n, with_system=True):
    rows = []
    for i in range(n):
        turns = [{"from": "system", "value": TEACHER_PROMPT}] if with_system and i % 3 else []
        turns += [{"from": "human", "value": f"Teacher task {i}"}, {"from": "gpt", "value": f"Step 1... answer {i}"}]
        rows.append({"conversations": turns})
    return rows


def write_config(tmp_path, sources, **extra):
    path = tmp_path / "mix.yaml"
    path.write_text(yaml.safe_dump({"sources": sources, **extra}))
    return path


def two_source_config(tmp_path, n_a=100, n_b=100, **extra):
    write_jsonl(tmp_path / "a.jsonl", qa_rows("a", n_a))
    write_jsonl(tmp_path / "orca.jsonl", sharegpt_rows(n_b))
    return write_config(tmp_path, [
        {"name": "a.jsonl", "label": "a", "columns": {"user": "question", "assistant": "answer"}, "proportion": 0.6},
        {"name": "orca.jsonl", "label": "orca", "format": "sharegpt", "proportion": 0.4, "erase_prompt": True},
    ], **extra)


def run(tmp_path, *args, out="out"):
    cm.main([*map(str, args), "--output_dir", str(tmp_path / out)])
    return datasets.load_from_disk(str(tmp_path / out)), json.loads((tmp_path / out / "mix_summary.json").read_text())


def all_rows(dataset_dict):
    return [r for split in ("train", "validation") for r in dataset_dict[split]]


# --- prompt erasure ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_system", [True, False])
def test_erasure_on_sharegpt_keeps_user_and_answer(with_system):
    turns = ([{"from": "system", "value": TEACHER_PROMPT}] if with_system else []) + [
        {"from": "human", "value": "What is 6 x 7?"}, {"from": "gpt", "value": "6 x 7 = 42. The answer is 42."}]
    out = cm.to_messages({"conversations": turns}, "sharegpt", {}, erase_prompt=True, system_prompt="Be careful.")
    assert out["messages"] == [{"role": "system", "content": "Be careful."},
                               {"role": "user", "content": "What is 6 x 7?"},
                               {"role": "assistant", "content": "6 x 7 = 42. The answer is 42."}]
    assert out["erased"] is with_system
    assert out["original_system"] == (TEACHER_PROMPT if with_system else "")


def test_without_erasure_the_source_system_prompt_stays():
    turns = [{"from": "system", "value": TEACHER_PROMPT}, {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]
    out = cm.to_messages({"conversations": turns}, "sharegpt", {}, erase_prompt=False, system_prompt="unused")
    assert out["messages"][0] == {"role": "system", "content": TEACHER_PROMPT}
    assert not out["erased"]


def test_column_mapping_with_system_and_joined_user_columns():
    row = {"sys": "Explain like a teacher.", "instruction": "Add the numbers.", "input": "2 and 3", "output": "5"}
    out = cm.to_messages(row, "columns", {"system": "sys", "user": ["instruction", "input"], "assistant": "output"},
                         erase_prompt=True, system_prompt="Generic.")
    assert out["messages"] == [{"role": "system", "content": "Generic."},
                               {"role": "user", "content": "Add the numbers.\n\n2 and 3"},
                               {"role": "assistant", "content": "5"}]
    assert out["erased"]


def test_erasure_counts_and_top_prompts_in_summary(tmp_path, capsys):
    config = two_source_config(tmp_path)
    data, summary = run(tmp_path, "--config", config, "--total_size", 100, "--system_prompt", "Generic prompt.")
    orca = [r for r in all_rows(data) if r["source"] == "orca"]
    assert all(r["messages"][0] == {"role": "system", "content": "Generic prompt."} for r in orca)
    assert all(TEACHER_PROMPT not in m["content"] for r in orca for m in r["messages"])
    erased = next(s for s in summary["sources"] if s["source"] == "orca")["erased"]
    # sharegpt_rows gives two in three records a system turn; erased counts only those.
    assert 0 < erased < len(orca) and erased == summary["erased"]
    assert summary["top_system_prompts_before_erasure"][0] == {"prompt": cm.short(TEACHER_PROMPT, 120),
                                                              "count": erased}
    printed = capsys.readouterr().out
    assert "Most common system prompts before erasure" in printed and f"{erased} record(s)" in printed


# --- proportions, sampling, determinism -------------------------------------------------------------------------------


@pytest.mark.parametrize("total", [7, 100, 333, 1001])
@pytest.mark.parametrize("shares", [(0.5, 0.2, 0.15, 0.15), (1 / 3, 1 / 3, 1 / 3), (0.9, 0.1)])
def test_requested_counts_follow_proportions_within_rounding(total, shares):
    sources = [cm.Source(name=f"s{i}.jsonl", label=f"s{i}", proportion=p) for i, p in enumerate(shares)]
    requested = cm.check_sizes(sources, total)
    assert sum(requested.values()) == total
    for s in sources:
        assert abs(requested[s.label] - total * s.proportion) < 1


def test_mix_honours_proportions_and_writes_messages(tmp_path):
    data, summary = run(tmp_path, "--config", two_source_config(tmp_path), "--total_size", 150)
    rows = all_rows(data)
    assert len(rows) == 150
    assert sum(r["source"] == "a" for r in rows) == 90 and sum(r["source"] == "orca" for r in rows) == 60
    assert [(s["source"], s["requested"], s["available"], s["taken"]) for s in summary["sources"]] == [
        ("a", 90, 100, 90), ("orca", 60, 100, 60)]
    for r in rows:
        assert [m["role"] for m in r["messages"] if m["role"] != "system"] == ["user", "assistant"]


def test_count_and_proportion_together(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", qa_rows("a", 50))
    write_jsonl(tmp_path / "b.jsonl", qa_rows("b", 50))
    config = write_config(tmp_path, [
        {"name": "a.jsonl", "columns": {"user": "question", "assistant": "answer"}, "proportion": 0.5},
        {"name": "b.jsonl", "columns": {"user": "question", "assistant": "answer"}, "count": 12}])
    _, summary = run(tmp_path, "--config", config, "--total_size", 40)
    assert [s["taken"] for s in summary["sources"]] == [20, 12]


def test_same_seed_same_mix_other_seed_other_order(tmp_path):
    config = two_source_config(tmp_path)
    first, _ = run(tmp_path, "--config", config, "--total_size", 80, "--seed", 3, out="one")
    second, _ = run(tmp_path, "--config", config, "--total_size", 80, "--seed", 3, out="two")
    other, _ = run(tmp_path, "--config", config, "--total_size", 80, "--seed", 4, out="three")
    assert first["train"].to_list() == second["train"].to_list()
    assert first["validation"].to_list() == second["validation"].to_list()
    assert first["train"].to_list() != other["train"].to_list()


def test_duplicate_user_turns_across_sources_are_dropped(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", qa_rows("same", 10))
    write_jsonl(tmp_path / "b.jsonl", [{"query": r["question"], "response": "other wording"} for r in
                                       qa_rows("same", 4)] + [{"query": f"new {i}", "response": "x"} for i in range(6)])
    config = write_config(tmp_path, [
        {"name": "a.jsonl", "label": "a", "columns": {"user": "question", "assistant": "answer"}, "proportion": 0.5},
        {"name": "b.jsonl", "label": "b", "columns": {"user": "query", "assistant": "response"}, "proportion": 0.5}])
    data, summary = run(tmp_path, "--config", config, "--total_size", 20, "--validation_size", 0)
    users = [r["messages"][0]["content"] for r in data["train"]]
    assert len(users) == len(set(users)) == 16
    assert [s["duplicates"] for s in summary["sources"]] == [0, 4]


@pytest.mark.parametrize("upsample", [False, True])
def test_small_source_takes_all_and_warns_or_upsamples(tmp_path, caplog, upsample):
    write_jsonl(tmp_path / "big.jsonl", qa_rows("big", 100))
    write_jsonl(tmp_path / "tiny.jsonl", qa_rows("tiny", 5))
    config = write_config(tmp_path, [
        {"name": "big.jsonl", "label": "big", "columns": {"user": "question", "assistant": "answer"}, "proportion": 0.5},
        {"name": "tiny.jsonl", "label": "tiny", "columns": {"user": "question", "assistant": "answer"},
         "proportion": 0.5}])
    flags = ["--allow_upsample"] if upsample else []
    data, summary = run(tmp_path, "--config", config, "--total_size", 20, *flags)
    tiny = [r for r in all_rows(data) if r["source"] == "tiny"]
    assert len(tiny) == (10 if upsample else 5)
    assert summary["sources"][1]["available"] == 5
    assert ("has only 5 rows" in caplog.text) is not upsample


@pytest.mark.parametrize("validation_size, expected", [("0.1", 10), ("7", 7), ("0", 0)])
def test_validation_size_fraction_or_count(tmp_path, validation_size, expected):
    data, _ = run(tmp_path, "--config", two_source_config(tmp_path), "--total_size", 100,
                  "--validation_size", validation_size)
    assert len(data["validation"]) == expected and len(data["train"]) == 100 - expected


# --- default mix, shipped samples and config ------------------------------------------------------------------------


def test_default_mix_reads_shipped_offline_samples(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    data, summary = run(tmp_path)
    assert "OFFLINE SAMPLE" in caplog.text
    assert summary["offline_sample"] is True
    assert [s["source"] for s in summary["sources"]] == ["slimorca", "metamathqa", "gsm8k", "mathinstruct"]
    requested = [s["requested"] for s in summary["sources"]]
    assert requested == [round(summary["total_size"] * p) for p in (0.5, 0.2, 0.15, 0.15)]
    slim = next(s for s in summary["sources"] if s["source"] == "slimorca")
    assert slim["erase_prompt"] and slim["erased"] > 100
    assert all(r["messages"][0]["content"] == cm.DEFAULT_SYSTEM_PROMPT for r in all_rows(data)
               if r["source"] == "slimorca")
    # The shipped MetaMathQA sample repeats some GSM8K questions verbatim, like the real data.
    assert sum(s["duplicates"] for s in summary["sources"]) > 0


def test_offline_flag_skips_the_hub_check(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(cm, "hub_reachable", lambda: pytest.fail("--offline must not contact the hub"))
    run(tmp_path, "--offline", "--total_size", 40)


def test_shipped_example_config_runs(tmp_path):
    config = ROOT / "examples" / "orca" / "mix.yaml"
    assert config.read_text().startswith("# python create_mixed_dataset.py --config examples/orca/mix.yaml")
    data, summary = run(tmp_path, "--config", config)
    assert summary["total_size"] == 300 and len(all_rows(data)) == 300 - sum(s["duplicates"]
                                                                              for s in summary["sources"])


def test_shipped_samples_use_the_real_schemas():
    def first(name):
        return json.loads((ROOT / "examples" / "orca" / name).read_text().splitlines()[0])

    assert {t["from"] for t in first("slimorca_dedup_sample.jsonl")["conversations"]} <= {"system", "human", "gpt"}
    assert set(first("metamathqa_sample.jsonl")) == {"type", "query", "original_question", "response"}
    assert set(first("gsm8k_main_sample.jsonl")) == {"question", "answer"}
    assert set(first("mathinstruct_sample.jsonl")) == {"source", "output", "instruction"}


def test_save_to_disk_folder_as_source(tmp_path):
    datasets.DatasetDict({"train": datasets.Dataset.from_list(qa_rows("disk", 30))}).save_to_disk(str(tmp_path / "d"))
    config = write_config(tmp_path, [{"name": str(tmp_path / "d"), "label": "disk",
                                      "columns": {"user": "question", "assistant": "answer"}, "count": 10}])
    data, _ = run(tmp_path, "--config", config, "--validation_size", 2)
    assert len(data["train"]) == 8 and data["train"][0]["source"] == "disk"


# --- save / load round trip ---------------------------------------------------------------------------------------------


def test_round_trip_through_load_from_disk_and_sft_loader(tmp_path):
    data, _ = run(tmp_path, "--config", two_source_config(tmp_path), "--total_size", 60)
    assert set(data) == {"train", "validation"}
    assert data["train"].column_names == ["messages", "source"]
    for row in all_rows(data):
        assert all(set(m) == {"role", "content"} and m["role"] in {"system", "user", "assistant"}
                   for m in row["messages"])
        assert row["messages"][-1]["role"] == "assistant"
    if not (ROOT / "sft.py").exists():
        pytest.skip("sft.py is not in the repository yet; only the messages format was checked")
    sft = load_script("sft")
    raw = sft.load_raw_dataset(str(tmp_path / "out"))
    assert sft.pick_split(raw, "train") == "train" and sft.pick_split(raw, "validation") == "validation"
    assert sft.detect_format(raw["train"].column_names, "mix") == "messages"
    assert sft.to_messages(raw["train"][0], "messages")["messages"] == data["train"][0]["messages"]
    assert len(raw["validation"]) == len(data["validation"])


# --- bad input ----------------------------------------------------------------------------------------------------------


def bad_config(tmp_path, case):
    write_jsonl(tmp_path / "a.jsonl", qa_rows("a", 20))
    ok = {"name": "a.jsonl", "columns": {"user": "question", "assistant": "answer"}, "proportion": 1.0}
    sources = {
        "missing_file": [{**ok, "name": "missing.jsonl"}],
        "unknown_hub": [{**ok, "name": "nobody/no-such-dataset"}],
        "missing_columns": [{**ok, "columns": {"user": "prompt", "assistant": "answer"}}],
        "sum_above_one": [{**ok, "proportion": 0.7}, {**ok, "label": "b", "proportion": 0.6}],
        "sum_below_one": [{**ok, "proportion": 0.5}],
        "zero_proportion": [{**ok, "proportion": 0}],
        "negative_proportion": [{**ok, "proportion": -0.2}],
        "both_sizes": [{**ok, "count": 5}],
        "unknown_key": [{**ok, "propotion": 1.0}],
        "bad_format": [{**ok, "format": "alpaca"}],
    }[case]
    return write_config(tmp_path, sources)


@pytest.mark.parametrize("case, message", [
    ("missing_file", "unknown source 'missing.jsonl'"),
    ("unknown_hub", "unknown or unreachable source 'nobody/no-such-dataset'"),
    ("missing_columns", "missing column(s) prompt; found question, answer"),
    ("sum_above_one", "proportions sum to 1.300 (> 1)"),
    ("sum_below_one", "proportions sum to 0.500 (< 1)"),
    ("zero_proportion", "proportion 0 must be a number in (0, 1]"),
    ("negative_proportion", "proportion -0.2 must be a number in (0, 1]"),
    ("both_sizes", "give exactly one of `proportion`"),
    ("unknown_key", "unknown key(s) propotion"),
    ("bad_format", "format 'alpaca' is not one of"),
])
def test_bad_config_gives_one_line_error(tmp_path, case, message):
    config = bad_config(tmp_path, case)
    with pytest.raises(SystemExit) as error:
        cm.main(["--config", str(config), "--output_dir", str(tmp_path / "out")])
    text = str(error.value)
    assert text.startswith("error: ") and "\n" not in text and message in text
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content", ["sources: [", "total_size: 5\n", "- just\n- a list\n"])
def test_bad_yaml_or_missing_sources(tmp_path, content):
    (tmp_path / "mix.yaml").write_text(content)
    with pytest.raises(SystemExit, match=r"^error: .*mix\.yaml"):
        cm.main(["--config", str(tmp_path / "mix.yaml"), "--output_dir", str(tmp_path / "out")])


def test_existing_output_needs_overwrite(tmp_path):
    config = two_source_config(tmp_path)
    run(tmp_path, "--config", config, "--total_size", 20)
    with pytest.raises(SystemExit, match="already exists; pass --overwrite"):
        run(tmp_path, "--config", config, "--total_size", 20)
    data, _ = run(tmp_path, "--config", config, "--total_size", 30, "--overwrite")
    assert len(all_rows(data)) == 30


def test_overwrite_refuses_a_folder_that_is_not_a_dataset(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("keep me")
    with pytest.raises(SystemExit, match="is not a saved dataset"):
        run(tmp_path, "--config", two_source_config(tmp_path), "--overwrite")
    assert (tmp_path / "out" / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("args, message", [(["--validation_size", "1.5"], "must be a fraction"),
                                            (["--validation_size", "500"], "leaves no training rows"),
                                            (["--total_size", "0"], "--total_size 0 must be a positive"),
                                            (["--num_proc", "0"], "--num_proc 0 must be at least 1")])
def test_bad_cli_values(tmp_path, args, message):
    with pytest.raises(SystemExit, match=message.replace("(", r"\(")):
        run(tmp_path, "--config", two_source_config(tmp_path), *args)


# --- atomic output ------------------------------------------------------------------------------------------------------


def test_failed_save_leaves_the_old_output_intact(tmp_path, monkeypatch):
    config = two_source_config(tmp_path)
    good, _ = run(tmp_path, "--config", config, "--total_size", 40)
    before = good["train"].to_list()

    def broken_save(self, path, **kwargs):
        (tmp_path / "partial-marker").write_text(path)
        self["train"].save_to_disk(path + "/train")  # half a dataset is on disk when the failure hits
        raise OSError("disk full")

    monkeypatch.setattr(datasets.DatasetDict, "save_to_disk", broken_save)
    with pytest.raises(OSError, match="disk full"):
        run(tmp_path, "--config", config, "--total_size", 60, "--overwrite")
    monkeypatch.undo()
    assert datasets.load_from_disk(str(tmp_path / "out"))["train"].to_list() == before
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    assert leftovers == []


# --- hub sources (faked: no network in tests) ---------------------------------------------------------------------------


def fake_hub(monkeypatch, calls, rows=200, fail_for=()):
    def load_dataset(name, subset=None, split=None, streaming=False, **kwargs):
        calls.append({"name": name, "subset": subset, "split": split, "streaming": streaming})
        if name in fail_for:
            raise ConnectionError("503 Service Unavailable")

        def generate():
            for row in qa_rows(name, rows):
                yield row
        return datasets.IterableDataset.from_generator(generate) if streaming else \
            datasets.Dataset.from_list(list(generate()))

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(cm, "hub_reachable", lambda: True)
    monkeypatch.setattr(cm.datasets, "load_dataset", load_dataset)


def test_hub_sources_are_streamed_and_only_the_needed_rows_taken(tmp_path, monkeypatch):
    calls = []
    fake_hub(monkeypatch, calls)
    config = write_config(tmp_path, [
        {"name": "owner/big", "subset": "main", "columns": {"user": "question", "assistant": "answer"},
         "proportion": 0.75},
        {"name": "owner/other", "columns": {"user": "question", "assistant": "answer"}, "proportion": 0.25}])
    data, summary = run(tmp_path, "--config", config, "--total_size", 40)
    assert calls == [{"name": "owner/big", "subset": "main", "split": "train", "streaming": True},
                     {"name": "owner/other", "subset": None, "split": "train", "streaming": True}]
    assert [(s["taken"], s["available"]) for s in summary["sources"]] == [(30, None), (10, None)]
    assert len(all_rows(data)) == 40


def test_streamed_hub_source_with_missing_columns(tmp_path, monkeypatch):
    fake_hub(monkeypatch, [])
    config = write_config(tmp_path, [{"name": "owner/big", "columns": {"user": "query", "assistant": "answer"},
                                      "proportion": 1.0}])
    with pytest.raises(SystemExit, match=r"missing column\(s\) query; found question, answer"):
        run(tmp_path, "--config", config, "--total_size", 10)


def test_default_mix_falls_back_per_source_when_a_hub_load_fails(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    calls = []
    fake_hub(monkeypatch, calls, fail_for=("Open-Orca/SlimOrca-Dedup",))
    monkeypatch.setattr(cm, "DEFAULT_MIX", [
        cm.Source(name="Open-Orca/SlimOrca-Dedup", label="slimorca", format="sharegpt", proportion=0.5,
                  erase_prompt=True, offline_sample="slimorca_dedup_sample.jsonl"),
        cm.Source(name="openai/gsm8k", label="gsm8k", subset="main", proportion=0.5,
                  columns={"user": "question", "assistant": "answer"}, offline_sample="gsm8k_main_sample.jsonl")])
    data, summary = run(tmp_path, "--total_size", 20)
    assert "OFFLINE SAMPLE: Open-Orca/SlimOrca-Dedup" in caplog.text and "503" in caplog.text
    assert [s["read_from"] for s in summary["sources"]] == ["examples/orca/slimorca_dedup_sample.jsonl",
                                                            "openai/gsm8k"]
    assert sum(r["source"] == "slimorca" for r in all_rows(data)) == 10
