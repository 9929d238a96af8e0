"""The benchmarks run end to end on the tiny model (seconds): their numbers come from `make bench`, never from tests."""

import json
import sys
from unittest import mock

import pytest
from conftest import load_script

BENCHMARKS = ["generation_speed", "profile_step", "train_throughput"]


@pytest.fixture(scope="module")
def bench(root):
    sys.path.insert(0, str(root / "benchmarks"))
    try:
        yield {name: load_script(f"benchmarks/{name}") for name in BENCHMARKS}
    finally:
        sys.path.remove(str(root / "benchmarks"))


def run_main(module, *args):
    with mock.patch.object(sys, "argv", [module.__file__, *map(str, args)]):
        module.main()


def test_generation_speed_compares_every_way_of_generating(bench, tiny_model_dir, tmp_path):
    output = tmp_path / "generation.json"
    run_main(bench["generation_speed"], "--model_name_or_path", tiny_model_dir, "--num_prompts", 6,
             "--max_new_tokens", 4, "--compare_dtype", "", "--repeats", 2, "--output", output)
    result = json.loads(output.read_text())
    # greedy answers agree however they are batched, the shared prompt prefix read once or not
    assert result["identical_answers"] == 6
    assert result["batched_model_generate"]["identical_answers_to_eval_py"] == 6
    assert result["batched_without_shared_prefix"]["identical_answers_to_eval_py"] == 6
    assert result["batched"]["mfu"] > 0 and result["matmul_peak_gflops"]["float32"] > 0
    # two runs of each, taken in turn; each batch's fastest counts, so no run's total is faster than the result
    assert all(len(result[key]["seconds_per_repeat"]) == 2 and result[key]["seconds"] <= min(
        result[key]["seconds_per_repeat"]) + 0.01 for key in ("one_at_a_time", "batched", "batched_model_generate"))


@pytest.mark.parametrize("full", [False, True])
def test_profile_step_splits_a_step_and_bounds_its_mfu(bench, tiny_model_dir, tmp_path, full):
    output = tmp_path / "profile.json"
    run_main(bench["profile_step"], "--model_name_or_path", tiny_model_dir, "--batch_size", 2, "--length", 32,
             "--output", output, *(["--full"] if full else []))
    result = json.loads(output.read_text())
    parts = result["parts_seconds"]
    # every part is found, by op name or by the shape of its tensors (the loss head's, attention's scores)
    assert all(parts[name] > 0 for name in ("matmul (projections, LM head)", "loss head (softmax, gather, metrics)",
                                            "attention", "optimizer (AdamW)", "dtype casts (autocast, fp32<->bf16)"))
    assert 0 < result["mfu"] <= result["mfu_ceiling_matmuls_only"]
    # memory touched beforehand serves the profiled step, so no op's time is a page fault's (150,000+ before). The
    # count is the whole pytest process's: 10,721-10,724 in two full `make test` runs (2026-12-07)
    assert result["profiled_step_page_faults"] < 30_000


def test_shared_prefix_rows_start_alike_and_end_differently(bench, tmp_path):
    path = tmp_path / "rows.jsonl"
    bench["train_throughput"].shared_prefix_dataset(path, 20, seed=0)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    skills = {row["prompt"].split("\n")[0] for row in rows}
    assert len(rows) == 20 and len(skills) == 1 and next(iter(skills)).startswith("Skills: ")
    assert len({row["prompt"] for row in rows}) > 15 and all(row["completion"] for row in rows)


def test_startup_times_help_and_a_bad_flag(bench, tmp_path):
    startup = load_script("benchmarks/startup")
    output = tmp_path / "startup.json"
    run_main(startup, "--scripts", "training_data.py", "--repeats", 2, "--output", output)
    rows = json.loads(output.read_text())["results"]
    assert [(row["script"], row["case"], row["exit_status"] != 0) for row in rows] == [
        ("training_data.py", "help", False), ("training_data.py", "bad flag", True)]
    assert all(len(row["wall_s_per_repeat"]) == 2 and row["cpu_s"] > 0 for row in rows)
