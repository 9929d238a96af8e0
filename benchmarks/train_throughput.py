"""Trained tokens per second, peak memory and model-FLOPs utilisation (MFU) of sft.py's defaults vs TRL's defaults,
LoRA and full fine-tuning, on the same synthetic data, against this machine's own matmul throughput.

MFU = model FLOPs per token x tokens/s / peak, where peak is measured first in the same run: fp32 and bf16 matmuls of
the model's own shapes (each projection at a batch of tokens, weighted by its share of the FLOPs). FLOPs per trained
token, with N = the parameters of every matmul (attention, MLP and the LM head; not the embedding lookup):
    full fine-tuning  6N + 3 x attention   (forward 2N; backward 4N: gradients of activations and of weights)
    LoRA              4N + 3 x attention   (the frozen weights need no weight gradient; adapters are < 1% of N)
    attention (forward) = 4 x layers x hidden x mean context, mean context = (row length + 1) / 2 (causal)
For SmolLM2-135M N = 134.5M (106.2M in the 30 layers + 28.3M LM head), so LoRA is ~0.54 GFLOP and full FT ~0.81 GFLOP
per token plus attention. The tokens are the non-padding tokens of the batches (prompt and completion).
`--data shared_prefix` trains on rows shaped like the skills recipe's (most of each row is a skill list every prompt
starts with) and adds sft.py without its shared-prefix packing; there tokens/s counts each row's tokens, prefix
included, so its MFU is an effective one.

    python benchmarks/train_throughput.py
    python benchmarks/train_throughput.py --data shared_prefix --only lora --batch_size 16 --max_length 256
    python benchmarks/train_throughput.py --max_steps 20 --model_name_or_path smollm2-135m-instruct
"""

import argparse
import importlib.util
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoConfig

ROOT = Path(__file__).resolve().parent.parent
WORDS = ("revenue margin growth quarter model token data train answer question table value ratio percent year "
         "cost price share market report cash debt asset equity income expense profit loss rate").split()
# Each variant is sft.py run with these flags on top of the common ones; the first of each kind (LoRA, full) is the
# baseline its ratio is taken to. TRL's defaults on a CPU: no packing (every batch padded to its longest example, in
# random order), gradient checkpointing on, fp32 (TRL's bf16 default cannot run without CUDA), LoRA dropout 0.05,
# TRL's own LM head.
TRL_DEFAULTS = ["--packing", "False", "--gradient_checkpointing", "True", "--bf16", "False",
                "--train_sampling_strategy", "random", "--cpu_fast_path", "False"]
VARIANTS = {
    "lora: trl-defaults": ["--use_peft", "--lora_dropout", "0.05", *TRL_DEFAULTS],
    "lora: ours, no fast path": ["--use_peft", "--cpu_fast_path", "False"],
    "lora: ours": ["--use_peft"],
    "full: trl-defaults": TRL_DEFAULTS,
    "full: ours, no fast path": ["--cpu_fast_path", "False"],
    "full: ours": [],
}


def layer_shapes(c):
    """(input features, output features) of each matmul of a Llama-style layer, and how many per layer."""
    head_dim = c.hidden_size // c.num_attention_heads
    return [((c.hidden_size, c.hidden_size), 2),  # q, o
            ((c.hidden_size, c.num_key_value_heads * head_dim), 2),  # k, v
            ((c.hidden_size, c.intermediate_size), 2),  # gate, up
            ((c.intermediate_size, c.hidden_size), 1)]  # down


def matmul_params(config):
    """N: parameters of every matmul per token, the LM head included (it is a matmul even when tied)."""
    per_layer = sum(k * n * count for (k, n), count in layer_shapes(config))
    return per_layer * config.num_hidden_layers + config.hidden_size * config.vocab_size


def flops_per_token(config, lora, mean_row_length):
    attention = 4 * config.num_hidden_layers * config.hidden_size * (mean_row_length + 1) / 2
    return (4 if lora else 6) * matmul_params(config) + 3 * attention


def matmul_throughput(config, dtype, tokens=2048, seconds=1.0):
    """This machine's matmul FLOP/s on the model's own shapes (a batch of `tokens` through each projection and the LM
    head), weighted by each shape's share of the model's FLOPs: the peak that MFU is measured against. Each shape's
    fastest run counts: the mean over a second moved the bf16 peak between 1,024 and 1,692 GFLOP/s from run to run
    on a shared 2-core machine, and with it every MFU."""
    shapes = [(shape, count * config.num_hidden_layers) for shape, count in layer_shapes(config)]
    shapes.append(((config.hidden_size, config.vocab_size), 1))
    total_flops = total_seconds = 0.0
    per_shape = {}
    for (k, n), count in shapes:
        a, b = torch.randn(tokens, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
        a @ b  # warm-up
        took, started = float("inf"), time.perf_counter()
        while time.perf_counter() - started < seconds * min(1, k * n / 1e6):
            run = time.perf_counter()
            a @ b
            took = min(took, time.perf_counter() - run)
        per_shape[f"{tokens}x{k}x{n}"] = round(2 * tokens * k * n / took / 1e9, 1)
        total_flops += 2 * k * n * count
        total_seconds += took / tokens * count
    return total_flops / total_seconds, per_shape


def synthetic_dataset(path, n, seed):
    """Prompt/completion pairs of widely varied length, as real instruction data has."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n):
            prompt = " ".join(rng.choices(WORDS, k=rng.randint(10, 120)))
            completion = " ".join(rng.choices(WORDS, k=rng.choice([rng.randint(3, 30), rng.randint(60, 250)])))
            f.write(json.dumps({"prompt": prompt, "completion": completion}) + "\n")


def shared_prefix_dataset(path, n, seed):
    """Rows shaped like the skills and tool-calling recipes: one long instruction in every prompt (a skill or tool
    list), then a short request and a short answer, so that most of each row is the prefix all rows share."""
    rng = random.Random(seed)
    instruction = "Skills: " + ", ".join(f"{word}({rng.choice(WORDS)})" for word in rng.sample(WORDS, 16))
    with open(path, "w") as f:
        for _ in range(n):
            request = " ".join(rng.choices(WORDS, k=rng.randint(4, 16)))
            answer = f"{rng.choice(WORDS)}({rng.choice(WORDS)}=\"{' '.join(rng.choices(WORDS, k=rng.randint(1, 5)))}\")"
            f.write(json.dumps({"prompt": f"{instruction}\nUser: {request}\nCall:\n", "completion": answer}) + "\n")


def run_variant(name, flags, args, data, workdir):
    output_dir = Path(workdir) / name
    command = [sys.executable, str(ROOT / "sft.py"), "--model_name_or_path", args.model_name_or_path,
               "--dataset_name", str(data), "--output_dir", str(output_dir), "--max_steps", str(args.max_steps),
               "--per_device_train_batch_size", str(args.batch_size), "--max_length", str(args.max_length),
               "--learning_rate", "1e-4", "--logging_steps", "1", "--save_strategy", "no",
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
    return {"variant": name, "flags": " ".join(flags) or "(sft.py defaults)", "lora": "--use_peft" in flags,
            "bf16": "--bf16" not in flags, "mean_row_length": logs[-1]["num_tokens"] / (len(logs) * args.batch_size),
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
    parser.add_argument("--data", choices=["varied", "shared_prefix"], default="varied",
                        help="varied: prompts and answers of widely varied length; shared_prefix: rows like the "
                        "skills recipe's (a long skill list in every prompt, short requests and answers), which "
                        "sft.py trains with the prompt prefix computed once per batch (--share_prompt_prefix)")
    parser.add_argument("--only", action="append", default=[], metavar="PREFIX",
                        help="Run only the variants whose name starts with this, e.g. --only lora")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=FLAGS",
                        help="Extra variant, e.g. --variant 'lora: r64=--use_peft --lora_r 64'")
    parser.add_argument("--output", default=None,
                        help="Default: benchmarks/results/train_throughput.json (_shared_prefix.json for that data)")
    args = parser.parse_args()
    suffix = "" if args.data == "varied" else "_" + args.data
    args.output = args.output or str(ROOT / "benchmarks" / "results" / f"train_throughput{suffix}.json")
    variants = dict(VARIANTS)
    if args.data == "shared_prefix":  # what computing the shared prefix once gains, on top of the rest
        variants = {new: flags for name, flags in VARIANTS.items() for new, flags in (
            [(name, flags)] if not name.endswith(": ours") else
            [(name + ", no prefix packing", [*flags, "--share_prompt_prefix", "False"]), (name, flags)])}
    variants = {name: flags for name, flags in variants.items() if not args.only or name.startswith(tuple(args.only))}
    for spec in args.variant:
        name, _, flags = spec.partition("=")
        variants[name] = flags.split()

    spec = importlib.util.spec_from_file_location("sft_script", ROOT / "sft.py")  # for its model aliases
    sft = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sft)
    config = AutoConfig.from_pretrained(sft.resolve_model(args.model_name_or_path)).get_text_config()
    peaks = {}
    for dtype in (torch.float32, torch.bfloat16):
        peak, per_shape = matmul_throughput(config, dtype)
        peaks[str(dtype).removeprefix("torch.")] = {"gflops": round(peak / 1e9, 1), "per_shape": per_shape}
    print(f"Matmul peak on the model's shapes ({torch.get_num_threads()} threads): fp32 {peaks['float32']['gflops']}"
          f" GFLOP/s, bf16 {peaks['bfloat16']['gflops']} GFLOP/s; N = {matmul_params(config) / 1e6:.1f}M matmul params",
          file=sys.stderr, flush=True)

    results = []
    with tempfile.TemporaryDirectory() as workdir:
        data = Path(workdir) / "synthetic.jsonl"
        (synthetic_dataset if args.data == "varied" else shared_prefix_dataset)(data, args.examples, seed=0)
        for name, flags in variants.items():
            print(f"running {name} ...", file=sys.stderr, flush=True)
            results.append(run_variant(name, flags, args, data, workdir))
    # with a shared prefix, tokens/s counts every row's tokens (what the data holds) although the prefix is computed
    # once per batch: its MFU is the effective one, which may exceed what the matmuls run at
    mfu_name = "MFU" if args.data == "varied" else "effective MFU (row tokens)"
    print(f"| variant | trained tokens/s | vs TRL defaults | {mfu_name} | peak memory MiB | final loss |")
    print("|---|---|---|---|---|---|")
    baselines = {}
    for r in results:
        kind = r["variant"].split(":")[0]
        baselines.setdefault(kind, r["tokens_per_second"])
        r["speedup"] = round(r["tokens_per_second"] / baselines[kind], 2)
        r["gflops_per_token"] = round(flops_per_token(config, r["lora"], r["mean_row_length"]) / 1e9, 3)
        r["bf16"] = r["bf16"] and sft.cpu_has_fast_bf16()
        peak = peaks["bfloat16" if r["bf16"] else "float32"]["gflops"]
        r["mfu"] = round(r["gflops_per_token"] * r["tokens_per_second"] / peak, 3)
        print(f"| {r['variant']} | {r['tokens_per_second']:.0f} | {r['speedup']:.2f}x | "
              f"{r['mfu']:.0%} of {'bf16' if r['bf16'] else 'fp32'} | {r['peak_memory_mib']} | {r['final_loss']:.3f} |")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    settings = {**vars(args), "threads": torch.get_num_threads(), "load_average": os.getloadavg()}
    Path(args.output).write_text(json.dumps({"settings": settings, "matmul_peak": peaks, "results": results}, indent=2))
    print(f"Saved {args.output}")


if __name__ == "__main__":
    main()
