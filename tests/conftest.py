"""Shared fixtures: load a top-level script as a module, and paths to the repository."""

import importlib.util
import json
import os
import sys
from pathlib import Path
from unittest import mock

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_script(name):
    """Import `<repo>/<name>.py` as a module (the scripts are standalone files, not a package)."""
    module_name = f"script_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def run_sft(*args, env=None):
    """sft.py's command line in this process (~15 s of imports less than a subprocess), through its parser and main;
    the environment is restored afterwards, since TrainingArguments exports settings for accelerate."""
    sft = load_script("sft")
    with mock.patch.dict(os.environ, {"HF_TOKEN": "", **(env or {})}):
        sft.main(*sft.make_parser().parse_args_and_config([str(arg) for arg in args]))


@pytest.fixture(scope="session")
def root():
    return ROOT


@pytest.fixture(scope="session")
def default_model_dir():
    """The embedded SmolLM2-135M-Instruct as a safetensors folder (converted once into the user cache)."""
    return load_script("sft").resolve_model("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def tokenizer(default_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(default_model_dir)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, default_model_dir, tokenizer):
    """A randomly initialised 2-layer Llama with the real SmolLM2 tokenizer: fast enough for unit tests."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def run_script(*args, timeout=900, env=None, cwd=ROOT):
    """Run a repository script (or any command) in a subprocess; returns CompletedProcess with text output.

    The command runs in a session of its own that is killed whole on a timeout or an interrupt: subprocess.run would
    kill only `make` itself and leave the python it started running on (and holding the CPU) after the test failed."""
    import os
    import signal
    import subprocess

    command = [sys.executable, *map(str, args)] if str(args[0]).endswith(".py") else list(map(str, args))
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    with subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env,
                          start_new_session=True) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except BaseException:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def lonely_copy(script, folder):
    """A copy of one repository script alone in folder (no sibling scripts, no examples/), as a user copies it."""
    import shutil

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(ROOT / script, folder / script))


def write_json(path, records, lines=False):
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if lines:
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    else:
        path.write_text(json.dumps(records))
    return path


# Words of the tiny T5 tokenizer's vocabulary (beside every printable character): what the tests' examples say.
T5_WORDS = ("the of and to a is in what which capital name color colour france germany italy spain paris berlin rome "
            "madrid red blue green yellow sky grass sun sea answer question translate english german french good "
            "morning night thank you hello select from where table count name id age city how many are there").split()


@pytest.fixture(scope="session")
def tiny_t5_dir(tmp_path_factory):
    """A randomly initialised 2+2-layer FLAN-T5-style model (gated-GELU, untied output layer) with transformers' own
    T5Tokenizer (Unigram, </s> closing every input, <pad> = 0 = decoder start) over a small vocabulary: no pip package
    ships a real T5 sentencepiece model, and a T5 tokenizer keeps the T5 conventions the code must handle."""
    import string

    import torch
    from transformers import T5Config, T5ForConditionalGeneration, T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -3.0)]
    pieces += [("▁" + word, -4.0) for word in T5_WORDS]
    characters = string.ascii_letters + string.digits + string.punctuation
    pieces += [("▁" + c, -8.0) for c in characters] + [(c, -9.0) for c in characters]
    tokenizer = T5Tokenizer(vocab=pieces, extra_ids=8)
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(tokenizer), d_model=64, d_ff=128, d_kv=16, num_layers=2, num_decoder_layers=2,
                      num_heads=4, feed_forward_proj="gated-gelu", tie_word_embeddings=False, dropout_rate=0.0,
                      pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                      decoder_start_token_id=tokenizer.pad_token_id)
    folder = tmp_path_factory.mktemp("tiny-t5")
    T5ForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def offline_wandb_env(folder):
    """Environment for the real wandb client with no account and no network: runs land in <folder>/wandb."""
    folder = Path(folder)
    return {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(folder), "WANDB_API_KEY": "",
            "WANDB_DATA_DIR": str(folder / "data"), "WANDB_CACHE_DIR": str(folder / "cache"),
            "WANDB_CONFIG_DIR": str(folder / "config"), "WANDB_PROJECT": "smolft-tests"}


def read_wandb_runs(folder):
    """Every offline run under <folder>/wandb, read back from its .wandb file (wandb's protobuf records in LevelDB's
    log format; wandb >= 0.19 ships no Python reader for it): {"history": [...], "artifacts": [...], "dir": run dir}.

    Artifacts are {"name", "type", "files": {path in the artifact: staged local copy}}."""
    import struct

    from wandb.proto import wandb_internal_pb2

    runs = []
    for path in sorted(Path(folder).glob("wandb/offline-run-*/*.wandb")):
        data = path.read_bytes()
        assert data[:4] == b":W&B", path
        run = {"history": [], "artifacts": [], "dir": path.parent}
        position, pending = 7, b""  # after the 7-byte file header
        while position + 7 <= len(data):
            if 32768 - position % 32768 < 7:  # a block's tail too short for a record header is padding
                position += 32768 - position % 32768
                continue
            _, length, kind = struct.unpack("<IHB", data[position : position + 7])
            chunk = data[position + 7 : position + 7 + length]
            position += 7 + length
            pending = chunk if kind in (1, 2) else pending + chunk  # FULL/FIRST start a record, MIDDLE/LAST extend
            if kind not in (1, 4):
                continue
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            if record.HasField("history"):
                run["history"].append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                                       for item in record.history.item})
            elif record.HasField("artifact"):
                run["artifacts"].append({"name": record.artifact.name, "type": record.artifact.type,
                                         "files": {entry.path: entry.local_path
                                                   for entry in record.artifact.manifest.contents}})
        runs.append(run)
    return runs


def read_tensorboard(folder):
    """{tag: [(step, value)]} of every event file under folder: scalars as floats, text summaries as str."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found = {}
    for run_dir in sorted({path.parent for path in Path(folder).rglob("events.out.tfevents.*")}):
        events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0})
        events.Reload()
        for tag in events.Tags()["scalars"]:
            found.setdefault(tag, []).extend((e.step, e.value) for e in events.Scalars(tag))
        for tag in events.Tags()["tensors"]:
            found.setdefault(tag.removesuffix("/text_summary"), []).extend(
                (e.step, e.tensor_proto.string_val[0].decode()) for e in events.Tensors(tag))
    return found
