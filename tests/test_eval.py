"""eval.py: metrics on known cases, generation end to end, adapters and --compare_base, perplexity, batching,
bad inputs, accelerate launch with two processes, --report_to, and one short run on the real default model."""

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from unittest import mock

import pytest
from conftest import ROOT, load_script, offline_wandb_env, read_wandb_runs, run_script, write_json

ev = load_script("eval")

RECORDS = [
    {"id": "a", "prompt": "What is the capital of France?", "completion": "Paris is the capital of France."},
    {"id": "b", "prompt": "Name a primary color.", "completion": "Red."},
    {"id": "c", "prompt": "Translate 'good night' into German, and say in one short sentence when it is used.",
     "completion": "Gute Nacht. You say it before going to bed."},
    {"id": "d", "prompt": "2 + 2 = ?", "completion": "4"},
    {"id": "e", "prompt": "Write a haiku about rain on a tin roof in late autumn, with a cat listening to it.",
     "completion": "Rain on the tin roof,\nthe old cat lifts one ear up,\nautumn keeps its beat."},
]
FLAGS = ["--max_new_tokens", "6", "--metrics", "rouge,exact_match,perplexity"]


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def assert_one_line_error(result, message):
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and message in last, result.stderr[-2000:]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    return write_json(tmp_path_factory.mktemp("data") / "test.jsonl", RECORDS, lines=True)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_model_dir):
    """The tiny random Llama with an untied output layer. The shared tiny model ties it to the embeddings, so it
    only ever repeats the last prompt token (a newline): every answer would be empty and every comparison trivial."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.tie_word_embeddings = False
    folder = tmp_path_factory.mktemp("tiny-llama-untied")
    LlamaForCausalLM(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory, model_dir):
    """A LoRA adapter on the tiny model, saved the way sft.py saves one (adapter + tokenizer with chat template)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    # random B (not zeros) so that the adapter really changes the model's answers
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    folder = tmp_path_factory.mktemp("adapter")
    get_peft_model(model, config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(folder)
    assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == model_dir
    return str(folder)


@pytest.fixture(scope="module")
def single_run(model_dir, data_file, tmp_path_factory):
    """One ordinary run on the tiny model (shared by the end-to-end and the accelerate tests)."""
    output_dir = tmp_path_factory.mktemp("eval-single")
    result = run_script("eval.py", "--model_name_or_path", model_dir, "--dataset", data_file,
                        "--output_dir", output_dir, "--batch_size", "auto", *FLAGS)
    assert result.returncode == 0, result.stderr[-3000:]
    return result, output_dir


# --- metrics -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prediction,reference,expected", [
    ("Paris", "Paris", True),
    ("  paris\n", "Paris", True),
    ("The   answer\tis 4", "the answer is 4", True),
    ("Paris.", "Paris", False),  # punctuation counts: only whitespace and case are normalised
    ("", "Paris", False),
])
def test_exact_match_normalises_whitespace_and_case(prediction, reference, expected):
    rows = [{"prediction": prediction, "reference": reference}]
    assert ev.metric_exact_match(rows) == {"exact_match": float(expected)}
    assert rows[0]["exact_match"] is expected


def test_exact_match_averages_over_rows():
    rows = [{"prediction": "a", "reference": "A"}, {"prediction": "b", "reference": "c"}]
    assert ev.metric_exact_match(rows)["exact_match"] == 0.5


@pytest.mark.parametrize("prediction,reference,rouge1,rouge2", [
    ("the cat sat on the mat", "the cat sat on the mat", 1.0, 1.0),
    ("dogs bark loudly", "the cat sat", 0.0, 0.0),
    ("the cat", "the cat sat", 0.8, 2 / 3),  # P=1, R=2/3 -> F1 0.8; bigrams P=1, R=1/2 -> 2/3
])
def test_rouge_known_cases(prediction, reference, rouge1, rouge2):
    scores = ev.metric_rouge([{"prediction": prediction, "reference": reference}])
    assert set(scores) == {"rouge1", "rouge2", "rougeL", "rougeLsum"}
    assert scores["rouge1"] == pytest.approx(rouge1) and scores["rouge2"] == pytest.approx(rouge2)


def test_markdown_table_has_a_column_per_model():
    table = ev.markdown_table({"base": {"rouge1": 0.25, "n": 3}, "fine-tuned": {"rouge1": 0.5, "n": 3}})
    assert table.splitlines()[0] == "| metric | base | fine-tuned |"
    assert "| rouge1 | 0.2500 | 0.5000 |" in table and "| n | 3 | 3 |" in table


# --- generation and perplexity in-process on the tiny model -------------------------------------------------------


def tiny_rows(model_dir):
    tokenizer = ev.load_tokenizer(model_dir)
    return tokenizer, ev.build_rows(RECORDS, tokenizer, "test")


def test_left_padded_batches_match_one_at_a_time(model_dir, monkeypatch):
    tokenizer, rows = tiny_rows(model_dir)
    model, _ = ev.load_model(model_dir, "float32")
    prompts = [row["prompt"] for row in rows]
    batched = ev.generate(model, tokenizer, prompts, 4, 8)
    single = ev.generate(model, tokenizer, prompts, 1, 8)
    assert batched == single
    assert all(batched)  # the random model never emits EOS first, so each answer has text
    monkeypatch.setattr(ev, "own_greedy_loop", lambda *args: False)  # model.generate, as on a GPU
    assert ev.generate(model, tokenizer, prompts, 4, 8) == batched
    assert ev.generate(model, tokenizer, prompts, None, 8) == batched  # the default batch size


@pytest.mark.parametrize("dtype,min_rows,prefill_rows,min_prefix,keep_share", [
    ("float32", 1, 2, 8, 1.0), ("float32", 1, 2, 8, 0.75), ("float32", 16, 8, 8, 0.75),
    ("float32", 16, 8, 10**6, 0.75), ("bfloat16", 2, 3, 8, 0.75)])
def test_own_greedy_loop_gives_generates_tokens(model_dir, dtype, min_rows, prefill_rows, min_prefix, keep_share,
                                                monkeypatch):
    """eval.py's CPU decoding loop (rows leave the batch at EOS, a buffered KV cache, the chat template's shared
    system turn read once) against plain model.generate: the same tokens for a left-padded batch of prompts of
    different lengths, some of them ending early."""
    import torch

    monkeypatch.setattr(ev, "MIN_DECODE_ROWS", min_rows)  # the batch shrinks (1, 2) or never does (16 > 5 rows)
    monkeypatch.setattr(ev, "PREFILL_ROWS", prefill_rows)  # prompts read in groups padded to different widths
    monkeypatch.setattr(ev, "MIN_SHARED_PREFIX", min_prefix)  # 10**6: every row reads its whole prompt
    monkeypatch.setattr(ev, "DECODE_KEEP_SHARE", keep_share)  # 1.0: a row leaves at its EOS; else in bulk

    tokenizer, rows = tiny_rows(model_dir)
    model, _ = ev.load_model(model_dir, dtype)
    encoded = [tokenizer(row["prompt"], add_special_tokens=False)["input_ids"] for row in rows]
    width, pad = max(map(len, encoded)), tokenizer.pad_token_id
    input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in encoded])
    attention_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded])

    def reference(eos):
        generated = model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=12,
                                   do_sample=False, eos_token_id=eos, pad_token_id=pad)[:, width:].tolist()
        return [ids[: ids.index(eos) + 1] if eos in ids else ids for ids in generated]

    # the random model never says EOS: call a token it says early in one answer the end, so rows end at different steps
    eos = reference(tokenizer.eos_token_id)[0][2]
    expected = reference(eos)
    assert len({len(ids) for ids in expected}) > 1 and 12 in {len(ids) for ids in expected}
    assert ev.own_greedy_loop(model, eos)
    assert (ev.shared_prefix_length(input_ids, attention_mask) > 8) == (min_prefix == 8)
    with torch.inference_mode():
        assert ev.greedy_decode(model, input_ids, attention_mask, 12, eos) == expected


@pytest.mark.parametrize("prompts,expected", [
    ([[7, 8, 9, 1, 2], [7, 8, 9, 3]], 3),  # the tokens every prompt starts with
    ([[7, 8, 9, 6], [7, 8, 9, 6, 4, 5]], 3),  # a prompt that is all prefix keeps its last token for its own logits
    ([[7, 8, 9, 1], [6, 8, 9, 1]], 0),  # different first tokens
    ([[7, 8, 1], [7, 8, 2]], 0),  # a shared prefix shorter than MIN_SHARED_PREFIX
    ([[7, 8, 9, 1]], 0),  # one row
])
def test_shared_prefix_layout(prompts, expected, monkeypatch):
    """share_prefix lays a left-padded batch out as [shared prefix | own tokens, left-padded]: the same tokens per row,
    each at its own position (positions from the mask), and the mask hides only padding."""
    import torch

    monkeypatch.setattr(ev, "MIN_SHARED_PREFIX", 3)
    width = max(map(len, prompts))
    input_ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    attention_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    assert ev.shared_prefix_length(input_ids, attention_mask) == expected
    ids, mask, prefix = ev.share_prefix(input_ids, attention_mask)
    assert prefix == expected and mask[:, :prefix].all()
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
    for row, prompt in enumerate(prompts):
        kept = mask[row].bool()
        assert ids[row][kept].tolist() == prompt and positions[row][kept].tolist() == list(range(len(prompt)))


def test_own_greedy_loop_only_where_it_matches_generate(model_dir):
    model, _ = ev.load_model(model_dir, "float32")
    assert ev.own_greedy_loop(model, 2)
    assert not ev.own_greedy_loop(model, None)
    model.generation_config.repetition_penalty = 1.3  # generate would apply it: keep generate
    assert not ev.own_greedy_loop(model, 2)


def test_perplexity_is_lower_for_the_reference_than_for_a_shuffled_one(model_dir):
    import torch

    tokenizer, rows = tiny_rows(model_dir)
    rows = rows[:2]
    model, _ = ev.load_model(model_dir, "float32")
    random_ppl = ev.perplexity(model, tokenizer, rows, 2)["perplexity"]
    assert 1 < random_ppl < float("inf")
    # a few steps on the two examples: the model learns them, so their references get likelier than any reordering
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(6):
        for row in rows:
            ids = tokenizer(row["prompt"] + row["reference"] + tokenizer.eos_token, add_special_tokens=False,
                            return_tensors="pt")["input_ids"]
            model(input_ids=ids, labels=ids).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    model.eval()
    shuffled = [dict(row, reference=" ".join(reversed(row["reference"].split()))) for row in rows]
    trained_ppl = ev.perplexity(model, tokenizer, rows, 2)["perplexity"]
    assert 1 < trained_ppl < ev.perplexity(model, tokenizer, shuffled, 2)["perplexity"]
    assert trained_ppl < random_ppl


def test_batch_size_auto_on_cpu_is_a_fixed_size():
    assert ev.parse_batch_size("auto") == ev.CPU_AUTO_BATCH
    assert ev.parse_batch_size("3") == 3
    assert ev.parse_batch_size(None) is None  # the default: generate_batch_size's for generation


def test_default_generation_batch_grows_on_the_cpu_while_the_kv_cache_is_small(model_dir):
    model, _ = ev.load_model(model_dir, "float32")
    assert ev.generate_batch_size(model, 50, 256, own_loop=False) == ev.DEFAULT_BATCH_SIZE  # model.generate (GPU)
    assert ev.generate_batch_size(model, 50, 256, own_loop=True) == ev.CPU_GENERATION_BATCH
    # the tiny model keeps 2 layers x 2 (keys, values) x 2 heads x 16 x 4 bytes = 512 bytes a token
    assert ev.generate_batch_size(model, ev.CPU_KV_BUDGET // 512 // 20 - 256, 256, own_loop=True) == 20
    assert ev.generate_batch_size(model, 10**7, 256, own_loop=True) == ev.DEFAULT_BATCH_SIZE


@pytest.mark.parametrize("saved,dtype,fast_bf16,expected,warns", [
    ("bfloat16", "auto", False, "float32", False),  # a bf16 hub checkpoint on a CPU without bf16 units: upcast
    ("bfloat16", "auto", True, "bfloat16", False),  # AMX: the checkpoint's own dtype, as --dtype auto says
    ("bfloat16", "bfloat16", False, "bfloat16", True),  # asked for: kept, with a warning that it is slower here
    ("float32", "auto", False, "float32", False),
])
def test_cpu_without_bf16_units_runs_a_16_bit_checkpoint_in_fp32(model_dir, tmp_path, saved, dtype, fast_bf16,
                                                                  expected, warns, caplog):
    import torch
    from transformers import AutoModelForCausalLM

    folder = tmp_path / saved
    AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, saved)).save_pretrained(folder)
    with mock.patch.object(ev, "cpu_has_fast_bf16", return_value=fast_bf16):
        model, _ = ev.load_model(str(folder), dtype)
    assert model.dtype == getattr(torch, expected)
    assert ("slower than float32 here" in caplog.text) is warns


# --- the command line ----------------------------------------------------------------------------------------------


def test_generation_end_to_end_writes_metrics_and_predictions(single_run, data_file):
    result, output_dir = single_run
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert {"perplexity", "rouge1", "rouge2", "rougeL", "rougeLsum", "exact_match"} <= set(metrics)
    assert 1 < metrics["perplexity"] < float("inf")
    predictions = read_jsonl(output_dir / "predictions.jsonl")
    assert [p["id"] for p in predictions] == [r["id"] for r in RECORDS]  # dataset order, extra columns kept
    for prediction, record in zip(predictions, RECORDS):
        assert {"prompt", "reference", "prediction", "exact_match"} <= set(prediction)
        assert prediction["reference"] == record["completion"] and record["prompt"] in prediction["prompt"]
        assert prediction["prediction"]
    assert sorted(p.name for p in output_dir.iterdir()) == ["metrics.json", "predictions.jsonl"]  # no temp files
    assert result.stdout.count("| metric | model |") == 1
    assert f"--batch_size auto: no CUDA GPU, using {ev.CPU_AUTO_BATCH}" in result.stderr


def test_adapter_is_loaded_on_its_base_and_compared_with_it(adapter_dir, data_file, tmp_path):
    # the real wandb client, offline (no account, no network); the run is read back from its .wandb file
    output_dir = tmp_path / "eval"
    result = run_script("eval.py", "--model_name_or_path", adapter_dir, "--dataset", data_file, "--output_dir",
                        output_dir, "--compare_base", "--report_to", "wandb", *FLAGS,
                        env=offline_wandb_env(tmp_path / "wb"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| metric | base | fine-tuned |" in result.stdout
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert "rouge1" in metrics and "rouge1" in metrics["base"]
    assert metrics["perplexity"] != metrics["base"]["perplexity"]  # the adapter was applied
    predictions = read_jsonl(output_dir / "predictions.jsonl")
    assert all("base_prediction" in p and "base_exact_match" in p for p in predictions)
    assert any(p["prediction"] != p["base_prediction"] for p in predictions)

    (run,) = read_wandb_runs(tmp_path / "wb")
    logged = {key: value for entry in run["history"] for key, value in entry.items()}
    assert logged["eval/perplexity"] == metrics["perplexity"]
    assert logged["base/rouge1"] == metrics["base"]["rouge1"]
    (table_file,) = (run["dir"] / "files" / "media" / "table" / "eval").glob("predictions_*.table.json")
    table = json.loads(table_file.read_text())
    rows = [dict(zip(table["columns"], row)) for row in table["data"]]
    # one row per example, with the verdicts of the fine-tuned and the base model
    assert [row["prediction"] for row in rows] == [p["prediction"] for p in predictions]
    assert [row["base_exact_match"] for row in rows] == [p["base_exact_match"] for p in predictions]
    assert {"prompt", "reference", "base_prediction", "exact_match"} <= set(table["columns"])


# SLOWEST TEST HERE: starts two processes (each imports torch/transformers and loads the tiny model) on 2 cores
def test_accelerate_launch_splits_rows_and_gathers_them_in_order(single_run, model_dir, data_file, tmp_path):
    """Two CPU processes (gloo): same predictions and metrics as one process, written once by rank 0 (~20-40 s)."""
    _, single_dir = single_run
    output_dir = tmp_path / "eval"
    accelerate = Path(sys.executable).parent / "accelerate"
    # --multi_gpu only makes accelerate start the processes with torchrun; with CUDA hidden they run on the CPU over
    # gloo. `--cpu` would start ONE process in accelerate 1.15 unless MPI is set up (huggingface/accelerate#2741).
    result = run_script(accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                        "--mixed_precision", "no", "--dynamo_backend", "no", ROOT / "eval.py",
                        "--model_name_or_path", model_dir, "--dataset", data_file, "--output_dir", output_dir,
                        *FLAGS, timeout=300, env={"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 processes share the 5 examples" in result.stderr
    assert result.stdout.count("| metric | model |") == 1  # only rank 0 prints and writes
    single = read_jsonl(single_dir / "predictions.jsonl")
    assert read_jsonl(output_dir / "predictions.jsonl") == single
    metrics, expected = (json.loads((d / "metrics.json").read_text()) for d in (output_dir, single_dir))
    assert metrics.pop("prompt") == expected.pop("prompt")  # the prompt used: text, not a number to approximate
    assert metrics == pytest.approx(expected, rel=1e-4)


def test_default_model_short_run(default_model_dir, tmp_path):
    """The real SmolLM2-135M-Instruct on the shipped instruction test split: sensible answers and perplexity."""
    result = run_script("eval.py", "--model_name_or_path", default_model_dir, "--dataset",
                        ROOT / "examples/instruct/test.json", "--max_samples", "4", "--max_new_tokens", "16",
                        "--output_dir", tmp_path, "--metrics", "rouge,exact_match,perplexity")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert 1 < metrics["perplexity"] < 100
    predictions = read_jsonl(tmp_path / "predictions.jsonl")
    assert len(predictions) == 4 and all(p["prediction"].strip() for p in predictions)
    assert metrics["rouge1"] > 0


def test_predictions_of_a_run_rescore_to_the_same_metrics(single_run, tmp_path):
    """eval.py --predictions on eval.py's own predictions.jsonl, in a fresh process without a model: same numbers."""
    _, run_dir = single_run
    result = run_script("eval.py", "--predictions", run_dir / "predictions.jsonl", "--metrics", "rouge,exact_match",
                        "--output_dir", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = json.loads((run_dir / "metrics.json").read_text())
    expected.pop("perplexity")
    expected.pop("prompt")  # the prompt record of the generating run; re-scoring renders no prompt
    assert json.loads((tmp_path / "metrics.json").read_text()) == expected
    assert read_jsonl(tmp_path / "predictions.jsonl") == read_jsonl(run_dir / "predictions.jsonl")


# every metric that needs no model, on rows another system could have written
RESCORED = {
    "call_match": ({"prompt": "Skills: weather(location)\nRequest: Weather in Rome?",
                    "reference": 'weather(location="Rome")', "prediction": "weather('Rome')"},
                   {"full_call_accuracy": 1.0}, {"call_correct": True}),
    "execution_accuracy": ({"reference": "ans = 2 + 3", "prediction": "```python\nans = 10 / 2\n```",
                            "gold_answer": "5"}, {"execution_accuracy": 1.0}, {"verdict": "correct"}),
    "sql_exact_match": ({"reference": "SELECT a FROM t", "prediction": "select A from T;", "context": ""},
                        {"sql_exact_match": 1.0}, {"sql_exact_match": True}),
    "rouge": ({"reference": "the cat sat", "prediction": "the cat sat"}, {"rougeL": 1.0}, {}),
}


@pytest.mark.parametrize("metric", list(RESCORED))
def test_predictions_rescore_every_metric_without_a_model(metric, tmp_path):
    record, scores, verdicts = RESCORED[metric]
    write_json(tmp_path / "rows.jsonl", [record], lines=True)
    ev.main(ev.EvalArguments(predictions=str(tmp_path / "rows.jsonl"), metrics=metric,
                             output_dir=str(tmp_path / "out")))
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert {key: metrics[key] for key in scores} == pytest.approx(scores)
    row = read_jsonl(tmp_path / "out" / "predictions.jsonl")[0]
    assert {key: row[key] for key in verdicts} == verdicts


# --- bad inputs ----------------------------------------------------------------------------------------------------


def no_tokenizer_model(tmp_path, model_dir):
    folder = tmp_path / "model-without-tokenizer"
    folder.mkdir()
    for name in ("config.json", "model.safetensors", "generation_config.json"):
        if (Path(model_dir) / name).exists():
            shutil.copy(Path(model_dir) / name, folder / name)
    return str(folder)


def split_folder(tmp_path):
    write_json(tmp_path / "splits" / "train.jsonl", RECORDS, lines=True)
    write_json(tmp_path / "splits" / "test.jsonl", RECORDS, lines=True)
    return str(tmp_path / "splits")


BAD_INPUTS = {
    "missing dataset file": (lambda tmp, model: {"dataset": str(tmp / "missing.jsonl")}, "no such file or folder"),
    "invalid JSON line": (
        lambda tmp, model: {"dataset": str(write_json(tmp / "bad.jsonl", [RECORDS[0]], lines=True))},
        "bad.jsonl:2: invalid JSON line"),
    "unknown metric": (lambda tmp, model: {"metrics": "rouge,bleu"}, "--metrics: unknown bleu"),
    # a plain model folder (no adapter_config.json, no model card) names no base to compare with
    "compare_base without a base": (lambda tmp, model: {"compare_base": True}, "names no base model"),
    "empty split": (lambda tmp, model: {"dataset": str(write_json(tmp / "empty.jsonl", [], lines=True))},
                    "no examples in split"),
    "unknown columns": (
        lambda tmp, model: {"dataset": str(write_json(tmp / "qa.jsonl", [{"question": "Q?", "answer": "A."}],
                                                      lines=True))},
        "unrecognized columns ['answer', 'question']"),
    "model folder without tokenizer": (
        lambda tmp, model: {"model_name_or_path": no_tokenizer_model(tmp, model)}, "has no usable tokenizer"),
    "unknown split": (lambda tmp, model: {"dataset": split_folder(tmp), "split": "validation"},
                      "--split validation: not in"),
    "bad batch size": (lambda tmp, model: {"batch_size": "lots"}, "--batch_size lots"),
    "unknown backend": (lambda tmp, model: {"backend": "onnx"}, "--backend onnx"),
    "unknown reporter": (lambda tmp, model: {"report_to": "mlflow"}, "--report_to mlflow"),
}
if importlib.util.find_spec("vllm") is None:
    BAD_INPUTS["vllm not installed"] = (lambda tmp, model: {"backend": "vllm"}, "the vllm package is not installed")
if importlib.util.find_spec("tensorboard") is None:
    BAD_INPUTS["tensorboard not installed"] = (lambda tmp, model: {"report_to": "tensorboard"},
                                               "pip install tensorboard")


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_fail_with_one_line(case, model_dir, data_file, tmp_path):
    make, message = BAD_INPUTS[case]
    overrides = make(tmp_path, model_dir)
    if case == "invalid JSON line":
        with open(overrides["dataset"], "a") as f:
            f.write('{"prompt": "unterminated\n')
    args = ev.EvalArguments(**{"model_name_or_path": model_dir, "dataset": str(data_file),
                               "output_dir": str(tmp_path / "out"), **overrides})
    with pytest.raises(SystemExit) as error:
        ev.main(args)
    text = str(error.value)
    assert text.startswith("error:") and "\n" not in text and message in text, text
    assert not (tmp_path / "out").exists()


def test_bad_input_on_the_command_line_has_no_traceback(model_dir, tmp_path):
    result = run_script("eval.py", "--model_name_or_path", model_dir, "--dataset", tmp_path / "missing.jsonl")
    assert_one_line_error(result, "missing.jsonl: no such file or folder")
    write_json(tmp_path / "rows.jsonl", [{"reference": "a", "prediction": "a"}, {"prediction": "b"}], lines=True)
    result = run_script("eval.py", "--predictions", tmp_path / "rows.jsonl", "--metrics", "exact_match")
    assert_one_line_error(result, "rows.jsonl:2: field 'reference' is missing")


def test_summarize_runs_prints_the_grid_and_writes_the_best_recipe(tmp_path, capsys):
    import yaml

    grid = {(1, "5e-4"): 0.2, (2, "5e-4"): 0.4, (1, "1e-3"): 0.3, (2, "1e-3"): 0.4, (3, "1e-3"): 0.35}
    for (epoch, rate), score in grid.items():
        checkpoint = tmp_path / "tune" / f"lr-{rate}" / f"checkpoint-{epoch * 15}"
        (checkpoint / "eval").mkdir(parents=True)
        (checkpoint / "trainer_state.json").write_text(json.dumps({"epoch": float(epoch)}))
        (checkpoint / "eval" / "metrics.json").write_text(json.dumps({"execution_accuracy": score}))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("learning_rate: 0.1\nnum_train_epochs: 9\nuse_peft: true\n")
    best = tmp_path / "tune" / "best.yaml"
    ev.summarize_runs(str(tmp_path / "tune"), "execution_accuracy", str(recipe), str(best))
    printed = capsys.readouterr().out
    assert "| 2 | 0.4000 | 0.4000 |" in printed and "| 3 |  | 0.3500 |" in printed
    config = yaml.safe_load(best.read_text())
    # ties go to the smaller learning rate at the same epochs
    assert config["num_train_epochs"] == 2 and config["learning_rate"] == 5e-4 and config["use_peft"] is True
    assert best.read_text().startswith("# python sft.py --config")
    # the checkpoint that scored it, to evaluate as it is instead of training again
    assert f"# best checkpoint: {tmp_path / 'tune' / 'lr-5e-4' / 'checkpoint-30'}\n" in best.read_text()


def test_summarize_runs_ranks_logged_losses_lowest_first(tmp_path, capsys):
    """make instruct-tune: no eval.py pass per checkpoint; the Trainer's logged eval_loss + eval_general_loss rank."""
    import yaml

    losses = {"1e-4": [(1.6, 1.9), (1.5, 1.9)], "4e-4": [(1.4, 2.2), (1.3, 2.4)]}
    for rate, per_epoch in losses.items():
        history = []
        for epoch, (task, general) in enumerate(per_epoch, start=1):
            history += [{"loss": 2.0, "step": epoch * 10 - 5},
                        {"eval_loss": task, "eval_general_loss": general, "epoch": float(epoch), "step": epoch * 10}]
            checkpoint = tmp_path / "tune" / f"lr-{rate}" / f"checkpoint-{epoch * 10}"
            checkpoint.mkdir(parents=True)
            (checkpoint / "trainer_state.json").write_text(json.dumps(
                {"epoch": float(epoch), "global_step": epoch * 10, "log_history": history}))
    recipe, best = tmp_path / "recipe.yaml", tmp_path / "best.yaml"
    recipe.write_text("learning_rate: 0.1\nnum_train_epochs: 9\n")
    ev.summarize_runs(str(tmp_path / "tune"), "eval_loss+eval_general_loss", str(recipe), str(best))
    printed = capsys.readouterr().out
    assert "lower is better" in printed and "| 2 | 3.4000 | 3.7000 |" in printed
    assert yaml.safe_load(best.read_text())["learning_rate"] == 1e-4
    assert yaml.safe_load(best.read_text())["num_train_epochs"] == 2


def test_summarize_runs_refuses_a_sum_of_opposite_metrics(tmp_path):
    with pytest.raises(SystemExit, match="all rank the same way"):
        ev.summarize_runs(str(tmp_path), "eval_loss+execution_accuracy", None, None)


def test_summarize_runs_without_results_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no lr-\\*/checkpoint-\\* with eval/metrics.json or a logged"):
        ev.summarize_runs(str(tmp_path), "execution_accuracy", None, None)


@pytest.mark.parametrize("files,expected", [
    ({"adapter_config.json": '{"base_model_name_or_path": "org/base"}'}, "org/base"),
    # a full fine-tune from sft.py names its base in the model card's front matter
    ({"README.md": "---\nbase_model: smollm2-135m-instruct\nlibrary_name: transformers\n---\n# x\n"},
     "smollm2-135m-instruct"),
    ({"README.md": "---\nbase_model: 'org/quoted'\n---\n"}, "org/quoted"),
    ({"README.md": "# no front matter\nbase_model: not-this\n"}, None),
    ({"README.md": "---\nlicense: mit\n---\n"}, None),
    ({}, None),
])
def test_trained_from_reads_adapter_config_then_model_card(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert ev.trained_from(tmp_path) == expected
