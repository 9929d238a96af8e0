"""Trained tokens per second and peak memory of sft.py's defaults vs TRL's defaults, on the same synthetic data.

    python benchmarks/train_throughput.py
    python benchmarks/train_throughput.py --max_steps 20 --model_name_or_path smollm2-135m-instruct
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORDS = ("revenue margin growth quarter model token data train answer question table value ratio percent year "
         "cost price share market report cash debt asset equity income expense profit loss rate").split()
# Each variant is sft.py run with these flags on top of the common ones. TRL's defaults on a CPU: no packing (every
# batch padded to its longest example, in random order), gradient checkpointing on, fp32 (TRL's bf16 default cannot run
# without CUDA), LoRA dropout 0.05.
VARIANTS = {
    "trl-defaults": ["--packing", "False", "--gradient_checkpointing", "True", "--bf16", "False", "--lora_dropout", "0.05",
                     "--train_sampling_strategy", "random"],
    "ours": [],
}


def synthetic_dataset(path, n, seed):
    """Prompt/completion pairs of widely varied length, as real instruction data has."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n):
            prompt = " ".join(rng.choices(WORDS, k=rng.randint(10, 120)))
            completion = " ".join(rng.choices(WORDS, k=rng.choice([rng.randint(3, 30), rng.randint(60, 250)])))
            f.write(json.dumps({"prompt": prompt, "completion": completion}) + "\n")


def run_variant(name, flags, args, data, workdir):
    output_dir = Path(workdir) / name
    command = [sys.executable, str(ROOT / "sft.py"), "--model_name_or_path", args.model_name_or_path,
               "--dataset_name", str(data), "--output_dir", str(output_dir), "--max_steps", str(args.max_steps),
               "--per_device_train_batch_size", str(args.batch_size), "--max_length", str(args.max_length),
               "--use_peft", "--learning_rate", "1e-4", "--logging_steps", "1", "--save_strategy", "no",
               "--eval_strategy", "no", "--plots", "False", "--seed", "0", *flags]
    started = time.time()
    log = Path(workdir) / f"{name}.log"
    with open(log, "w") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        # wait4 gives this child's own peak memory (getrusage would give the largest of all children so far)
        _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"error: variant {name} failed:\n{log.read_text()[-2000:]}")
    state = json.loads((output_dir / "trainer_state.json").read_text())
    logs = [entry for entry in state["log_history"] if "num_tokens" in entry]
    runtime = state["log_history"][-1]["train_runtime"]
    return {"variant": name, "flags": " ".join(flags) or "(sft.py defaults)",
            "tokens_per_second": logs[-1]["num_tokens"] / runtime, "trained_tokens": logs[-1]["num_tokens"],
            "train_seconds": runtime, "final_loss": logs[-1]["loss"], "wall_seconds": round(time.time() - started, 1),
            "peak_memory_mib": round(usage.ru_maxrss / 1024)}  # Linux reports KiB


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", default="smollm2-135m-instruct")
    parser.add_argument("--max_steps", type=int, default=8)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--max_length", type=int, default=1024)
    parser.add_argument("--examples", type=int, default=400)
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=FLAGS",
                        help="Extra variant, e.g. --variant 'bf16=--bf16 True'")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "train_throughput.json"))
    args = parser.parse_args()
    variants = dict(VARIANTS)
    for spec in args.variant:
        name, _, flags = spec.partition("=")
        variants[name] = flags.split()

    results = []
    with tempfile.TemporaryDirectory() as workdir:
        data = Path(workdir) / "synthetic.jsonl"
        synthetic_dataset(data, args.examples, seed=0)
        for name, flags in variants.items():
            print(f"running {name} ...", file=sys.stderr, flush=True)
            results.append(run_variant(name, flags, args, data, workdir))
    baseline = results[0]["tokens_per_second"]
    print("| variant | flags | trained tokens/s | vs trl-defaults | peak memory MiB | final loss |")
    print("|---|---|---|---|---|---|")
    for r in results:
        r["speedup"] = round(r["tokens_per_second"] / baseline, 2)
        print(f"| {r['variant']} | {r['flags']} | {r['tokens_per_second']:.0f} | {r['speedup']:.2f}x | "
              f"{r['peak_memory_mib']} | {r['final_loss']:.3f} |")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({"settings": vars(args), "results": results}, indent=2))
    print(f"Saved {args.output}")


if __name__ == "__main__":
    main()
