"""Prepare training data: FinQA/ConvFinQA program-of-thought pairs, skill-calling examples and text-to-SQL pairs.

    python training_data.py --finqa_dir examples/finqa --output_dir data/finqa
    python training_data.py -c --file examples/skills/weather_examples.txt --n_generations 5
    python training_data.py -t --files examples/skills/*_examples.txt > dataset/training_data.json
"""

import argparse
import ast
import json
import logging
import os
import random
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

logger = logging.getLogger("training_data")


def fail(message):
    """Stop with a one-line error (no traceback) and exit status 1."""
    raise SystemExit(f"error: {message}")


# ---------------------------------------------------------------------------------------------------------------------
# FinQA / ConvFinQA (issue 3)
# ---------------------------------------------------------------------------------------------------------------------


def add_finqa_arguments(parser):
    group = parser.add_argument_group("FinQA / ConvFinQA")
    group.add_argument("--finqa_dir", help="Folder with FinQA train.json, dev.json, test.json (official format).")


def prepare_finqa(args):
    fail("FinQA preparation is not written yet")


# ---------------------------------------------------------------------------------------------------------------------
# Skill calling (issue 4)
# ---------------------------------------------------------------------------------------------------------------------

SKILL_HEADER = re.compile(r"^####\s*([^:#]+?)\s*:\s*$")
SKILL_TURN = re.compile(r"^###\s*(User|Assistant)\s*:(.*)$")
SKILL_SIGNATURE = re.compile(r"^([A-Za-z_]\w*)\s*\((.*)\)$")
SKILL_PARAMETER = re.compile(r'^([A-Za-z_]\w*)\s*(?:=\s*"([^"]*)")?$')
SKILL_TOOL = "add_examples"
# Argument values a model has to compose (an expression) rather than copy from the request; every other value must
# appear in the request, so generated examples never teach the model to invent places, topics or programs.
COMPOSED_ARGUMENTS = {("math", "question")}
SKILL_REASONS = {
    "not_a_call": 'is not one call; write it as name(key="value", ...)',
    "positional_argument": 'uses a positional argument; write keyword arguments, e.g. weather(location="Berlin")',
    "repeated_argument": "names the same argument twice",
    "non_string_argument": 'has a value that is not a quoted string; quote it, e.g. timer(duration="five minutes")',
    "unknown_skill": "calls a skill that no '#### Prompt:' section defines",
    "wrong_skill": "calls another skill than this file's",
    "unknown_argument": "uses an argument name that the skill's signature does not have",
    "bad_choice": "gives a value outside the choices in the signature",
    "empty_argument": "has an empty argument; leave the argument out instead",
    "not_in_request": "has an argument value that does not appear in the request",
    "empty_request": "has an empty request",
    "duplicate": "repeats a request that is already there",
}


def skill_key(text):
    """Requests that differ only in case, spacing or end punctuation are the same request."""
    return " ".join(text.lower().split()).rstrip(" .!?")


def parse_skill_signature(text, where):
    """'notes(action="add|list", note)' -> ("notes", ["action", "note"], {"action": {"add", "list"}})."""
    match = SKILL_SIGNATURE.match(text.strip())
    if not match:
        fail(f"{where}: the first line of '#### Prompt:' must be the skill's signature, e.g. weather(location)")
    parameters, choices, part, quoted = [], {}, "", False
    # split on commas outside quotes: choices such as "add|list" may hold any text
    for char in match.group(2) + ",":
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            if part.strip():
                parameter = SKILL_PARAMETER.match(part.strip())
                if not parameter:
                    fail(f'{where}: bad parameter {part.strip()!r} in the signature; write name or name="a|b"')
                parameters.append(parameter.group(1))
                if parameter.group(2):
                    choices[parameter.group(1)] = set(parameter.group(2).split("|"))
            part = ""
        else:
            part += char
    return match.group(1), parameters, choices


def parse_skill_call(text):
    """Parse 'name(key="value", ...)' with ast (never eval) -> (name, [(key, value), ...]); ValueError(reason)."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError):
        raise ValueError("not_a_call") from None
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise ValueError("not_a_call")
    if node.args:
        raise ValueError("positional_argument")
    arguments = []
    for keyword in node.keywords:
        if keyword.arg is None:
            raise ValueError("not_a_call")
        if not isinstance(keyword.value, ast.Constant) or not isinstance(keyword.value.value, str):
            raise ValueError("non_string_argument")
        if keyword.arg in dict(arguments):
            raise ValueError("repeated_argument")
        arguments.append((keyword.arg, keyword.value.value))
    return node.func.id, arguments


def format_skill_call(name, arguments):
    """One canonical spelling (keyword arguments, double quotes) so the model never sees two forms of a call."""
    return f"{name}(" + ", ".join(f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in arguments) + ")"


def check_skill_example(request, name, arguments, skills, copy_check):
    """The reason an already parsed example is bad (a SKILL_REASONS key), or None."""
    if not request.strip():
        return "empty_request"
    if name not in skills:
        return "unknown_skill"
    skill = skills[name]
    for key, value in arguments:
        if key not in skill["parameters"]:
            return "unknown_argument"
        if not value.strip():
            return "empty_argument"
        if key in skill["choices"]:
            if value not in skill["choices"][key]:
                return "bad_choice"
        elif copy_check and (name, key) not in COMPOSED_ARGUMENTS:
            if " ".join(value.lower().split()) not in " ".join(request.lower().split()):
                return "not_in_request"
    return None


def parse_skill_file(path):
    """Read one examples file: its '#### Prompt:' section (signature, description) and its User/Assistant pairs."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        fail(f"cannot read skill file {path}: {error}")
    section, prompt_lines, examples, pending = None, [], [], None
    signature_line = None
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        header, turn = SKILL_HEADER.match(line), SKILL_TURN.match(line)
        if pending and not (turn and turn.group(1) == "Assistant"):
            fail(f"{path}:{pending[0]}: '### User:' has no '### Assistant:' answer on the next line; add one")
        if header:
            section = header.group(1).lower()
            continue
        if turn:
            if section is None or section == "prompt":
                fail(f"{path}:{number}: examples go after the '#### Prompt:' section, under '#### Prompt Examples:'")
            text = turn.group(2).strip()
            if turn.group(1) == "User":
                if not text:
                    fail(f"{path}:{number}: empty '### User:' request; write the request after the colon")
                pending = (number, text)
                continue
            if not pending:
                fail(f"{path}:{number}: '### Assistant:' without a '### User:' line right before it")
            try:
                name, arguments = parse_skill_call(text)
            except ValueError as error:
                fail(f"{path}:{number}: the answer {text!r} {SKILL_REASONS[str(error)]}")
            examples.append({"line": number, "user": pending[1], "name": name, "arguments": arguments})
            pending = None
        elif section == "prompt":
            if line:
                signature_line = signature_line or number
                prompt_lines.append(line)
        elif line:
            fail(f"{path}:{number}: unexpected line {line[:40]!r}; examples are '### User: ...' then '### Assistant: ...'")
    if pending:
        fail(f"{path}:{pending[0]}: '### User:' has no '### Assistant:' answer; add one")
    if not prompt_lines:
        fail(f"{path}:1: no '#### Prompt:' section; start the file with '#### Prompt:', the signature and a description")
    name, parameters, choices = parse_skill_signature(prompt_lines[0], f"{path}:{signature_line}")
    stem = Path(path).name
    if stem.endswith("_examples.txt") and stem[: -len("_examples.txt")] != name:
        fail(f"{path}:{signature_line}: the signature defines {name}() but the file is named {stem}; rename one")
    return {
        "path": str(path),
        "name": name,
        "signature": prompt_lines[0],
        "description": " ".join(prompt_lines[1:]),
        "parameters": parameters,
        "choices": choices,
        "examples": examples,
    }


def skill_prompt(skills, request):
    """Only the signatures: descriptions cost ~100 tokens per example and a small model learns them from the data."""
    listing = ", ".join(skills[name]["signature"] for name in sorted(skills))
    return f"Skills: {listing}\nUser: {request}\nCall:\n"


def split_skill_records(records, fraction, seed):
    """Stratified held-out split: per skill, its own seeded shuffle, so adding a skill leaves the others' split alone."""
    by_skill = {}
    for index, record in enumerate(records):
        by_skill.setdefault(record["skill"], []).append(index)
    held_out = set()
    for name, indices in sorted(by_skill.items()):
        count = round(len(indices) * fraction)
        if fraction > 0 and len(indices) > 1:
            count = min(max(count, 1), len(indices) - 1)
        held_out.update(random.Random(f"{seed}-{name}").sample(indices, count))
    train = [record for index, record in enumerate(records) if index not in held_out]
    test = [record for index, record in enumerate(records) if index in held_out]
    return train, test


def write_json_atomic(path, data):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=2, ensure_ascii=False)
            stream.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text_atomic(path, text):
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def add_skills_arguments(parser):
    group = parser.add_argument_group("skill calling")
    group.add_argument("-c", "--create", action="store_true", help="Generate new examples for one skill file.")
    group.add_argument("-t", "--collect", action="store_true", help="Collect example files into a training JSON.")
    group.add_argument("--file", help="-c: the skill examples file, e.g. examples/skills/weather_examples.txt.")
    group.add_argument("--n_generations", type=int, default=5, help="-c: how many new valid examples to ask for.")
    group.add_argument("--append", action="store_true", help="-c: append valid examples to --file (else stdout).")
    group.add_argument("--model", default="gpt-4o-mini", help="-c: chat model name at the API.")
    group.add_argument("--base_url", default=None, help="-c: OpenAI-compatible API URL (default: the OpenAI API).")
    group.add_argument("--max_retries", type=int, default=5, help="-c: retries after errors or short answers.")
    group.add_argument("--retry_delay", type=float, default=1.0, help="-c: first backoff delay in seconds (doubles).")
    group.add_argument("--timeout", type=float, default=60.0, help="-c: seconds to wait for one API answer.")
    group.add_argument("--files", nargs="+", help="-t: skill example files, e.g. examples/skills/*_examples.txt.")
    group.add_argument("--test_file", default="data/skills/test.json", help="-t: where the held-out split goes.")
    group.add_argument("--test_fraction", type=float, default=0.1, help="-t: held-out share per skill (0: none).")
    group.add_argument("--seed", type=int, default=42, help="-t: seed of the held-out split.")


def skill_generation_messages(skill, count):
    shown = skill["examples"][:40]
    examples = "\n".join(
        f"### User: {e['user']}\n### Assistant: {format_skill_call(e['name'], e['arguments'])}" for e in shown
    )
    system = (
        "You write training data for a small voice-assistant model that turns one transcribed spoken request into "
        "exactly one function call. Call the tool add_examples with your examples."
    )
    user = (
        f"The skill:\n{skill['signature']}\n{skill['description']}\n\nExisting examples:\n{examples}\n\n"
        f"Write {count} NEW examples for {skill['name']}(). Each `user` is one request as a speech recogniser would "
        "transcribe it: vary phrasing, length, politeness, casual speech and typos, and use new places, topics and "
        "values; never repeat an existing request. Each `assistant` is exactly one call like "
        f'{skill["name"]}(key="value") with keyword arguments in double quotes, only the argument names in the '
        "signature, and values copied from the request as written (leave an argument out when the request does not "
        "give it)."
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def skill_generation_tool():
    pair = {
        "type": "object",
        "properties": {"user": {"type": "string"}, "assistant": {"type": "string"}},
        "required": ["user", "assistant"],
        "additionalProperties": False,
    }
    return {
        "type": "function",
        "function": {
            "name": SKILL_TOOL,
            "description": "Add new request -> function call training examples.",
            "parameters": {
                "type": "object",
                "properties": {"examples": {"type": "array", "items": pair}},
                "required": ["examples"],
                "additionalProperties": False,
            },
            "strict": True,
        },
    }


def extract_generated_pairs(response):
    """The list of {user, assistant} from a tool call (or, from servers that ignore tools, the message content)."""
    message = response.choices[0].message
    calls = [c for c in (message.tool_calls or []) if c.function.name == SKILL_TOOL]
    text = calls[0].function.arguments if calls else message.content
    if not text:
        raise ValueError("no tool call in the answer")
    answer = json.loads(text)
    if not isinstance(answer, dict) or not isinstance(answer.get("examples"), list):
        raise ValueError("the tool arguments have no 'examples' list")
    return answer["examples"]


def validate_generated_pair(pair, skill, seen):
    """(example, None) for a good pair, else (None, reason); `seen` holds the keys of every request so far."""
    if not isinstance(pair, dict) or not isinstance(pair.get("user"), str) or not isinstance(pair.get("assistant"), str):
        return None, "malformed_example"
    user = re.sub(r"^###\s*User\s*:", "", pair["user"]).strip()
    answer = re.sub(r"^###\s*Assistant\s*:", "", pair["assistant"]).strip()
    if "\n" in user or "\n" in answer:
        return None, "multiline"
    try:
        name, arguments = parse_skill_call(answer)
    except ValueError as error:
        return None, str(error)
    if name != skill["name"]:
        return None, "wrong_skill"
    reason = check_skill_example(user, name, arguments, {name: skill}, copy_check=True)
    if reason:
        return None, reason
    if skill_key(user) in seen:
        return None, "duplicate"
    seen.add(skill_key(user))
    return {"user": user, "call": format_skill_call(name, arguments)}, None


def request_generated_pairs(client, args, skill, count):
    """One API request -> pairs; raises RuntimeError(reason) for anything worth retrying."""
    import openai

    try:
        response = client.chat.completions.create(
            model=args.model,
            messages=skill_generation_messages(skill, count),
            tools=[skill_generation_tool()],
            tool_choice={"type": "function", "function": {"name": SKILL_TOOL}},
            temperature=1.0,
        )
    except openai.RateLimitError:
        raise RuntimeError("rate_limit") from None
    except openai.APITimeoutError:
        raise RuntimeError("timeout") from None
    except openai.APIConnectionError:
        raise RuntimeError("connection_error") from None
    except openai.InternalServerError:
        raise RuntimeError("server_error") from None
    except openai.APIStatusError as error:
        fail(
            f"the API at {args.base_url or 'api.openai.com'} answered HTTP {error.status_code} "
            f"({str(error)[:120]}); check --model, --base_url and OPENAI_API_KEY"
        )
    except openai.APIResponseValidationError:
        raise RuntimeError("malformed_answer") from None
    try:
        return extract_generated_pairs(response)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        raise RuntimeError("malformed_answer") from None


def create_skill_examples(args):
    from openai import OpenAI  # imported here so the other modes start without loading the API client

    if not args.file:
        fail("-c needs --file examples/skills/<skill>_examples.txt")
    if args.n_generations < 1 or args.max_retries < 0:
        fail("--n_generations must be at least 1 and --max_retries at least 0")
    api_key = os.environ.get("OPENAI_API_KEY")
    if not api_key:
        fail("-c needs the API key in OPENAI_API_KEY (any non-empty value for a local server)")
    skill = parse_skill_file(args.file)
    # the client's own retries are off: ours count every failure by reason and back off exponentially
    client = OpenAI(api_key=api_key, base_url=args.base_url, max_retries=0, timeout=args.timeout)
    seen = {skill_key(example["user"]) for example in skill["examples"]}
    valid, rejected, failures = [], Counter(), 0
    for attempt in range(args.max_retries + 1):
        if len(valid) >= args.n_generations:
            break
        try:
            pairs = request_generated_pairs(client, args, skill, args.n_generations - len(valid))
        except RuntimeError as error:
            rejected[str(error)] += 1
            failures += 1
            if attempt < args.max_retries:
                time.sleep(min(args.retry_delay * 2 ** (failures - 1), 60))
            continue
        for pair in pairs:
            example, reason = validate_generated_pair(pair, skill, seen)
            if reason:
                rejected[reason] += 1
            elif len(valid) < args.n_generations:
                valid.append(example)
    blocks = "".join(f"### User: {e['user']}\n### Assistant: {e['call']}\n\n" for e in valid)
    if args.append and valid:
        # re-read right before writing: whatever the file holds now is kept, the new examples only go after it
        current = Path(args.file).read_text(encoding="utf-8").rstrip("\n") + "\n\n"
        if not any(SKILL_HEADER.match(line.strip()) and "generated" in line.lower() for line in current.splitlines()):
            current += "#### Generated Examples:\n\n"
        write_text_atomic(args.file, current + blocks.rstrip("\n") + "\n")
    elif valid:
        sys.stdout.write(blocks)
    reasons = ", ".join(f"{reason}={count}" for reason, count in sorted(rejected.items())) or "none"
    where = f" (appended to {args.file})" if args.append and valid else ""
    print(f"generated {len(valid)} valid{where}, rejected: {reasons}", file=sys.stderr)
    if not valid:
        fail(f"no valid examples for {skill['name']}() after {args.max_retries + 1} requests; see the reasons above")


def collect_skill_examples(args):
    if not args.files:
        fail("-t needs --files examples/skills/*_examples.txt")
    if not 0 <= args.test_fraction < 1:
        fail(f"--test_fraction must be in [0, 1), got {args.test_fraction}")
    skills = {}
    for path in args.files:
        skill = parse_skill_file(path)
        if skill["name"] in skills:
            fail(f"{path}: skill {skill['name']}() is defined again (first in {skills[skill['name']]['path']})")
        skills[skill["name"]] = skill
    records, first_seen = [], {}
    for skill in skills.values():
        for example in skill["examples"]:
            where = f"{skill['path']}:{example['line']}"
            reason = check_skill_example(example["user"], example["name"], example["arguments"], skills, False)
            if reason:
                fail(f"{where}: the answer {SKILL_REASONS[reason]}")
            call = format_skill_call(example["name"], example["arguments"])
            key = skill_key(example["user"])
            if key in first_seen:
                if first_seen[key][1] != call:
                    fail(f"{where}: the same request has another answer at {first_seen[key][0]}; keep one")
                logger.warning("%s: skipping a repeated request (first at %s)", where, first_seen[key][0])
                continue
            first_seen[key] = (where, call)
            records.append({"prompt": skill_prompt(skills, example["user"]), "completion": call, "skill": example["name"]})
    if not records:
        fail("no examples in " + ", ".join(args.files))
    train, test = split_skill_records(records, args.test_fraction, args.seed)
    if args.test_fraction > 0:
        write_json_atomic(args.test_file, test)
    json.dump(train, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    held = f", {len(test)} held out in {args.test_file}" if args.test_fraction > 0 else ""
    logger.info("collected %d examples of %d skills: %d to stdout%s", len(records), len(skills), len(train), held)


# ---------------------------------------------------------------------------------------------------------------------
# Text-to-SQL (issue 6)
# ---------------------------------------------------------------------------------------------------------------------


SQL_INSTRUCTION = "Write an SQLite query that answers the question, using the tables below."
SQL_TEST_SPLITS = ("test", "eval", "validation", "valid", "dev")
SQL_FILE_SUFFIXES = (".json", ".jsonl", ".parquet", ".csv")


def add_text2sql_arguments(parser):
    group = parser.add_argument_group("text-to-SQL")
    group.add_argument("--sql_data", help="question/context/answer (sql-create-context) or input/output "
                       "(Llama-2-SQL-Dataset) records: a .json/.jsonl/.parquet/.csv file or a hub dataset name.")
    group.add_argument("--sql_split", default="train", help="--sql_data: hub split to train on.")
    group.add_argument("--sql_test_data", help="--sql_data: test file (default: the sibling file with 'train' "
                       "replaced by 'test' in its name, e.g. stage2_train.json -> stage2_test.json).")
    group.add_argument("--sql_test_split", help="--sql_data: hub test split (default: the first of "
                       + ", ".join(SQL_TEST_SPLITS) + " that exists).")
    group.add_argument("--sql_test_fraction", type=float, default=0.1,
                       help="--sql_data: share held out as test when there is no test file or split.")
    group.add_argument("--sql_max_records", type=int, help="--sql_data: keep at most this many train records.")
    group.add_argument("--sql_max_test_records", type=int, help="--sql_data: keep at most this many test records.")
    group.add_argument("--sql_seed", type=int, default=42, help="--sql_data: seed for the held-out split and caps.")
    # the FinQA section may define --output_dir too; argparse refuses a second definition
    if "--output_dir" not in parser._option_string_actions:
        parser.add_argument("--output_dir", help="Folder for the prepared train.json and test.json.")


def sql_prompt(context, question):
    # kept short: every prompt token costs CPU time during training and evaluation
    return f"{SQL_INSTRUCTION}\nTables: {context.strip()}\nQuestion: {question.strip()}\nSQL:"


def sql_sections(text):
    """'### Header:' sections of an already built prompt, e.g. {'instruction': ..., 'input': ..., 'response': ''}."""
    parts = re.split(r"^\s*###\s*([A-Za-z ]+?)\s*:\s*", text, flags=re.MULTILINE)
    return {header.strip().lower(): body.strip() for header, body in zip(parts[1::2], parts[2::2])}


def sql_create_statements(text):
    return "; ".join(m.strip() for m in re.findall(r"CREATE\s+TABLE\s+[^;()]+\([^()]*\)", text, flags=re.IGNORECASE))


def read_sql_file(path):
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SQL_FILE_SUFFIXES:
        fail(f"{path}: unsupported file type '{suffix}'; use one of {', '.join(SQL_FILE_SUFFIXES)}")
    if suffix in (".parquet", ".csv"):
        import pandas

        try:
            frame = pandas.read_parquet(path) if suffix == ".parquet" else pandas.read_csv(path, keep_default_na=False)
        except Exception as error:  # pandas raises many types for unreadable files
            fail(f"{path}: cannot read {suffix[1:]} file: {error}")
        return frame.to_dict("records")
    text = path.read_text(encoding="utf-8")
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            fail(f"{path}:{error.lineno}: invalid JSON ({error.msg}); expected a list of records")
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            fail(f"{path}: expected a JSON list of records, found {type(data).__name__}")
        return data
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                fail(f"{path}:{number}: invalid JSON line ({error.msg})")
    return records


def load_sql_hub(name, split, test_split):
    """(train records, test records or None) from a hub dataset; offline runs need it in the local cache."""
    try:
        from datasets import load_dataset

        dataset = load_dataset(name)
    except Exception as error:  # network, cache and format errors all end here
        fail(f"cannot load hub dataset '{name}': {str(error).splitlines()[0] if str(error) else type(error).__name__} "
             "(check the name, the network or HF_HUB_OFFLINE with a filled cache)")
    if split not in dataset:
        fail(f"hub dataset '{name}' has no split '{split}'; splits: {', '.join(dataset)} (use --sql_split)")
    if test_split and test_split not in dataset:
        fail(f"hub dataset '{name}' has no split '{test_split}'; splits: {', '.join(dataset)} (use --sql_test_split)")
    test_split = test_split or next((s for s in SQL_TEST_SPLITS if s in dataset and s != split), None)
    return list(dataset[split]), (list(dataset[test_split]) if test_split else None)


def sql_record(record, where):
    """One prompt/completion record from question/context/answer or input/output columns."""
    if not isinstance(record, dict):
        fail(f"{where}: expected an object with question/context/answer fields, found {type(record).__name__}")
    if all(isinstance(record.get(key), str) for key in ("question", "context", "answer")):
        context, question, answer = record["context"], record["question"], record["answer"]
        return {"prompt": sql_prompt(context, question), "completion": answer.strip(), "context": context,
                "question": question}
    if all(isinstance(record.get(key), str) for key in ("input", "output")):
        text, answer = record["input"], record["output"]
        sections = sql_sections(text)
        context = sql_create_statements(text)
        # rebuild our own short prompt when the built one can be taken apart, so both training stages see one format
        if "context" in sections and "input" in sections:
            question = sections["input"]
        elif "input" in sections and "instruction" in sections and sql_create_statements(sections["input"]):
            question = sections["instruction"]
        else:
            question = None
        if context and question:
            return {"prompt": sql_prompt(context, question), "completion": answer.strip(), "context": context,
                    "question": question}
        return {"prompt": text.rstrip(), "completion": answer.strip(), "context": context}
    found = ", ".join(sorted(map(str, record))) or "none"
    fail(f"{where}: needs string fields question, context, answer (sql-create-context) or input, output "
         f"(Llama-2-SQL-Dataset); found: {found}")


def sql_sample(records, limit, rng):
    if limit is None or len(records) <= limit:
        return records
    return [records[i] for i in sorted(rng.sample(range(len(records)), limit))]


def prepare_text2sql(args):
    if not args.output_dir:
        fail("--sql_data needs --output_dir, e.g. --output_dir data/text2sql")
    if not 0 <= args.sql_test_fraction < 1:
        fail(f"--sql_test_fraction must be in [0, 1), got {args.sql_test_fraction}")
    rng = random.Random(args.sql_seed)
    source = Path(args.sql_data)
    if source.is_dir():
        source = next((source / n for n in ("train.json", "train.jsonl", "train.parquet") if (source / n).is_file()),
                      source)
    if source.is_file():
        train_raw, train_name = read_sql_file(source), str(source)
        test_path = Path(args.sql_test_data) if args.sql_test_data else source.with_name(source.name.replace("train", "test"))
        if args.sql_test_data and not test_path.is_file():
            fail(f"--sql_test_data {test_path}: file not found")
        if test_path.is_file() and test_path != source:
            test_raw, test_name = read_sql_file(test_path), str(test_path)
            logger.info("test split: %s", test_path)
        else:
            test_raw, test_name = None, None
    elif source.is_dir():
        fail(f"--sql_data {source}: folder without train.json, train.jsonl or train.parquet")
    elif source.suffix.lower() in SQL_FILE_SUFFIXES or args.sql_data.count("/") != 1:
        fail(f"--sql_data {args.sql_data}: file not found (or give a hub name like b-mc2/sql-create-context)")
    else:
        train_raw, test_raw = load_sql_hub(args.sql_data, args.sql_split, args.sql_test_split)
        train_name, test_name = f"{args.sql_data}[{args.sql_split}]", f"{args.sql_data}[test]"
    train = [sql_record(r, f"{train_name} record {i}") for i, r in enumerate(train_raw)]
    if test_raw is None:
        # no separate test data: hold out a deterministic share so that test questions are never trained on
        order = list(range(len(train)))
        rng.shuffle(order)
        n_test = round(len(train) * args.sql_test_fraction)
        held = set(order[:n_test])
        test = [r for i, r in enumerate(train) if i in held]
        train = [r for i, r in enumerate(train) if i not in held]
        logger.info("no test split found: held out %d of %d records (--sql_test_fraction)", n_test, len(order))
    else:
        test = [sql_record(r, f"{test_name} record {i}") for i, r in enumerate(test_raw)]
    if not train:
        fail(f"{train_name}: no records")
    train, test = sql_sample(train, args.sql_max_records, rng), sql_sample(test, args.sql_max_test_records, rng)
    for split, records in (("train", train), ("test", test)):
        for i, record in enumerate(records):
            record["id"] = f"sql-{split}-{i}"
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    for name, records in (("train.json", train), ("test.json", test)):
        handle, temporary = tempfile.mkstemp(dir=output_dir, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(records, stream, indent=1, ensure_ascii=False)
                stream.write("\n")
            os.replace(temporary, output_dir / name)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    rebuilt = sum("question" in r for r in train + test)
    logger.info("wrote %d train and %d test records to %s (%d with our prompt, %d with the source's prompt)",
                len(train), len(test), output_dir, rebuilt, len(train) + len(test) - rebuilt)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_finqa_arguments(parser)
    add_skills_arguments(parser)
    add_text2sql_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.create:
        create_skill_examples(args)
    elif args.collect:
        collect_skill_examples(args)
    elif args.finqa_dir or getattr(args, "convfinqa_dir", None):
        prepare_finqa(args)
    elif args.sql_data:
        prepare_text2sql(args)
    else:
        parser.error("choose a mode: --finqa_dir/--convfinqa_dir, -c, -t or --sql_data")


if __name__ == "__main__":
    main()
