"""Batched generation (eval.py's generate: prompts sorted by length, left padding, KV cache) vs one example at a time.

Both runs use eval.py's own code on the same prompts from examples/instruct/test.json with greedy decoding, so the
answers should agree; the table shows seconds, generated tokens per second, the speed ratio and how many answers
agree (batched float arithmetic can differ in the last bits and flip a near-tie).

    python benchmarks/generation_speed.py
    python benchmarks/generation_speed.py --num_prompts 8 --max_new_tokens 32 --batch_size 8
"""

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_eval():
    """eval.py as a module (the scripts are standalone files, not a package)."""
    spec = importlib.util.spec_from_file_location("eval_script", ROOT / "eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed_generate(ev, model, tokenizer, prompts, batch_size, max_new_tokens):
    started = time.perf_counter()
    outputs = ev.generate(model, tokenizer, prompts, batch_size, max_new_tokens)
    seconds = time.perf_counter() - started
    tokens = sum(len(tokenizer(o, add_special_tokens=False)["input_ids"]) for o in outputs)
    return outputs, {"batch_size": batch_size, "seconds": round(seconds, 2), "generated_tokens": tokens,
                     "tokens_per_second": round(tokens / seconds, 1),
                     "prompts_per_second": round(len(prompts) / seconds, 2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", default="smollm2-135m-instruct")
    parser.add_argument("--dataset", default=str(ROOT / "examples" / "instruct" / "test.json"))
    parser.add_argument("--num_prompts", type=int, default=32)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--max_new_tokens", type=int, default=64)
    parser.add_argument("--dtype", default="float32", help="auto, float32, bfloat16, float16")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "generation_speed.json"))
    args = parser.parse_args()

    ev = load_eval()
    model_path = ev.resolve_model(args.model_name_or_path)
    tokenizer = ev.load_tokenizer(model_path)
    records = ev.read_json_records(Path(args.dataset))[: args.num_prompts]
    prompts = [row["prompt"] for row in ev.build_rows(records, tokenizer, args.dataset)]
    model, _ = ev.load_model(args.model_name_or_path, args.dtype)
    ev.generate(model, tokenizer, prompts[:2], 2, 4)  # warm-up: first-call setup is not generation speed

    print(f"one at a time: {len(prompts)} prompts ...", file=sys.stderr, flush=True)
    single_outputs, single = timed_generate(ev, model, tokenizer, prompts, 1, args.max_new_tokens)
    print(f"batched (batch size {args.batch_size}) ...", file=sys.stderr, flush=True)
    batched_outputs, batched = timed_generate(ev, model, tokenizer, prompts, args.batch_size, args.max_new_tokens)
    speedup = round(single["seconds"] / batched["seconds"], 2)
    agree = sum(a == b for a, b in zip(single_outputs, batched_outputs))

    print("| method | batch size | seconds | generated tokens/s | prompts/s |")
    print("|---|---|---|---|---|")
    for name, r in (("one at a time", single), ("batched (eval.py)", batched)):
        print(f"| {name} | {r['batch_size']} | {r['seconds']} | {r['tokens_per_second']} | {r['prompts_per_second']} |")
    print(f"batched is {speedup}x faster; {agree}/{len(prompts)} answers identical")
    result = {"settings": vars(args), "device": str(model.device), "one_at_a_time": single, "batched": batched,
              "speedup": speedup, "identical_answers": agree, "num_prompts": len(prompts)}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"Saved {args.output}")


if __name__ == "__main__":
    main()
