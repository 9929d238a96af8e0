"""Where a training step's time goes: torch.profiler on one CPU step of sft.py's setup (bf16 autocast where the CPU
has bf16 units, as sft.py's default, else fp32; LoRA r=16 on all linear layers or full fine-tuning, TRL's fused LM
head or sft.py's CPU one), grouped into parts, against the matmul peak of that dtype measured on the model's shapes in
the same run.

    python benchmarks/profile_step.py
    python benchmarks/profile_step.py --full --cpu_fast_path False --batch_size 8 --length 256
"""

import argparse
import importlib.util
import json
import resource
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from train_throughput import flops_per_token, matmul_throughput  # noqa: E402  (same FLOP count and peak)

# aten op -> part of the step. Eager attention's two batched matmuls (scores, weighted values) count as attention, the
# projections' mm/addmm as matmul; what is left is elementwise work (residual adds, RoPE, SiLU, norms' scaling, LoRA's
# scaling) and the time between ops (Python, autograd, allocation) is framework overhead. Before the names, the
# shapes decide (part_of): any op but a matmul on a (tokens x vocabulary) tensor is the loss head, on a (batch x heads
# x length x length) one attention, whatever its name (their casts, masking and scaling would otherwise count as
# casts and elementwise work: a third of the loss head's time went there).
PARTS = {
    "matmul (projections, LM head)": ("aten::mm", "aten::addmm", "aten::addmm_", "aten::linear", "aten::matmul"),
    "attention": ("aten::bmm", "aten::baddbmm", "aten::_softmax", "aten::_softmax_backward_data",
                  "aten::_scaled_dot_product_flash_attention_for_cpu",
                  "aten::_scaled_dot_product_flash_attention_for_cpu_backward"),
    "loss head (softmax, gather, metrics)": ("aten::_log_softmax", "aten::_log_softmax_backward_data", "aten::gather",
                                             "aten::scatter", "aten::scatter_add_", "aten::argmax", "aten::exp",
                                             "aten::amax", "aten::masked_scatter", "aten::masked_fill_", "aten::eq",
                                             "aten::lt", "aten::sub"),
    "norms (RMSNorm)": ("aten::pow", "aten::mean", "aten::rsqrt"),
    "dtype casts (autocast, fp32<->bf16)": ("aten::copy_", "aten::_to_copy"),
    "optimizer (AdamW)": ("aten::_fused_adamw_",) + tuple(f"aten::_foreach_{op}" for op in (
        "mul_", "add_", "addcmul_", "addcdiv_", "sqrt", "sqrt_", "div_", "lerp_", "add", "mul", "div")),
}

PREFAULT_BYTES = 3 << 30  # touched before the profiled step (main); a LoRA step at 8 x 192 tokens peaks at ~2 GB

MATMULS = PARTS["matmul (projections, LM head)"] + (
    "aten::bmm", "aten::baddbmm", "aten::_scaled_dot_product_flash_attention_for_cpu",
    "aten::_scaled_dot_product_flash_attention_for_cpu_backward")


def part_of(event, vocab_size):
    """The part of the step an op (key_averages grouped by input shape) belongs to."""
    if event.key in PARTS["matmul (projections, LM head)"]:
        return "matmul (projections, LM head)"
    shapes = [shape for shape in event.input_shapes if isinstance(shape, list) and len(shape) >= 2]
    if any(shape[-1] == vocab_size and shape[0] != vocab_size for shape in shapes):
        return "loss head (softmax, gather, metrics)"
    if any(len(shape) == 4 and shape[-1] == shape[-2] for shape in shapes):
        return "attention"
    return next((name for name, ops in PARTS.items() if event.key in ops),
                "other elementwise (residual, RoPE, SiLU, LoRA scaling)")


def load_sft():
    spec = importlib.util.spec_from_file_location("sft_script", ROOT / "sft.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(sft, args):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    attention = sft.pick_attention(None, False, False, args.length)  # what sft.py picks on a CPU
    model = AutoModelForCausalLM.from_pretrained(sft.resolve_model(args.model_name_or_path), dtype=torch.float32,
                                                 attn_implementation=attention)
    if not args.full:
        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", lora_dropout=0.0))
    base = model if args.full else model.get_base_model()
    add_fused_lm_head(base, outputs=("log_probs", "entropy", "is_top1"))  # as SFTTrainer does
    if args.cpu_fast_path:
        sft.add_cpu_lm_head(base, compile_head=args.compile_loss_head)
        sft.keep_freed_memory()
    # fused: the Trainer's default optim (adamw_torch_fused); plain AdamW loops over the tensors on the CPU, 9% of a
    # full fine-tuning step here
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, fused=True)
    return model.train(), optimizer


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", default="smollm2-135m-instruct")
    parser.add_argument("--full", action="store_true", help="Full fine-tuning instead of LoRA")
    parser.add_argument("--cpu_fast_path", type=lambda v: v.lower() == "true", default=True)
    parser.add_argument("--compile_loss_head", type=lambda v: v.lower() == "true", default=False,
                        help="The CPU head's fp32 work compiled (sft.py --compile_loss_head; compiled before the timing)")
    parser.add_argument("--bf16", type=lambda v: v.lower() == "true", default=None,
                        help="bf16 autocast; default: sft.py's, on where the CPU has bf16 units (AMX, AVX512-BF16)")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--length", type=int, default=192, help="Row length; the first half is prompt (no loss)")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "profile_step.json"))
    return parser.parse_args()


def step_function(model, optimizer, args, vocab_size, bf16, timings):
    """One training step on a fixed random batch (the first half of each row prompt, without loss), its forward,
    backward and optimizer seconds written to timings."""
    ids = torch.randint(0, vocab_size, (args.batch_size, args.length))
    labels = ids.clone()
    labels[:, : args.length // 2] = -100

    def step():
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels, fused_lm_head=True).loss
        forward = time.perf_counter()
        loss.backward()
        backward = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad()
        timings.update(forward=forward - started, backward=backward - forward, optimizer=time.perf_counter() - backward)
    return step


def profiled(step):
    """(the profiler's record of one step, the page faults during it)."""
    # The profiler's own memory moves the heap, so the profiled step's large tensors landed on fresh pages: 150,000-
    # 470,000 page faults, charged to whichever ops first touched them (the loss head's scoring forward took 0.7-0.85 s
    # profiled, 0.1 s unprofiled; the step 6.4-7.7 vs 4.8 s). Touched and freed first (malloc keeps it, as sft.py's
    # fast path sets), that memory serves the profiled step: 1-3 faults, 4.95 s profiled vs 4.60 s (LoRA, fp32).
    prefault = torch.empty(PREFAULT_BYTES // 4)
    prefault.fill_(0.0)
    del prefault
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        step()
    return prof, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults


def step_parts(prof, wall, vocab_size):
    """({part: seconds} of the profiled step of `wall` seconds, the seconds of its matmuls alone)."""
    parts = dict.fromkeys(PARTS, 0.0)
    parts["other elementwise (residual, RoPE, SiLU, LoRA scaling)"] = 0.0
    math = 0.0  # the matmuls alone: projections, LM head, attention's scores and weighted values
    for event in prof.key_averages(group_by_input_shape=True):
        if event.key.startswith("## Call CompiledFxGraph"):  # the compiled loss head, the only compiled code here
            parts["loss head (softmax, gather, metrics)"] += event.self_cpu_time_total / 1e6
        if event.key.startswith("aten::"):
            parts[part_of(event, vocab_size)] += event.self_cpu_time_total / 1e6
            math += event.self_cpu_time_total / 1e6 if event.key in MATMULS else 0.0
    parts["framework overhead (Python, autograd, allocation)"] = max(wall - sum(parts.values()), 0.0)
    return parts, math


def main():
    args = parse_args()
    sft = load_sft()
    model, optimizer = build(sft, args)
    config = model.config.get_text_config()
    bf16 = sft.cpu_has_fast_bf16() if args.bf16 is None else args.bf16
    dtype = "bf16" if bf16 else "fp32"
    peak, _ = matmul_throughput(config, torch.bfloat16 if bf16 else torch.float32)
    timings = {}
    step = step_function(model, optimizer, args, config.vocab_size, bf16, timings)

    step()  # warm-up (and compiling the loss head)
    unprofiled = None
    for _ in range(3):  # the fastest of 3 steps: single steps vary by 15% on a shared 2-core machine
        step()
        if unprofiled is None or sum(timings.values()) < sum(unprofiled.values()):
            unprofiled = dict(timings)
    prof, faults = profiled(step)
    wall = sum(timings.values())  # the profiled step: its ops' times add up to it, the rest is overhead
    parts, math = step_parts(prof, wall, config.vocab_size)
    tokens, seconds = args.batch_size * args.length, sum(unprofiled.values())
    mfu = flops_per_token(config, not args.full, args.length) * tokens / seconds / peak
    print(f"{'full fine-tuning' if args.full else 'LoRA'}, {dtype}, CPU fast path {args.cpu_fast_path}, "
          f"{args.batch_size} x {args.length} tokens, {torch.get_num_threads()} threads: {seconds:.2f} s/step "
          f"(forward {unprofiled['forward']:.2f}, backward {unprofiled['backward']:.2f}, optimizer "
          f"{unprofiled['optimizer']:.2f}), {tokens / seconds:.0f} tokens/s, MFU {mfu:.0%} of the measured {dtype} "
          f"peak {peak / 1e9:.0f} GFLOP/s")
    # the ceiling this hardware puts on MFU at these shapes: the step's model FLOPs if the matmuls of the projections,
    # LM head and attention were all that ran, at the speed they ran here (everything else removed). Their share of
    # the profiled step applies to the timed one, so the ceiling bounds its MFU even when other load on the machine
    # slowed one of the two (against the profiled step's own matmul seconds, one busy run had MFU 0.20, ceiling 0.07)
    matmul_seconds = math / wall * seconds
    ceiling = flops_per_token(config, not args.full, args.length) * tokens / matmul_seconds / peak if math else 0.0
    print(f"matmuls alone (attention's included): {math:.2f} s of the profiled step; MFU with every other part "
          f"removed: {ceiling:.0%}; {faults:,} page faults in the profiled step (each lands on an op's time)")
    if faults > 10_000:  # a bigger batch than PREFAULT_BYTES covers, or malloc handing memory back (fast path off)
        print(f"Warning: {faults:,} page faults in the profiled step; the ops that first touched fresh pages carry "
              "their time, so their parts are overstated")
    print(f"| part (profiled step: {wall:.2f} s) | seconds | share |\n|---|---|---|")
    for name, part_seconds in sorted(parts.items(), key=lambda item: -item[1]):
        print(f"| {name} | {part_seconds:.2f} | {part_seconds / wall:.0%} |")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({
        "settings": vars(args), "threads": torch.get_num_threads(), "seconds_per_step": seconds, "timings": unprofiled,
        "tokens_per_second": tokens / seconds, "mfu": mfu, "dtype": dtype, "peak_gflops": peak / 1e9,
        "profiled_step_seconds": wall, "parts_seconds": parts, "matmul_seconds": math,
        "mfu_ceiling_matmuls_only": ceiling, "profiled_step_page_faults": faults}, indent=2) + "\n")
    print(f"Saved {args.output}")


if __name__ == "__main__":
    main()
