"""Batched generation (eval.py's generate: prompts sorted by length, left padding, KV cache) vs one example at a time.

Both runs use eval.py's own code on the same prompts from examples/instruct/test.json with greedy decoding, so the
answers should agree; the table shows seconds, generated tokens per second, the speed ratio, model-FLOPs utilisation
and how many answers agree (batched float arithmetic can differ in the last bits and flip a near-tie). A third run
generates batched in bf16 (--compare_dtype) and counts the greedy answers that change against the fp32 ones.

MFU: a generated token costs 2N + 4 x layers x hidden x context FLOPs (N = matmul parameters incl. the LM head, see
train_throughput.py), against the matmul peak of the run's dtype measured on the model's shapes at 2,048 tokens.
Prompt tokens (prefill) are not counted, so this understates the work done.

    python benchmarks/generation_speed.py
    python benchmarks/generation_speed.py --num_prompts 8 --max_new_tokens 32 --batch_size 8
"""

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from train_throughput import matmul_params, matmul_throughput  # noqa: E402  (same FLOP count and peak)


def load_eval():
    """eval.py as a module (the scripts are standalone files, not a package)."""
    spec = importlib.util.spec_from_file_location("eval_script", ROOT / "eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed_generate(ev, model, tokenizer, prompts, batch_size, max_new_tokens, peak):
    started = time.perf_counter()
    outputs = ev.generate(model, tokenizer, prompts, batch_size, max_new_tokens)
    seconds = time.perf_counter() - started
    new = [len(tokenizer(o, add_special_tokens=False)["input_ids"]) for o in outputs]
    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    config = model.config.get_text_config()
    # each generated token attends to its prompt and the tokens before it: mean context = prompt + half the answer
    context = sum(p + n / 2 for p, n in zip(lengths, new)) / len(prompts)
    flops = 2 * matmul_params(config) + 4 * config.num_hidden_layers * config.hidden_size * context
    tokens = sum(new)
    return outputs, {"batch_size": batch_size, "dtype": str(model.dtype).removeprefix("torch."),
                     "seconds": round(seconds, 2), "generated_tokens": tokens,
                     "tokens_per_second": round(tokens / seconds, 1),
                     "prompts_per_second": round(len(prompts) / seconds, 2),
                     "mfu": round(flops * tokens / seconds / peak, 4)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", default="smollm2-135m-instruct")
    parser.add_argument("--dataset", default=str(ROOT / "examples" / "instruct" / "test.json"))
    parser.add_argument("--num_prompts", type=int, default=32)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--max_new_tokens", type=int, default=64)
    parser.add_argument("--dtype", default="float32", help="auto, float32, bfloat16, float16")
    parser.add_argument("--compare_dtype", default="bfloat16", help="A third, batched run in this dtype ('' to skip)")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "generation_speed.json"))
    args = parser.parse_args()

    ev = load_eval()
    model_path = ev.resolve_model(args.model_name_or_path)
    tokenizer = ev.load_tokenizer(model_path)
    records = ev.read_json_records(Path(args.dataset))[: args.num_prompts]
    prompts = [row["prompt"] for row in ev.build_rows(records, tokenizer, args.dataset)]
    model, _ = ev.load_model(args.model_name_or_path, args.dtype)
    config = model.config.get_text_config()
    dtypes = {args.dtype, args.compare_dtype} - {""}
    peaks = {name: matmul_throughput(config, getattr(torch, name))[0] for name in dtypes}
    ev.generate(model, tokenizer, prompts[:2], 2, 4)  # warm-up: first-call setup is not generation speed

    print(f"one at a time: {len(prompts)} prompts ...", file=sys.stderr, flush=True)
    single_outputs, single = timed_generate(ev, model, tokenizer, prompts, 1, args.max_new_tokens, peaks[args.dtype])
    print(f"batched (batch size {args.batch_size}) ...", file=sys.stderr, flush=True)
    batched_outputs, batched = timed_generate(ev, model, tokenizer, prompts, args.batch_size, args.max_new_tokens,
                                              peaks[args.dtype])
    rows = [("one at a time", single), ("batched (eval.py)", batched)]
    result = {"settings": vars(args), "device": str(model.device), "threads": torch.get_num_threads(),
              "matmul_peak_gflops": {k: round(v / 1e9, 1) for k, v in peaks.items()}, "one_at_a_time": single,
              "batched": batched, "num_prompts": len(prompts)}
    if args.compare_dtype:
        model = model.to(getattr(torch, args.compare_dtype))
        print(f"batched in {args.compare_dtype} ...", file=sys.stderr, flush=True)
        other_outputs, other = timed_generate(ev, model, tokenizer, prompts, args.batch_size, args.max_new_tokens,
                                              peaks[args.compare_dtype])
        other["changed_answers_vs_" + args.dtype] = sum(a != b for a, b in zip(other_outputs, batched_outputs))
        other["speedup_vs_" + args.dtype] = round(batched["seconds"] / other["seconds"], 2)
        rows.append((f"batched, {args.compare_dtype}", other))
        result["batched_" + args.compare_dtype] = other
    result["speedup"] = round(single["seconds"] / batched["seconds"], 2)
    result["identical_answers"] = sum(a == b for a, b in zip(single_outputs, batched_outputs))

    print("| method | dtype | batch size | seconds | generated tokens/s | prompts/s | MFU |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['dtype']} | {r['batch_size']} | {r['seconds']} | {r['tokens_per_second']} | "
              f"{r['prompts_per_second']} | {r['mfu']:.1%} |")
    print(f"batched is {result['speedup']}x faster than one at a time; {result['identical_answers']}/{len(prompts)} "
          "answers identical")
    if args.compare_dtype:
        print(f"{args.compare_dtype} batched is {other['speedup_vs_' + args.dtype]}x the {args.dtype} batched speed; "
              f"{other['changed_answers_vs_' + args.dtype]}/{len(prompts)} greedy answers change")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"Saved {args.output}")


if __name__ == "__main__":
    main()
