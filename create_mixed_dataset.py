"""Build one Orca-2-style reasoning training set from several sources, by proportion, with prompt erasure.

    python create_mixed_dataset.py                                   # default mix -> mixed_finetuning_dataset/
    python create_mixed_dataset.py --config examples/orca/mix.yaml --output_dir data/orca --overwrite
    python sft.py --dataset_name data/orca ...                       # train on the result

Default mix (Orca 2 recipe: teacher-prompted data with prompt erasure, plus math reasoning sets):

    Open-Orca/SlimOrca-Dedup   50%  ShareGPT conversations, prompt erasure on
    meta-math/MetaMathQA       20%  query / response
    openai/gsm8k (main)        15%  question / answer
    TIGER-Lab/MathInstruct     15%  instruction / output

When the hub cannot be reached (or with --offline, HF_HUB_OFFLINE=1 or HF_DATASETS_OFFLINE=1) the default mix reads the
small samples shipped in examples/orca/, which have each source's real schema.

Prompt erasure (Orca 2): the detailed system prompt the teacher saw ("think step by step and justify your answer") is
removed and every record of that source gets one generic system prompt instead, so the student learns to pick the
reasoning strategy itself. The user turn and the teacher's answer stay unchanged.

Output: a DatasetDict (train, validation) saved with save_to_disk, columns `messages` ([{role, content}]) and `source`,
plus mix_summary.json (per source: requested, available, taken, erased, duplicates) in the same folder.
"""

# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "datasets==5.2.0",
#     "huggingface-hub==2.4.0",
#     "pyyaml==6.0.3",
# ]
# ///

import argparse
import json
import logging
import math
import os
import random
import shutil
import socket
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import datasets
import huggingface_hub.constants
import yaml

logger = logging.getLogger("create_mixed_dataset")

ROOT = Path(__file__).resolve().parent
SAMPLE_DIR = ROOT / "examples" / "orca"
DEFAULT_OUTPUT_DIR = "mixed_finetuning_dataset"
DEFAULT_TOTAL_SIZE = 10_000
DEFAULT_VALIDATION_SIZE = 0.05
DEFAULT_SEED = 42
# Our own wording of Orca 2's generic "cautious assistant" instruction.
DEFAULT_SYSTEM_PROMPT = (
    "You are a careful and helpful assistant. Read the request closely, work out the answer before you give it, "
    "and say plainly when you are not sure."
)
SHUFFLE_BUFFER = 10_000
HUB_CHECK_TIMEOUT_S = 3.0
# ShareGPT speakers kept in a chat mix; tool turns (function_call, observation) are left out, unlike sft.py's
# SHAREGPT_ROLES, because the mixed datasets are plain conversations.
SHAREGPT_CHAT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant",
                       "assistant": "assistant"}
SOURCE_KEYS = {"name", "label", "split", "subset", "format", "columns", "proportion", "count", "erase_prompt",
               "streaming", "offline_sample"}
CONFIG_KEYS = {"sources", "total_size", "validation_size", "seed", "system_prompt", "allow_upsample"}
FORMATS = ("columns", "sharegpt", "messages")
LOCAL_SUFFIXES = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}


@dataclass
class Source:
    name: str  # hub dataset name, or a local file / save_to_disk folder
    label: str = ""  # value of the output `source` column
    split: str = "train"
    subset: str | None = None
    format: str = "columns"  # columns | sharegpt | messages
    columns: dict = field(default_factory=dict)  # user, assistant, optional system (or conversations / messages)
    proportion: float | None = None
    count: int | None = None
    erase_prompt: bool = False
    streaming: bool = True  # hub sources only
    offline_sample: str | None = None  # local file used instead when the hub is out of reach
    where: str = ""  # for error messages: "mix.yaml sources[2]"


DEFAULT_MIX = [
    Source(name="Open-Orca/SlimOrca-Dedup", label="slimorca", format="sharegpt", proportion=0.50, erase_prompt=True,
           offline_sample="slimorca_dedup_sample.jsonl"),
    Source(name="meta-math/MetaMathQA", label="metamathqa", columns={"user": "query", "assistant": "response"},
           proportion=0.20, offline_sample="metamathqa_sample.jsonl"),
    Source(name="openai/gsm8k", label="gsm8k", subset="main", columns={"user": "question", "assistant": "answer"},
           proportion=0.15, offline_sample="gsm8k_main_sample.jsonl"),
    Source(name="TIGER-Lab/MathInstruct", label="mathinstruct",
           columns={"user": "instruction", "assistant": "output"}, proportion=0.15,
           offline_sample="mathinstruct_sample.jsonl"),
]


# copy of sft.py:fail — keep identical (tests/test_copies.py)
def fail(message):
    """Stop with a one-line error (no traceback) and exit status 1."""
    raise SystemExit(f"error: {message}")


def short(text, width=80):
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def env_offline():
    return any(os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on")
               for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def hub_reachable():
    """A quick TCP check so an unplugged machine falls back at once instead of waiting on HTTP retries."""
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=HUB_CHECK_TIMEOUT_S):
            return True
    except OSError:
        return False


def is_local(name):
    return Path(name).exists() or Path(name).suffix.lower() in LOCAL_SUFFIXES or name.startswith((".", "/", "~"))


def parse_validation_size(value, where="--validation_size"):
    try:
        number = float(value)
    except (TypeError, ValueError):
        fail(f"{where}: {value!r} is not a number; give a fraction such as 0.05 or a row count such as 200")
    if number < 0 or (number >= 1 and number != int(number)):
        fail(f"{where}: {value!r} must be a fraction in [0, 1) or a whole number of rows")
    return number if number < 1 else int(number)


def source_from_config(entry, where, config_dir):
    if not isinstance(entry, dict):
        fail(f"{where}: each source must be a mapping with at least `name`, got {type(entry).__name__}")
    unknown = sorted(set(entry) - SOURCE_KEYS)
    if unknown:
        fail(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(SOURCE_KEYS))}")
    if not entry.get("name"):
        fail(f"{where}: missing `name` (a hub dataset name or a local file / save_to_disk folder)")
    name = str(entry["name"])
    # Relative local paths in a config are relative to the config file, so the config works from any folder.
    if is_local(name) and not Path(name).is_absolute() and not Path(name).exists():
        candidate = config_dir / name
        if candidate.exists():
            name = str(candidate)
    columns = entry.get("columns") or {}
    if not isinstance(columns, dict):
        fail(f"{where}: `columns` must map roles to column names, e.g. {{user: question, assistant: answer}}")
    fmt = entry.get("format", "columns")
    if fmt not in FORMATS:
        fail(f"{where}: format {fmt!r} is not one of {', '.join(FORMATS)}")
    source = Source(name=name, label=str(entry.get("label") or entry["name"]), split=str(entry.get("split", "train")),
                    subset=entry.get("subset"), format=fmt, columns={str(k): str(v) if not isinstance(v, list) else
                                                                      [str(x) for x in v] for k, v in columns.items()},
                    proportion=entry.get("proportion"), count=entry.get("count"),
                    erase_prompt=bool(entry.get("erase_prompt", False)), streaming=bool(entry.get("streaming", True)),
                    offline_sample=entry.get("offline_sample"), where=where)
    if fmt == "columns" and not {"user", "assistant"} <= set(source.columns):
        fail(f"{where}: `columns` needs `user` and `assistant` (and optional `system`), got "
             f"{sorted(source.columns) or 'nothing'}; or set `format: sharegpt` / `format: messages`")
    return source


def read_config(path):
    path = Path(path)
    if not path.is_file():
        fail(f"--config {path}: no such file")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        fail(f"{path}{line}: not valid YAML ({short(getattr(error, 'problem', error), 100)})")
    if not isinstance(config, dict) or not isinstance(config.get("sources"), list) or not config["sources"]:
        fail(f"{path}: expected a mapping with a non-empty `sources:` list")
    unknown = sorted(set(config) - CONFIG_KEYS)
    if unknown:
        fail(f"{path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(CONFIG_KEYS))}")
    sources = [source_from_config(entry, f"{path} sources[{i}]", path.parent)
               for i, entry in enumerate(config["sources"])]
    return config, sources


def check_sizes(sources, total_size):
    """Turn proportions and counts into one requested row count per source (largest remainder, so they add up)."""
    labels = Counter(s.label for s in sources)
    for label, n in labels.items():
        if n > 1:
            fail(f"two sources share the label {label!r}; give each a distinct `label:`")
    for s in sources:
        where = s.where or s.label
        if (s.proportion is None) == (s.count is None):
            fail(f"{where}: give exactly one of `proportion` (share of --total_size) or `count` (rows)")
        if s.proportion is not None:
            if isinstance(s.proportion, bool) or not isinstance(s.proportion, (int, float)) or not 0 < s.proportion <= 1:
                fail(f"{where}: proportion {s.proportion!r} must be a number in (0, 1]")
        elif isinstance(s.count, bool) or not isinstance(s.count, int) or s.count <= 0:
            fail(f"{where}: count {s.count!r} must be a positive whole number")
    shares = [s for s in sources if s.proportion is not None]
    total_share = sum(s.proportion for s in shares)
    if total_share > 1 + 1e-6:
        fail(f"proportions sum to {total_share:.3f} (> 1); make them sum to 1, or use `count:` for absolute sizes")
    if shares and len(shares) == len(sources) and total_share < 1 - 1e-3:
        fail(f"proportions sum to {total_share:.3f} (< 1); make them sum to 1 so --total_size is the mix size")
    if shares and (not isinstance(total_size, int) or total_size <= 0):
        fail(f"--total_size {total_size!r} must be a positive whole number")
    share_rows = round(total_size * total_share) if shares else 0
    exact = {s.label: total_size * s.proportion for s in shares}
    requested = {s.label: math.floor(v) for s, v in zip(shares, exact.values())}
    leftover = share_rows - sum(requested.values())
    for label in sorted(exact, key=lambda k: exact[k] - requested[k], reverse=True)[:max(leftover, 0)]:
        requested[label] += 1
    for s in sources:
        if s.count is not None:
            requested[s.label] = s.count
    return requested


# copy of sft.py:read_json_records — keep identical (tests/test_copies.py)
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


def load_local(source):
    path = Path(source.name).expanduser()
    if not path.exists():
        fail(f"{source.where or source.label}: unknown source {source.name!r}: no such local file or folder")
    if path.is_dir():
        try:
            loaded = datasets.load_from_disk(str(path))
        except Exception as error:  # noqa: BLE001 - any unreadable folder gets the same one-line answer
            fail(f"{source.where or source.label}: {path} is not a save_to_disk dataset folder ({short(error, 100)})")
        if isinstance(loaded, datasets.DatasetDict):
            if source.split not in loaded:
                fail(f"{source.where or source.label}: {path} has no split {source.split!r}; "
                     f"found {', '.join(loaded)}")
            loaded = loaded[source.split]
        return loaded
    builder = LOCAL_SUFFIXES.get(path.suffix.lower())
    if builder == "json":
        records = read_json_records(path)
        if not records:
            fail(f"{source.where or source.label}: {path} holds no records")
        return datasets.Dataset.from_list(records)
    if builder is None:
        fail(f"{source.where or source.label}: {path}: unsupported file type; use .json, .jsonl, .csv, .parquet or "
             "a save_to_disk folder")
    try:
        return datasets.load_dataset(builder, data_files=str(path), split="train")
    except Exception as error:  # noqa: BLE001
        fail(f"{source.where or source.label}: cannot read {path} ({short(error, 120)})")


def load_hub(source, offline):
    """Stream the hub dataset when allowed, so only the rows we sample are downloaded."""
    try:
        return datasets.load_dataset(source.name, source.subset, split=source.split, streaming=source.streaming)
    except Exception as error:  # noqa: BLE001 - hub errors come in many types; all end the same way
        reason = "offline" if offline else short(str(error).splitlines()[0] if str(error) else type(error).__name__, 120)
        fail(f"{source.where or source.label}: unknown or unreachable source {source.name!r} ({reason}); "
             "check the name, or give a local file / save_to_disk folder")


def first_row(dataset):
    return next(iter(dataset.take(1)), None)


def check_columns(source, dataset):
    columns = dataset.column_names
    if columns is None:  # streaming datasets without metadata: look at one row
        row = first_row(dataset)
        columns = list(row) if row else []
    if source.format == "sharegpt":
        needed = [source.columns.get("conversations", "conversations")]
    elif source.format == "messages":
        needed = [source.columns.get("messages", "messages")]
    else:
        needed = []
        for role in ("user", "assistant", "system"):
            value = source.columns.get(role)
            needed += value if isinstance(value, list) else [value] if value else []
    missing = [c for c in needed if c not in columns]
    if missing:
        fail(f"{source.where or source.label} ({source.name}): missing column(s) {', '.join(missing)}; "
             f"found {', '.join(columns) or 'no columns'}; fix the `columns:` mapping or `format:`")


def sample_rows(dataset, n, seed):
    """Return (dataset of distinct sampled rows, available count or None if unknown)."""
    if isinstance(dataset, datasets.IterableDataset):
        rows = list(dataset.shuffle(seed=seed, buffer_size=SHUFFLE_BUFFER).take(n))
        sampled = datasets.Dataset.from_list(rows) if rows else None
        available = len(rows) if len(rows) < n else None
        return sampled, available
    available = len(dataset)
    indices = random.Random(seed).sample(range(available), min(n, available))
    return dataset.select(indices), available


def text_of(row, column):
    if isinstance(column, list):
        parts = [str(row.get(c) or "").strip() for c in column]
        return "\n\n".join(p for p in parts if p)
    value = row.get(column)
    return "" if value is None else str(value).strip()


def to_messages(row, fmt, columns, erase_prompt, system_prompt):
    """Map one source row to chat messages; erased records keep user and assistant turns verbatim."""
    if fmt == "sharegpt":
        messages = []
        for turn in row[columns.get("conversations", "conversations")] or []:
            role = SHAREGPT_CHAT_ROLES.get(str(turn.get("from", "")).strip().lower())
            if role is not None:
                messages.append({"role": role, "content": str(turn.get("value") or "")})
    elif fmt == "messages":
        messages = [{"role": str(m.get("role")), "content": str(m.get("content") or "")}
                    for m in row[columns.get("messages", "messages")] or []]
    else:
        messages = []
        if columns.get("system") and text_of(row, columns["system"]):
            messages.append({"role": "system", "content": text_of(row, columns["system"])})
        messages.append({"role": "user", "content": text_of(row, columns["user"])})
        messages.append({"role": "assistant", "content": text_of(row, columns["assistant"])})
    original = "\n".join(m["content"] for m in messages if m["role"] == "system").strip()
    if erase_prompt:
        messages = [{"role": "system", "content": system_prompt}] + [m for m in messages if m["role"] != "system"]
    first_user = next((m["content"].strip() for m in messages if m["role"] == "user"), "")
    valid = bool(first_user) and any(m["role"] == "assistant" and m["content"].strip() for m in messages)
    return {"messages": messages, "original_system": original, "erased": bool(erase_prompt and original),
            "user_key": first_user, "valid": valid}


def prepare_output_dir(output_dir, overwrite):
    if output_dir.exists():
        if not overwrite:
            fail(f"--output_dir {output_dir} already exists; pass --overwrite to replace it or choose another folder")
        looks_like_ours = output_dir.is_dir() and (
            not any(output_dir.iterdir()) or (output_dir / "dataset_dict.json").exists()
            or (output_dir / "mix_summary.json").exists())
        if not looks_like_ours:
            fail(f"--output_dir {output_dir} exists and is not a saved dataset; refusing to replace it even with "
                 "--overwrite, choose another folder")


def save_atomically(dataset_dict, summary, output_dir, num_proc):
    """Write beside the target, then swap, so a failed run never leaves a half-written or missing dataset."""
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.tmp-", dir=output_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temp, 0o777 & ~umask)  # mkdtemp makes it private; the result should look like any other folder
    old = None
    try:
        empty = {name: 1 for name, split in dataset_dict.items() if len(split) == 0}
        # An empty split saved with zero shards cannot be loaded back; one empty shard can (and forbids num_proc).
        dataset_dict.save_to_disk(str(temp), num_shards=empty or None, num_proc=None if empty else num_proc)
        (temp / "mix_summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
        if output_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.old-", dir=output_dir.parent))
            os.replace(output_dir, old / "data")
        os.replace(temp, output_dir)
    except BaseException:
        if old is not None and (old / "data").exists() and not output_dir.exists():
            os.replace(old / "data", output_dir)
        shutil.rmtree(temp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def print_summary(summary):
    header = ("source", "requested", "available", "taken", "erased", "duplicates")
    rows = [(s["source"], s["requested"], "?" if s["available"] is None else s["available"], s["taken"], s["erased"],
             s["duplicates"]) for s in summary["sources"]]
    rows.append(("total", sum(s["requested"] for s in summary["sources"]), "", summary["train_rows"]
                 + summary["validation_rows"], sum(s["erased"] for s in summary["sources"]),
                 sum(s["duplicates"] for s in summary["sources"])))
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w) for i, (v, w) in enumerate(zip(r, widths)))
             for r in [header] + rows]
    print("\n".join(lines[:1] + ["-" * len(lines[0])] + lines[1:-1] + ["-" * len(lines[0])] + lines[-1:]))


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML mix (sources with name, split, subset, columns/format, proportion or "
                                         "count, erase_prompt). Without it the built-in Orca 2 style mix is used.")
    parser.add_argument("--total_size", type=int, help=f"Rows in the mix before validation split and dedup "
                                                        f"(default {DEFAULT_TOTAL_SIZE}; offline sample: what fits).")
    parser.add_argument("--validation_size", help=f"Fraction (<1) or row count for validation "
                                                  f"(default {DEFAULT_VALIDATION_SIZE}).")
    parser.add_argument("--seed", type=int, help=f"Seed for sampling and shuffling (default {DEFAULT_SEED}).")
    parser.add_argument("--output_dir", default=DEFAULT_OUTPUT_DIR, help="Where save_to_disk writes the DatasetDict.")
    parser.add_argument("--system_prompt", help="Generic system prompt that replaces erased prompts.")
    parser.add_argument("--allow_upsample", action="store_true", default=None,
                        help="Repeat rows of a source that has fewer rows than asked (default: take all and warn).")
    parser.add_argument("--num_proc", type=int, default=None, help="Processes for mapping and saving.")
    parser.add_argument("--overwrite", action="store_true", help="Replace an existing --output_dir.")
    parser.add_argument("--offline", action="store_true", help="Never contact the hub (default mix: shipped samples).")
    return parser


def resolve_settings(args):
    """The mix's sources, with args' unset settings filled in from the --config file, then the defaults, and checked
    before anything is read."""
    if args.num_proc is not None and args.num_proc < 1:
        fail(f"--num_proc {args.num_proc} must be at least 1")
    config, sources = read_config(args.config) if args.config else ({}, [Source(**vars(s)) for s in DEFAULT_MIX])
    args.seed = args.seed if args.seed is not None else config.get("seed", DEFAULT_SEED)
    if isinstance(args.seed, bool) or not isinstance(args.seed, int):
        fail(f"seed {args.seed!r} must be a whole number")
    if args.system_prompt is None:
        args.system_prompt = config.get("system_prompt", DEFAULT_SYSTEM_PROMPT)
    if not str(args.system_prompt).strip():
        fail("--system_prompt is empty; erased records need a generic system prompt")
    if args.allow_upsample is None:
        args.allow_upsample = bool(config.get("allow_upsample"))
    args.validation_size = parse_validation_size(
        args.validation_size if args.validation_size is not None else config.get("validation_size",
                                                                                  DEFAULT_VALIDATION_SIZE))
    if args.total_size is None:
        args.total_size = config.get("total_size")
    return sources


def work_offline(args, sources):
    """Whether to read the hub's datasets from its local cache only: asked for, or the hub is out of reach."""
    offline = args.offline or env_offline()
    if any(not is_local(s.name) for s in sources) and not offline and not hub_reachable():
        logger.info("The Hugging Face hub cannot be reached; working offline.")
        offline = True
    if offline:
        # The libraries read the offline switch once at import; set it here too so hub names resolve from the local
        # cache only instead of waiting on network retries.
        datasets.config.HF_HUB_OFFLINE = huggingface_hub.constants.HF_HUB_OFFLINE = True
    return offline


def load_sources(sources, offline):
    """({label: dataset}, {label: the shipped sample read instead of an unreachable hub dataset}), columns checked."""
    loaded, sample_paths = {}, {}
    for s in sources:
        if is_local(s.name):
            loaded[s.label] = load_local(s)
            continue
        dataset = None
        if not offline:
            try:
                dataset = load_hub(s, offline)
            except SystemExit as error:
                if not s.offline_sample:
                    raise
                logger.info("%s; falling back to the shipped offline sample.", str(error).removeprefix("error: "))
        elif not s.offline_sample:
            dataset = load_hub(s, offline)  # may still come from the local hub cache
        if dataset is None:
            sample = Path(s.offline_sample)
            sample = sample if sample.is_absolute() else SAMPLE_DIR / sample
            logger.info("OFFLINE SAMPLE: %s is out of reach, reading the small shipped sample %s instead "
                        "(for a quick offline run only; connect to the hub for the real data).",
                        s.name, sample.relative_to(ROOT) if sample.is_relative_to(ROOT) else sample)
            sample_paths[s.label] = str(sample.relative_to(ROOT) if sample.is_relative_to(ROOT) else sample)
            s = Source(**{**vars(s), "name": str(sample)})
            loaded[s.label] = load_local(s)
        else:
            loaded[s.label] = dataset
    for s in sources:
        check_columns(s, loaded[s.label])
    return loaded, sample_paths


def mix_size(total_size, sources, loaded, sample_paths):
    """Rows in the mix: --total_size (or the config's), else with shipped samples the most they hold at the sources'
    proportions, else DEFAULT_TOTAL_SIZE."""
    if total_size is not None:
        return total_size
    if sample_paths and all(s.proportion is not None for s in sources):
        # The shipped samples are small: take the largest mix that keeps the proportions without repeating rows.
        total_size = min(math.floor(len(loaded[s.label]) / s.proportion + 1e-9) for s in sources
                         if s.label in sample_paths)
        logger.info("Offline sample: using --total_size %d (the most rows the samples hold at these proportions).",
                    total_size)
        return total_size
    return DEFAULT_TOTAL_SIZE


def mix_source(s, dataset, n, seed, args, seen, prompts_before):
    """(n of the source's rows as messages, prompts erased where asked, user turns already in `seen` dropped, or None;
    the source's line of the summary). Adds the kept user turns to `seen`, the erased system prompts to
    prompts_before."""
    sampled, available = sample_rows(dataset, n, seed)
    stat = {"source": s.label, "name": s.name, "requested": n, "available": available, "taken": 0, "erased": 0,
            "duplicates": 0, "skipped": 0, "upsampled": 0, "erase_prompt": s.erase_prompt}
    if sampled is None or len(sampled) == 0:
        logger.warning("WARNING: %s has no rows in split %r; it contributes nothing.", s.label, s.split)
        return None, stat
    mapped = sampled.map(to_messages, fn_kwargs={"fmt": s.format, "columns": s.columns,
                                                  "erase_prompt": s.erase_prompt, "system_prompt": args.system_prompt},
                         remove_columns=sampled.column_names, num_proc=args.num_proc, desc=f"formatting {s.label}")
    keep = []
    for i, (valid, key, erased, original) in enumerate(zip(mapped["valid"], mapped["user_key"], mapped["erased"],
                                                           mapped["original_system"])):
        if not valid:
            stat["skipped"] += 1
        elif key in seen:
            stat["duplicates"] += 1
        else:
            seen.add(key)
            keep.append(i)
            if erased:
                stat["erased"] += 1
                prompts_before[original] += 1
    if len(sampled) < n:
        if args.allow_upsample and keep:
            # Repeats are added after deduplication on purpose: upsampling is the user's explicit choice.
            extra = random.Random(seed).choices(keep, k=n - len(keep))
            stat["upsampled"] = len(extra)
            stat["erased"] += sum(mapped[i]["erased"] for i in extra) if s.erase_prompt else 0
            keep += extra
        else:
            logger.warning("WARNING: %s has only %d rows, %d were asked; taking all of them "
                           "(--allow_upsample repeats rows instead).", s.label, len(sampled), n)
    if stat["duplicates"]:
        logger.info("%s: dropped %d row(s) whose user turn already appeared in the mix.", s.label, stat["duplicates"])
    stat["taken"] = len(keep)
    part = mapped.select(keep).select_columns(["messages"])
    return part.add_column("source", [s.label] * len(part)), stat


def split_mix(parts, seed, validation_size):
    """The sources' rows shuffled together and split into train and validation."""
    parts = [p for p in parts if p is not None and len(p)]
    if not parts:
        fail("the mix is empty: no source gave any usable rows")
    mixed = datasets.concatenate_datasets(parts).shuffle(seed=seed).flatten_indices()
    n_validation = round(len(mixed) * validation_size) if isinstance(validation_size, float) else validation_size
    if n_validation >= len(mixed):
        fail(f"--validation_size {validation_size} leaves no training rows out of {len(mixed)}; make it smaller")
    return datasets.DatasetDict({"train": mixed.select(range(n_validation, len(mixed))),
                                 "validation": mixed.select(range(n_validation))})


def print_report(summary, output_dir):
    print_summary(summary)
    print(f"\nPrompt erasure: {summary['erased']} record(s) had their system prompt replaced by: "
          f"{short(summary['system_prompt'])}")
    if summary["top_system_prompts_before_erasure"]:
        print("Most common system prompts before erasure:")
        for item in summary["top_system_prompts_before_erasure"]:
            print(f"  {item['count']:>5}  {short(item['prompt'])}")
    if summary["offline_sample"]:
        print("Note: built from the small OFFLINE SAMPLE in examples/orca/, not the full hub datasets.")
    print(f"Saved train ({summary['train_rows']}) and validation ({summary['validation_rows']}) to {output_dir} "
          f"(summary: {output_dir / 'mix_summary.json'})")


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    sources = resolve_settings(args)
    output_dir = Path(args.output_dir)
    prepare_output_dir(output_dir, args.overwrite)

    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    loaded, sample_paths = load_sources(sources, work_offline(args, sources))
    total_size = mix_size(args.total_size, sources, loaded, sample_paths)
    requested = check_sizes(sources, total_size)

    parts, stats, seen, prompts_before = [], [], set(), Counter()
    for index, s in enumerate(sources):
        part, stat = mix_source(s, loaded[s.label], requested[s.label], args.seed + index, args, seen, prompts_before)
        parts.append(part)
        stats.append({**stat, "read_from": sample_paths.get(s.label, s.name)})
    dataset_dict = split_mix(parts, args.seed, args.validation_size)

    summary = {"sources": stats, "total_size": total_size, "seed": args.seed, "validation_size": args.validation_size,
               "train_rows": len(dataset_dict["train"]), "validation_rows": len(dataset_dict["validation"]),
               "system_prompt": args.system_prompt, "offline_sample": bool(sample_paths),
               "erased": sum(s["erased"] for s in stats),
               "top_system_prompts_before_erasure": [{"prompt": short(p, 120), "count": c}
                                                     for p, c in prompts_before.most_common(5)]}
    save_atomically(dataset_dict, summary, output_dir, args.num_proc)
    print_report(summary, output_dir)


if __name__ == "__main__":
    main()
