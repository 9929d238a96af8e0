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

This machine's speed drifts (other load, a shared host: the same batched run took 8.3 to 10.9 s in five runs in a row),
so every way of generating runs --repeats times, in turn, and its time is the sum over its batches of each batch's
fastest run; one at a time, each prompt's fastest run, which if anything favours it (a prompt takes ~1 s, a
batch ~10 s: short runs are likelier to miss a burst). Each run's total is in the JSON.

    python benchmarks/generation_speed.py
    python benchmarks/generation_speed.py --num_prompts 16 --max_new_tokens 32 --repeats 1
    python benchmarks/generation_speed.py --dataset data/skills/test.json --num_prompts 64 --max_new_tokens 32
"""

import argparse
import contextlib
import copy
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


def batch_timer(ev):
    """Wrap eval.py's in_batches and in_given_batches so that every batch's seconds are recorded (generate() runs its
    batches through one of them); returns the list they are appended to."""
    seconds, in_batches, in_given_batches = [], ev.in_batches, ev.in_given_batches

    def timed(step):
        def timed_step(batch):
            started = time.perf_counter()
            step(batch)
            seconds.append(time.perf_counter() - started)
        return timed_step

    ev.in_batches = lambda items, batch_size, step, desc: in_batches(items, batch_size, timed(step), desc)
    ev.in_given_batches = lambda batches, step, desc: in_given_batches(batches, timed(step), desc)
    return seconds


def timed_generate(ev, model, tokenizer, prompts, lengths, batch_size, max_new_tokens, times):
    """eval.py's generate on the prompts (of `lengths` tokens): (answers, each batch's seconds). Batches come in the
    same order every run (sorted by length), so repeats line up batch by batch."""
    own_loop = ev.own_greedy_loop(model, tokenizer.eos_token_id)
    batch_size = batch_size or ev.generate_batch_size(model, max(lengths), max_new_tokens, own_loop)  # eval.py's
    times.clear()
    outputs = ev.generate(model, tokenizer, prompts, batch_size, max_new_tokens)
    return outputs, {"batch_size": batch_size, "own_loop": own_loop, "batch_seconds": list(times)}


def summarize(runs, model, tokenizer, lengths, outputs, peak):
    """The table row of one way of generating: seconds are the sum over its batches of each batch's fastest run (one
    at a time, each prompt's fastest), so a burst of other load on the machine slows no configuration's number."""
    new = [len(tokenizer(o, add_special_tokens=False)["input_ids"]) for o in outputs]
    flops = [generation_flops(model.config.get_text_config(), p, n) for p, n in zip(lengths, new)]
    seconds = sum(map(min, zip(*(r["batch_seconds"] for r in runs))))
    tokens = sum(new)
    return {"batch_size": runs[0]["batch_size"], "own_loop": runs[0]["own_loop"],
            "dtype": str(model.dtype).removeprefix("torch."), "seconds": round(seconds, 2),
            "seconds_per_repeat": [round(sum(r["batch_seconds"]), 2) for r in runs],
            "generated_tokens": tokens, "prompt_tokens": sum(lengths),
            "tokens_per_second": round(tokens / seconds, 1), "prompts_per_second": round(len(lengths) / seconds, 2),
            "mfu": round(sum(f[0] for f in flops) / seconds / peak, 4),
            "mfu_answer_only": round(sum(f[1] for f in flops) / seconds / peak, 4)}


@contextlib.contextmanager
def patched(module, values):
    """module's attributes set to values for the block, as they were after it."""
    saved = {name: getattr(module, name) for name in values}
    vars(module).update(values)
    try:
        yield
    finally:
        vars(module).update(saved)


def variants(ev, model, tokenizer, args):
    """(result key, table label, batch size, model, eval.py attributes patched) of every way of generating compared."""
    ways = [("one_at_a_time", "one at a time", 1, model, {}),
            ("batched", "batched (eval.py)", args.batch_size, model, {})]
    if ev.own_greedy_loop(model, tokenizer.eos_token_id):
        # eval.py before its own loop: model.generate, batches of DEFAULT_BATCH_SIZE (unless --batch_size); and eval.py
        # with every prompt read whole: what reading the prefix all prompts share once gains
        ways[1:1] = [("batched_model_generate", "batched, model.generate (eval.py before)",
                      args.batch_size or ev.DEFAULT_BATCH_SIZE, model, {"own_greedy_loop": lambda *args: False}),
                     ("batched_without_shared_prefix", "batched, eval.py without the shared prefix", args.batch_size,
                      model, {"MIN_SHARED_PREFIX": 10**9})]
    if not args.compare_dtype:
        return ways
    other = copy.deepcopy(model).to(getattr(torch, args.compare_dtype))
    return [*ways, ("batched_" + args.compare_dtype, f"batched, {args.compare_dtype}", args.batch_size, other, {})]


def report(result, ways, outputs, args):
    """Add the ratios and answer agreements to result and print the table."""
    single, batched, n = result["one_at_a_time"], result["batched"], result["num_prompts"]
    result["speedup"] = round(single["seconds"] / batched["seconds"], 2)
    result["identical_answers"] = sum(a == b for a, b in zip(outputs["one_at_a_time"], outputs["batched"]))
    notes = [f"batched is {result['speedup']}x faster than one at a time; {result['identical_answers']}/{n} answers "
             "identical"]
    if "batched_model_generate" in result:
        generate, whole = result["batched_model_generate"], result["batched_without_shared_prefix"]
        for key in ("batched_model_generate", "batched_without_shared_prefix"):
            result[key]["identical_answers_to_eval_py"] = sum(
                a == b for a, b in zip(outputs[key], outputs["batched"]))
        result["own_loop_speedup"] = round(generate["seconds"] / batched["seconds"], 2)
        result["shared_prefix_speedup"] = round(whole["seconds"] / batched["seconds"], 2)
        notes += [f"batched eval.py is {result['own_loop_speedup']}x model.generate at batch size "
                  f"{generate['batch_size']} (eval.py before); {generate['identical_answers_to_eval_py']}/{n} answers "
                  "identical",
                  f"reading the shared prompt prefix once is {result['shared_prefix_speedup']}x reading every prompt "
                  f"whole; {whole['identical_answers_to_eval_py']}/{n} answers identical"]
    if args.compare_dtype:
        other = result["batched_" + args.compare_dtype]
        other["changed_answers_vs_" + args.dtype] = sum(
            a != b for a, b in zip(outputs["batched_" + args.compare_dtype], outputs["batched"]))
        other["speedup_vs_" + args.dtype] = round(batched["seconds"] / other["seconds"], 2)
        other["speedup_vs_one_at_a_time"] = round(single["seconds"] / other["seconds"], 2)
        notes.append(f"{args.compare_dtype} batched is {other['speedup_vs_' + args.dtype]}x the {args.dtype} batched "
                     f"speed and {other['speedup_vs_one_at_a_time']}x {args.dtype} one at a time; "
                     f"{other['changed_answers_vs_' + args.dtype]}/{n} greedy answers change"
                     + ("" if result["cpu_bf16_units"] or result["device"] != "cpu" else
                        " (this CPU has no bf16 units, AMX or AVX512-BF16: its 16-bit matmuls are emulated)"))
    print(f"Fastest of {args.repeats} runs per batch (per prompt one at a time); seconds of each run in the JSON")
    print("| method | dtype | batch size | seconds | generated tokens/s | prompts/s | MFU | MFU, answer only |")
    print("|---|---|---|---|---|---|---|---|")
    for key, label, *_ in ways:
        r = result[key]
        print(f"| {label} | {r['dtype']} | {r['batch_size']} | {r['seconds']} | {r['tokens_per_second']} | "
              f"{r['prompts_per_second']} | {r['mfu']:.1%} | {r['mfu_answer_only']:.1%} |")
    print("\n".join(notes))


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
    parser.add_argument("--repeats", type=int, default=3,
                        help="Runs of every way of generating, taken in turn; each batch's fastest run counts")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "generation_speed.json"))
    args = parser.parse_args()

    ev = load_eval()
    model_path = ev.resolve_model(args.model_name_or_path)
    tokenizer = ev.load_tokenizer(model_path)
    records = ev.read_json_records(Path(args.dataset))[: args.num_prompts]
    prompts = [row["prompt"] for row in ev.build_rows(records, tokenizer, args.dataset)]
    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    model, _ = ev.load_model(args.model_name_or_path, args.dtype)
    config = model.config.get_text_config()
    ways = variants(ev, model, tokenizer, args)
    peaks = {dtype: matmul_throughput(config, dtype)[0] for dtype in {way[3].dtype for way in ways}}
    times = batch_timer(ev)
    runs, outputs = {way[0]: [] for way in ways}, {}
    for repeat in range(args.repeats):
        for key, label, batch_size, way_model, patches in ways:
            with patched(ev, patches):
                if not repeat:  # warm-up: first-call setup is not generation speed
                    ev.generate(way_model, tokenizer, prompts[:2], 2, 4)
                print(f"{label}, run {repeat + 1} of {args.repeats} ...", file=sys.stderr, flush=True)
                outputs[key], run = timed_generate(ev, way_model, tokenizer, prompts, lengths, batch_size,
                                                   args.max_new_tokens, times)
            runs[key].append(run)
    result = {"settings": vars(args), "device": str(model.device), "threads": torch.get_num_threads(),
              "matmul_peak_gflops": {str(k).removeprefix("torch."): round(v / 1e9, 1) for k, v in peaks.items()},
              "num_prompts": len(prompts), "cpu_bf16_units": ev.cpu_has_fast_bf16()}
    for key, label, batch_size, way_model, patches in ways:
        result[key] = summarize(runs[key], way_model, tokenizer, lengths, outputs[key], peaks[way_model.dtype])
    report(result, ways, outputs, args)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"Saved {args.output}")


if __name__ == "__main__":
    main()
