"""End to end: every use case's make targets on the real embedded model, a few steps each, offline."""

import json
import shutil

import pytest
from conftest import ROOT, load_script, run_script

# two steps of 4 rows: the recipe's code paths without its batch size (a step of the text-to-SQL recipe's 16 rows of
# up to 512 tokens took 14 s on 2 cores)
SHORT_TRAIN = "--max_steps 2 --per_device_train_batch_size 4 --gradient_accumulation_steps 1 --eval_strategy no " \
              "--save_strategy no --logging_steps 1"


def make(*targets, timeout=900, **variables):
    result = run_script("make", "--no-print-directory", *targets, *(f"{k}={v}" for k, v in variables.items()),
                        timeout=timeout)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-4000:])
    return result


def read_metrics(folder):
    return json.loads((folder / "eval" / "metrics.json").read_text())


def test_instruct_train_and_eval(tmp_path):
    data, out = tmp_path / "instruct-data", tmp_path / "instruct"
    make("instruct-train", DATA_OUT=data, OUT=out, ARGS=SHORT_TRAIN)  # exports the data to DATA_OUT first
    assert (data / "train.jsonl").exists() and (data / "test.jsonl").exists()
    assert (out / "adapter_model.safetensors").exists() and (out / "README.md").exists()
    result = make("instruct-eval", DATA_OUT=data, OUT=out, ARGS="--max_samples 4 --max_new_tokens 8")
    assert "| perplexity |" in result.stdout and "fine-tuned" in result.stdout
    metrics = read_metrics(out)
    assert {"perplexity", "rougeL", "exact_match", "base"} <= set(metrics)


@pytest.fixture(scope="module")
def finqa_data(tmp_path_factory):
    """`make finqa-data` once for the FinQA tests below (finqa-train, -eval and -tune only read it)."""
    data = tmp_path_factory.mktemp("finqa") / "finqa"
    return data, make("finqa-data", DATA_OUT=data)


def test_finqa_data_train_eval(tmp_path, finqa_data):
    (data, result), out = finqa_data, tmp_path / "finqa-model"
    assert "test: kept 30 of 30" in result.stderr
    make("finqa-train", DATA_OUT=data, OUT=out, ARGS=SHORT_TRAIN)
    make("finqa-eval", DATA_OUT=data, OUT=out, ARGS="--max_samples 3 --max_new_tokens 48")
    metrics = read_metrics(out)
    assert 0 <= metrics["execution_accuracy"] <= 1 and "execution_accuracy" in metrics["base"]
    row = json.loads((out / "eval" / "predictions.jsonl").read_text().splitlines()[0])
    assert {"executed_answer", "verdict", "gold_answer"} <= set(row)


def test_finqa_tune_grid_writes_the_best_recipe(tmp_path, finqa_data, tiny_model_dir):
    # the grid's loop and summary, not the model: the tiny one, as in the instruct-tune test below (the recipe on the
    # real model is test_finqa_data_train_eval's)
    (data, _), out = finqa_data, tmp_path / "finqa-model"
    result = make("finqa-tune", MODEL=tiny_model_dir, DATA_OUT=data, OUT=out, TUNE_LRS="1e-3 2e-3", EPOCHS=1,
                  ARGS="--max_steps 1", TUNE_EVAL_ARGS="--max_samples 2 --max_new_tokens 16")
    assert "| epochs \\ learning rate | 0.001 | 0.002 |" in result.stdout and "Best execution_accuracy" in result.stdout
    best = (tmp_path / "finqa-model-tune" / "best.yaml").read_text()
    assert best.startswith("# python sft.py --config") and "num_train_epochs: 1" in best


def test_instruct_tune_chooses_on_validation_and_general_loss(tmp_path, tiny_model_dir):
    data, out = tmp_path / "instruct-data", tmp_path / "instruct"
    result = make("instruct-tune", MODEL=tiny_model_dir, DATA_OUT=data, OUT=out, TUNE_LRS="1e-4 1e-3", EPOCHS=1,
                  ARGS="--max_steps 1 --per_device_eval_batch_size 16")
    assert "eval_loss+eval_general_loss (lower is better)" in result.stdout
    assert "| epochs \\ learning rate | 0.0001 | 0.001 |" in result.stdout
    best = (tmp_path / "instruct-tune" / "best.yaml").read_text()
    assert "lr_scheduler_type: constant_with_warmup" in best and "num_train_epochs: 1" in best


def test_skills_data_train_eval(tmp_path):
    data, out = tmp_path / "skills", tmp_path / "skills-model"
    make("skills-data", DATA_OUT=data)
    assert len(json.loads((data / "train.json").read_text())) > 400 and (data / "test.json").exists()
    make("skills-train", DATA_OUT=data, OUT=out, ARGS=SHORT_TRAIN)
    make("skills-eval", DATA_OUT=data, OUT=out, ARGS="--max_samples 4")
    metrics = read_metrics(out)
    assert {"full_call_accuracy", "skill_name_accuracy"} <= set(metrics)


def test_tools_data_train_eval(tmp_path):
    data, out = tmp_path / "tools", tmp_path / "tools-model"
    result = make("tools-data", DATA_OUT=data)
    assert "train.jsonl: 292 of 292 rows kept (openai layout)" in result.stderr
    assert (data / "test_unseen_functions.jsonl").exists()
    make("tools-train", DATA_OUT=data, OUT=out, ARGS=SHORT_TRAIN)
    # SmolLM2's template renders no tools: the fallback is saved with the model, so eval.py renders the same prompts
    assert "tools is defined" in (out / "chat_template.jinja").read_text()
    make("tools-eval", DATA_OUT=data, OUT=out, ARGS="--max_samples 3 --max_new_tokens 24")
    for folder in ("eval", "eval-unseen"):
        metrics = json.loads((out / folder / "metrics.json").read_text())
        assert {"tool_call_accuracy", "tool_name_accuracy", "unparsable_share", "wrong_function_count",
                "missing_call_count"} <= set(metrics) and "tool_call_accuracy" in metrics["base"]
        row = json.loads((out / folder / "predictions.jsonl").read_text().splitlines()[0])
        assert {"tool_call_verdict", "predicted_calls", "reference_calls", "base_prediction"} <= set(row)


def test_orca_data_and_train(tmp_path):
    data, out = tmp_path / "orca", tmp_path / "orca-model"
    result = make("orca-data", DATA_OUT=data, DATA_ARGS="--offline")
    assert "OFFLINE" in result.stdout + result.stderr
    make("orca-train", DATA_OUT=data, OUT=out, ARGS=SHORT_TRAIN)
    assert (out / "adapter_model.safetensors").exists()


def test_text2sql_two_stages_and_plots(tmp_path):
    data, out = tmp_path / "sql", tmp_path / "sql-model"
    make("text2sql-data", DATA_OUT=data)
    # an evaluation after each of the 2 steps (a loss curve of 2 points) on 4 of the held-out rows, not all of them
    make("text2sql-train", DATA_OUT=data, OUT=out, ARGS="--max_steps 2 --per_device_train_batch_size 4 "
         "--logging_steps 1 --eval_strategy steps --eval_steps 1 --max_eval_samples 4 --save_strategy no")
    assert (out / "training_loss.png").stat().st_size > 1000 and (out / "eval_loss.png").stat().st_size > 1000
    (out / "training_loss.png").unlink()
    make("plots", OUT=out)
    assert (out / "training_loss.png").exists()
    make("text2sql-eval", DATA_OUT=data, OUT=out, ARGS="--max_samples 3 --max_new_tokens 32")
    assert {"rougeL", "sql_exact_match", "sql_execution_match"} <= set(read_metrics(out))
    data2, out2 = tmp_path / "sql2", tmp_path / "sql2-model"
    make("text2sql2-data", DATA_OUT=data2)
    result = make("text2sql2-train", DATA_OUT=data2, OUT=out2, INIT=out, ARGS=SHORT_TRAIN)
    assert (out2 / "adapter_model.safetensors").exists()


def test_spider_data_train_eval(tmp_path):
    """The offline Spider-layout example through data (held-out database), train (one-database batches, packed)
    and eval (execution on the real databases, the forgetting check)."""
    data, out = tmp_path / "spider", tmp_path / "spider-model"
    make("spider-data", DATA_OUT=data)
    assert {path.name for path in data.iterdir()} == {"train.json", "validation.json"}
    result = make("spider-train", DATA_OUT=data, OUT=out, ARGS=SHORT_TRAIN)
    assert "in single-group batches" in result.stderr and "prefix packing: 2 of 2" in result.stderr
    make("spider-eval", DATA_OUT=data, OUT=out, ARGS="--max_samples 3 --max_new_tokens 24")
    metrics = read_metrics(out)
    assert {"sql_execution_match", "sql_exact_match", "sql_error_rate"} <= set(metrics)
    assert metrics["sql_real_database_rows"] == 3 and metrics["sql_missing_databases"] == 0
    general = json.loads((out / "eval-general" / "metrics.json").read_text())
    assert {"perplexity", "base"} <= set(general)


def test_finance_train_and_rouge_table(tmp_path):
    data, out = tmp_path / "finance-data", tmp_path / "finance"
    make("finance-train", DATA_OUT=data, OUT=out, ARGS=SHORT_TRAIN)
    result = make("finance-eval", DATA_OUT=data, OUT=out, ARGS="--max_samples 3 --max_new_tokens 16")
    assert "| rouge1 |" in result.stdout and "| rougeLsum |" in result.stdout


def test_users_verbatim_command_on_a_save_to_disk_folder(tmp_path, default_model_dir):
    from datasets import Dataset, DatasetDict

    records = [{"messages": [{"role": "user", "content": f"What is {i} + {i}?"},
                             {"role": "assistant", "content": f"{i} + {i} = {2 * i}."}]} for i in range(12)]
    DatasetDict({"train": Dataset.from_list(records),
                 "validation": Dataset.from_list(records[:4])}).save_to_disk(tmp_path / "data")
    result = run_script(
        "sft.py", "--model_name_or_path", default_model_dir, "--dataset_name", tmp_path / "data",
        "--dataset_test_split", "validation", "--output_dir", tmp_path / "models" / "x", "--learning_rate", "2e-5",
        "--num_train_epochs", "3", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "4",
        "--packing", "True", "--eval_strategy", "steps", "--eval_steps", "100", "--logging_steps", "25")
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "models" / "x" / "model.safetensors").exists()


def test_init_adapter_keeps_training_the_same_weights(tiny_model_dir, tmp_path):
    from conftest import run_sft, write_json
    from safetensors.torch import load_file

    # in this process (run_sft: sft.py's parser and main; a failed run raises): three runs, no three start-ups
    data = write_json(tmp_path / "train.json", [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(8)])
    common = ["--model_name_or_path", tiny_model_dir, "--dataset_name", data, "--max_steps", "2",
              "--per_device_train_batch_size", "4", "--save_strategy", "no"]
    run_sft(*common, "--output_dir", tmp_path / "a", "--use_peft", "--learning_rate", "1e-2")
    # a zero learning rate leaves exactly the weights we started from: the adapter itself, not a new one on top
    run_sft(*common, "--output_dir", tmp_path / "b", "--init_adapter", tmp_path / "a", "--learning_rate", "0")
    a, b = load_file(tmp_path / "a" / "adapter_model.safetensors"), load_file(tmp_path / "b" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert any(a[k].abs().sum() > 0 for k in a if "lora_B" in k)  # stage one really trained something
    run_sft(*common, "--output_dir", tmp_path / "c", "--init_adapter", tmp_path / "a", "--learning_rate", "1e-2")
    c = load_file(tmp_path / "c" / "adapter_model.safetensors")
    assert any((a[k] != c[k]).any() for k in a)
