"""Batched generation (eval.py's generate: prompts sorted by length, left padding, KV cache) vs one example at a time.

All runs use eval.py's own code on the same prompts from examples/instruct/test.json with greedy decoding, so the
answers should agree; the table shows seconds, generated tokens per second, the speed ratio, model-FLOPs utilisation
and how many answers agree (batched float arithmetic can differ in the last bits and flip a near-tie). On the CPU
eval.py decodes greedily with its own loop (rows leave the batch at EOS, a KV cache without a copy per step); a second
batched run with model.generate, as eval.py did before, shows what that loop gains. A last run generates batched in
bf16 (--compare_dtype, eval.py --dtype bfloat16) and counts the greedy answers that change against the fp32 ones.
Another batched run reads every prompt whole, to show what reading the tokens all prompts share (the chat template's
system turn; a skill list, `--dataset data/skills/test.json`) once per batch gains.

MFU = model FLOPs / seconds / peak, the peak being the matmul throughput of the run's dtype measured first on the
model's own shapes at 2,048 tokens (train_throughput.py). Model FLOPs count every token the model reads, the prompt
(prefill) as well as the answer: 2 x (N - LM head) per prompt token, 2N per generated token (N = matmul parameters
incl. the LM head, see train_throughput.py; the LM head runs only for the last position), plus attention, 4 x layers
x hidden x context per token. "MFU, answer only" counts the generated tokens alone, as this benchmark did before.
Every prompt is counted whole, so where eval.py reads a shared prefix once the MFU is an effective one (it can pass
what the matmuls run at); the answer-only MFU is not affected.

    python benchmarks/generation_speed.py
    python benchmarks/generation_speed.py --num_prompts 16 --max_new_tokens 32
    python benchmarks/generation_speed.py --dataset data/skills/test.json --num_prompts 64 --max_new_tokens 32
"""

import argparse
import functools
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


def generation_flops(config, prompt_tokens, new_tokens):
    """(all model FLOPs, FLOPs of the generated tokens alone) of one prompt and its answer."""
    layers, hidden = config.num_hidden_layers, config.hidden_size
    head = hidden * config.vocab_size
    body = matmul_params(config) - head
    # token t (1-based) attends to t positions; the prompt runs through the body once, each answer token but the last
    # runs through it once more, and each answer token comes out of the LM head
    attention = 4 * layers * hidden * (prompt_tokens + new_tokens - 1) * (prompt_tokens + new_tokens) / 2
    total = 2 * body * (prompt_tokens + new_tokens - 1) + 2 * head * new_tokens + attention
    context = prompt_tokens + new_tokens / 2
    return total, new_tokens * (2 * (body + head) + 4 * layers * hidden * context)


def timed_generate(ev, model, tokenizer, prompts, batch_size, max_new_tokens, peak):
    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    own_loop = ev.own_greedy_loop(model, tokenizer.eos_token_id)
    batch_size = batch_size or ev.generate_batch_size(model, max(lengths), max_new_tokens, own_loop)  # eval.py's
    started = time.perf_counter()
    outputs = ev.generate(model, tokenizer, prompts, batch_size, max_new_tokens)
    seconds = time.perf_counter() - started
    new = [len(tokenizer(o, add_special_tokens=False)["input_ids"]) for o in outputs]
    flops = [generation_flops(model.config.get_text_config(), p, n) for p, n in zip(lengths, new)]
    tokens = sum(new)
    return outputs, {"batch_size": batch_size, "own_loop": own_loop, "dtype": str(model.dtype).removeprefix("torch."),
                     "seconds": round(seconds, 2), "generated_tokens": tokens, "prompt_tokens": sum(lengths),
                     "tokens_per_second": round(tokens / seconds, 1),
                     "prompts_per_second": round(len(prompts) / seconds, 2),
                     "mfu": round(sum(f[0] for f in flops) / seconds / peak, 4),
                     "mfu_answer_only": round(sum(f[1] for f in flops) / seconds / peak, 4)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", default="smollm2-135m-instruct")
    parser.add_argument("--dataset", default=str(ROOT / "examples" / "instruct" / "test.json"))
    parser.add_argument("--num_prompts", type=int, default=60,
                        help="The first N prompts; 60: all of examples/instruct/test.json, one batch as in instruct-eval")
    parser.add_argument("--batch_size", type=int, default=None, help="Default: eval.py's default for these prompts")
    parser.add_argument("--max_new_tokens", type=int, default=64)
    parser.add_argument("--dtype", default="float32", help="auto, float32, bfloat16, float16")
    parser.add_argument("--compare_dtype", default="bfloat16", help="A last, batched run in this dtype ('' to skip)")
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

    run = functools.partial(timed_generate, ev, model, tokenizer, prompts, max_new_tokens=args.max_new_tokens)
    print(f"one at a time: {len(prompts)} prompts ...", file=sys.stderr, flush=True)
    single_outputs, single = run(1, peak=peaks[args.dtype])
    print("batched ...", file=sys.stderr, flush=True)
    batched_outputs, batched = run(args.batch_size, peak=peaks[args.dtype])
    rows = [("one at a time", single), ("batched (eval.py)", batched)]
    result = {"settings": vars(args), "device": str(model.device), "threads": torch.get_num_threads(),
              "matmul_peak_gflops": {k: round(v / 1e9, 1) for k, v in peaks.items()}, "one_at_a_time": single,
              "batched": batched, "num_prompts": len(prompts)}
    own_loop = batched["own_loop"]
    if own_loop:  # eval.py before its own loop: model.generate, batches of DEFAULT_BATCH_SIZE (unless --batch_size)
        print("batched with model.generate ...", file=sys.stderr, flush=True)
        own_greedy_loop, ev.own_greedy_loop = ev.own_greedy_loop, lambda *args: False
        ev.generate(model, tokenizer, prompts[:2], 2, 4)  # its own warm-up
        generate_outputs, generate = run(args.batch_size or ev.DEFAULT_BATCH_SIZE, peak=peaks[args.dtype])
        ev.own_greedy_loop = own_greedy_loop
        generate["identical_answers_to_eval_py"] = sum(a == b for a, b in zip(generate_outputs, batched_outputs))
        rows.insert(1, ("batched, model.generate (eval.py before)", generate))
        result["batched_model_generate"] = generate
        result["own_loop_speedup"] = round(generate["seconds"] / batched["seconds"], 2)
    if own_loop:  # eval.py with every prompt read whole: what reading the prefix all prompts share once gains
        print("batched, no shared prefix ...", file=sys.stderr, flush=True)
        min_shared_prefix, ev.MIN_SHARED_PREFIX = ev.MIN_SHARED_PREFIX, 10**9
        whole_outputs, whole = run(args.batch_size, peak=peaks[args.dtype])
        ev.MIN_SHARED_PREFIX = min_shared_prefix
        whole["identical_answers_to_eval_py"] = sum(a == b for a, b in zip(whole_outputs, batched_outputs))
        rows.insert(-1, ("batched, eval.py without the shared prefix", whole))
        result["batched_without_shared_prefix"] = whole
        result["shared_prefix_speedup"] = round(whole["seconds"] / batched["seconds"], 2)
    if args.compare_dtype:
        model = model.to(getattr(torch, args.compare_dtype))
        print(f"batched in {args.compare_dtype} ...", file=sys.stderr, flush=True)
        other_outputs, other = run(args.batch_size, peak=peaks[args.compare_dtype])
        other["changed_answers_vs_" + args.dtype] = sum(a != b for a, b in zip(other_outputs, batched_outputs))
        other["speedup_vs_" + args.dtype] = round(batched["seconds"] / other["seconds"], 2)
        other["speedup_vs_one_at_a_time"] = round(single["seconds"] / other["seconds"], 2)
        rows.append((f"batched, {args.compare_dtype}", other))
        result["batched_" + args.compare_dtype] = other
    result["speedup"] = round(single["seconds"] / batched["seconds"], 2)
    result["identical_answers"] = sum(a == b for a, b in zip(single_outputs, batched_outputs))

    print("| method | dtype | batch size | seconds | generated tokens/s | prompts/s | MFU | MFU, answer only |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['dtype']} | {r['batch_size']} | {r['seconds']} | {r['tokens_per_second']} | "
              f"{r['prompts_per_second']} | {r['mfu']:.1%} | {r['mfu_answer_only']:.1%} |")
    print(f"batched is {result['speedup']}x faster than one at a time; {result['identical_answers']}/{len(prompts)} "
          "answers identical")
    if own_loop:
        print(f"batched eval.py is {result['own_loop_speedup']}x model.generate at batch size {generate['batch_size']} "
              "(eval.py before); "
              f"{generate['identical_answers_to_eval_py']}/{len(prompts)} answers identical")
    if own_loop:
        print(f"reading the shared prompt prefix once is {result['shared_prefix_speedup']}x reading every prompt "
              f"whole; {whole['identical_answers_to_eval_py']}/{len(prompts)} answers identical")
    if args.compare_dtype:
        print(f"{args.compare_dtype} batched is {other['speedup_vs_' + args.dtype]}x the {args.dtype} batched speed "
              f"and {other['speedup_vs_one_at_a_time']}x {args.dtype} one at a time; "
              f"{other['changed_answers_vs_' + args.dtype]}/{len(prompts)} greedy answers change")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"Saved {args.output}")


if __name__ == "__main__":
    main()
