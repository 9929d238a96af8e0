"""GPU memory of full fine-tuning, LoRA and QLoRA of a decoder-only model, estimated from its config alone (no weights,
no data): for choosing the method, batch and length before renting a GPU. It takes sft.py's own flags and recipes and
reads the ones that size memory: --model_name_or_path, --per_device_train_batch_size, --max_length, --lora_r,
--lora_target_modules, --dtype; the table also sizes reference models of 1B-7B at the same settings.

    python benchmarks/estimate_memory.py --model_name_or_path meta-llama/Llama-3.2-1B \
        --per_device_train_batch_size 4 --max_length 1024 --dtype bfloat16
    python benchmarks/estimate_memory.py --config examples/instruct/recipe.yaml
"""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def fail(message):
    raise SystemExit(f"error: {message}")


# estimate_memory's reference models, from each model's config.json
REFERENCE_SHAPES = {
    "Llama-3.2-1B": dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                         num_attention_heads=32, num_key_value_heads=8, head_dim=64, tie_word_embeddings=True),
    "Phi-3-mini (3.8B)": dict(vocab_size=32064, hidden_size=3072, intermediate_size=8192, num_hidden_layers=32,
                              num_attention_heads=32, num_key_value_heads=32, tie_word_embeddings=False),
    "Llama-2-7B": dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=32, tie_word_embeddings=False),
    "Mistral-7B": dict(vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False),
}


def estimate_memory(config, name="model", batch_size=8, max_length=512, lora_r=16, lora_target_modules=None,
                    lora_weights_bytes=2, references=True):
    """Estimate GPU memory (GiB, one GPU, DDP) for full fine-tuning, LoRA and QLoRA of a Llama-style decoder.

    `config` is a transformers config or a dict of its fields. Returns a dict with the parameter counts, one row of
    GiB figures per method and `table`, the printable text (with the same figures for reference models of 1B-7B).
    Assumptions, also printed under the table:
    - full: fp32 weights, grads and both Adam moments (16 B/param) plus the bf16 copies that autocast keeps for the
      backward pass (2 B/param): sft.py's default on a GPU (bf16 autocast over fp32 weights);
    - LoRA: frozen weights at `lora_weights_bytes` per param (2 with --dtype bfloat16, 4 with sft.py's default fp32),
      the adapter in fp32 with its grads and Adam moments (16 B per adapter param);
    - QLoRA: NF4 linear layers with double-quantized constants (0.5 + 1/64 + 4/16384 B/param), embeddings, norms and
      lm_head in bf16, adapter as for LoRA;
    - activations in bf16 with SDPA/flash attention (no length x length scores) and an fp32 residual stream; TRL's
      fused LM head never builds the full logits, so they are left out. With gradient checkpointing only each layer's
      input is kept, plus one layer recomputed at a time. 0.5 GiB for the CUDA context. Expect +-30%.
    """
    get = config.get if isinstance(config, dict) else (lambda key, default=None: getattr(config, key, default))
    if not (get("hidden_size") and get("num_hidden_layers") and get("vocab_size") and get("num_attention_heads")):
        fail(f"estimate_memory.py: the config of {name} lacks hidden_size/num_hidden_layers/vocab_size/"
             "num_attention_heads; only decoder-only Llama-style models are supported")
    vocab, hidden, layers = get("vocab_size"), get("hidden_size"), get("num_hidden_layers")
    intermediate = get("intermediate_size") or 4 * hidden
    heads = get("num_attention_heads")
    q_size = heads * (get("head_dim") or hidden // heads)
    kv_size = (get("num_key_value_heads") or heads) * (get("head_dim") or hidden // heads)
    experts = get("num_local_experts") or get("num_experts") or 1  # mixture of experts: every expert's MLP is stored
    # (in_features, out_features, copies) of each linear layer of one decoder layer, by its usual module name
    linears = {"q_proj": (hidden, q_size, 1), "k_proj": (hidden, kv_size, 1), "v_proj": (hidden, kv_size, 1),
               "o_proj": (q_size, hidden, 1), "gate_proj": (hidden, intermediate, experts),
               "up_proj": (hidden, intermediate, experts), "down_proj": (intermediate, hidden, experts)}
    layer_linear = sum(i * o * n for i, o, n in linears.values()) + (experts * hidden if experts > 1 else 0)
    embeddings = vocab * hidden * (1 if get("tie_word_embeddings", True) else 2)
    biases = q_size + 2 * kv_size if (get("attention_bias") or get("model_type") == "qwen2") else 0
    small = layers * (2 * hidden + biases) + hidden  # norms (and q/k/v biases), never quantized
    params = embeddings + layers * layer_linear + small
    targets = list(linears) if not lora_target_modules or "all-linear" in lora_target_modules else \
        [key for key in linears if key in lora_target_modules]
    lora_params = layers * sum(lora_r * (linears[key][0] + linears[key][1]) * linears[key][2] for key in targets)

    gib = 2 ** 30
    # bytes one layer keeps per token for the backward pass: q/k/v/o and attention output, the SwiGLU tensors and the
    # layer input in bf16, the two RMSNorms' fp32 intermediates
    per_layer = 2 * (5 * hidden + q_size + 2 * kv_size + 4 * intermediate) + 16 * hidden
    lora_per_layer = 2 * sum(linears[key][0] for key in targets)  # each adapter keeps dropout(x)
    residual = 4 * hidden  # the fp32 residual stream entering each layer: all that checkpointing keeps
    nf4 = 0.5 + 1 / 64 + 4 / (64 * 256)
    methods = {  # weights bytes, grads + optimizer bytes, extra activation bytes per token and layer
        "full": (6 * params, 12 * params, 0),
        f"LoRA r={lora_r}": (lora_weights_bytes * params, 16 * lora_params, lora_per_layer),
        f"QLoRA r={lora_r}": (nf4 * layers * layer_linear + 2 * (embeddings + small), 16 * lora_params, lora_per_layer),
    }
    rows = {}
    for method, (weights, state, extra_per_layer) in methods.items():
        tokens = batch_size * max_length
        checkpointed = tokens * (layers * residual + per_layer + extra_per_layer) / gib
        kept = tokens * layers * (residual + per_layer + extra_per_layer) / gib
        base = weights / gib + state / gib + 0.5
        rows[method] = {"weights": weights / gib, "grads+optimizer": state / gib, "activations_ckpt": checkpointed,
                        "activations": kept, "total_ckpt": base + checkpointed, "total": base + kept}

    reference_lines = []
    if references:
        reference_lines = ["", f"Reference models, total GiB per GPU at batch {batch_size} x {max_length}, "
                               "gradient checkpointing on (off):",
                           f"{'model':<18} {'params':>7}" + "".join(f"{method:>17}" for method in rows)]
        for ref_name, shape in REFERENCE_SHAPES.items():
            ref = estimate_memory(shape, ref_name, batch_size, max_length, lora_r, lora_target_modules,
                                  lora_weights_bytes, references=False)
            reference_lines.append(f"{ref_name:<18} {ref['params'] / 1e9:>6.2f}B" + "".join(
                f"{row['total_ckpt']:>9.1f} ({row['total']:>5.1f})" for row in ref["rows"].values()))
    table = memory_table(name, params, lora_params, targets, rows, batch_size, max_length, lora_r, lora_weights_bytes,
                         reference_lines)
    return {"params": params, "lora_params": lora_params, "rows": rows, "table": table}


def memory_table(name, params, lora_params, targets, rows, batch_size, max_length, lora_r, lora_weights_bytes,
                 reference_lines):
    """estimate_memory's printable text: the figures of each method, the reference models' lines, the assumptions."""
    lines = [f"Estimated GPU memory for {name}: {params / 1e6:,.1f}M parameters, LoRA r={lora_r} adapter "
             f"{lora_params / 1e6:.2f}M on {','.join(targets)}; batch {batch_size} x {max_length} tokens per GPU",
             f"{'method':<12} {'weights':>8} {'grads+Adam':>10}  activations ckpt / none    total ckpt / none"]
    for method, row in rows.items():
        lines.append(f"{method:<12} {row['weights']:>7.2f}G {row['grads+optimizer']:>9.2f}G  "
                     f"{row['activations_ckpt']:>10.2f}G / {row['activations']:>6.2f}G  "
                     f"{row['total_ckpt']:>8.1f}G / {row['total']:>5.1f}G")
    assumptions = [
        "Assumes: full = fp32 weights, grads and Adam + bf16 autocast copies (18 B/param); LoRA frozen weights "
        f"{lora_weights_bytes} B/param ({'--dtype bfloat16' if lora_weights_bytes == 2 else 'fp32'}), adapter fp32 + "
        "Adam; QLoRA = NF4 with double quantization (0.52 B/param) on the linear layers, bf16 elsewhere;",
        "bf16 activations with flash/SDPA attention, no full logits (TRL's fused LM head), +0.5 GiB CUDA context; "
        "+-30%. Per GPU under DDP: FSDP/ZeRO-3 divide weights and grads+Adam by the GPU count, ZeRO-2 grads+Adam."]
    return "\n".join(lines + reference_lines + [""] + assumptions)


def load_sft():
    """sft.py as a module: its parser (the same flags and recipes), model aliases and config checks."""
    spec = importlib.util.spec_from_file_location("sft_script", ROOT / "sft.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if {"-h", "--help"} & set(argv):
        print(__doc__.strip())
        return
    sft = load_sft()
    _, training_args, model_args, _ = sft.parse_arguments(argv)
    model_name = model_args.model_name_or_path or sft.DEFAULT_MODEL
    config = sft.load_model_config(sft.resolve_model(model_name), model_name, model_args.model_revision,
                                   training_args.trust_remote_code)
    if sft.model_kind(config, model_name) == "seq2seq":
        fail(f"estimate_memory.py sizes decoder-only (Llama-style) models; {model_name} is an encoder-decoder "
             f"({config.model_type}), which it does not cover")
    print(estimate_memory(
        config.get_text_config(), model_name, training_args.per_device_train_batch_size,
        training_args.max_length or 1024, model_args.lora_r, model_args.lora_target_modules,
        2 if model_args.dtype in ("bfloat16", "float16", "auto") else 4)["table"])


if __name__ == "__main__":
    main()
