"""Evaluate a base or fine-tuned model: batched greedy generation, task metrics, base vs fine-tuned.

    python eval.py --model_name_or_path outputs/instruct --dataset examples/instruct/test.json --metrics rouge,perplexity
    python eval.py --model_name_or_path outputs/instruct --dataset examples/instruct/test.json --compare_base
"""

import ast
import logging
import re
from collections import Counter

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


def metric_rouge(rows):
    from rouge_score import rouge_scorer

    keys = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
    scorer = rouge_scorer.RougeScorer(keys, use_stemmer=True)
    totals = dict.fromkeys(keys, 0.0)
    for row in rows:
        # rougeLsum splits summaries on newlines
        scores = scorer.score(row["reference"], row["prediction"])
        for key in keys:
            totals[key] += scores[key].fmeasure
    return {key: value / max(len(rows), 1) for key, value in totals.items()}


# --- task metrics (FinQA execution accuracy, skill call_match, SQL matches) go below this line ---


# Skill calling (issue 4): request -> one function call such as weather(location="Berlin").


def parse_predicted_call(text):
    """First call in a model answer -> (name, positional values, {key: value}) or None; ast only, never eval.

    The model may run on after the call (a second line, a stray token), so the longest prefix of the first line that
    parses as a call wins.
    """
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    if not lines:
        return None
    line = lines[0]
    ends = [index + 1 for index, char in enumerate(line) if char == ")"]
    for end in [len(line)] + ends[::-1]:
        try:
            node = ast.parse(line[:end], mode="eval").body
        except (SyntaxError, ValueError):
            continue
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            return None
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


def call_values_match(predicted, reference):
    if normalize_text(predicted) == normalize_text(reference):
        return True
    # math questions: "2+2" and "2 + 2" are the same expression
    try:
        return ast.dump(ast.parse(str(predicted), mode="eval")) == ast.dump(ast.parse(str(reference), mode="eval"))
    except (SyntaxError, ValueError):
        return False


def metric_call_match(rows):
    totals = {}
    confusions = Counter()
    unparsable = 0
    for row in rows:
        reference = parse_predicted_call(row["reference"])
        predicted = parse_predicted_call(row["prediction"])
        reference_skill = reference[0] if reference else "unparsable_reference"
        row["predicted_skill"] = predicted[0] if predicted else None
        row["call_correct"] = False
        if predicted is None:
            unparsable += 1
        if reference and predicted and predicted[0] == reference[0]:
            names = prompt_signatures(row.get("prompt", "")).get(reference[0]) or list(reference[2])
            wanted, got = call_arguments(reference, names), call_arguments(predicted, names)
            row["call_correct"] = (
                wanted is not None
                and got is not None
                and wanted.keys() == got.keys()
                and all(call_values_match(got[key], wanted[key]) for key in wanted)
            )
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


# SQL metrics (issue 6): exact match after normalisation and execution match on a synthetic SQLite database


SQL_TIMEOUT_SECONDS = 2.0
SQL_ROWS_PER_TABLE = 8


def normalize_sql(sql):
    text = str(sql).strip()
    text = re.sub(r"^```(?:sql)?\s*|\s*```$", "", text, flags=re.IGNORECASE)
    text = re.sub(r"[\s;]+$", "", text)
    text = re.sub(r"\s+", " ", text)
    # "COUNT( * )" and "COUNT(*)" are the same query; spacing around punctuation is style, not meaning
    text = re.sub(r"\s*([(),=<>!])\s*", r"\1", text)
    return text.lower()


def metric_sql_exact_match(rows):
    for row in rows:
        row["sql_exact_match"] = normalize_sql(row["prediction"]) == normalize_sql(row["reference"])
    return {"sql_exact_match": sum(r["sql_exact_match"] for r in rows) / max(len(rows), 1)}


def sql_literals(*queries):
    """String and number literals of the queries: the synthetic rows reuse them so that WHERE clauses can match."""
    strings, numbers = [], []
    for query in queries:
        strings += [s.replace("''", "'") for s in re.findall(r"'((?:[^']|'')*)'", str(query))]
        without_strings = re.sub(r"'(?:[^']|'')*'", "", str(query))
        numbers += [float(n) for n in re.findall(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])", without_strings)]
    return sorted(set(strings)), sorted(set(numbers))


def build_sql_database(context, literals):
    """In-memory database with the schema of `context` and a few deterministic rows per table."""
    import random
    import sqlite3
    import zlib

    conn = sqlite3.connect(":memory:")
    conn.executescript(str(context))
    strings, numbers = literals
    # one small shared pool per kind so that equal-named or joined columns in different tables hold matching values
    text_pool = strings + ["alpha", "beta", "gamma", "delta"]
    int_pool = [int(n) for n in numbers if n == int(n)] + [1, 2, 3, 5, 8, 13, 40, 2000]
    real_pool = [n for n in numbers] + [0.5, 1.5, 2.0, 7.25, 100.0]
    tables = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for table in tables:
        rng = random.Random(zlib.crc32(f"{context}|{table}|{literals}".encode()))
        columns = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
        values = []
        for column in columns:
            declared = (column[2] or "").upper()
            if "INT" in declared:
                pool = int_pool
            elif any(word in declared for word in ("REAL", "FLOA", "DOUB", "NUM", "DEC")):
                pool = real_pool
            else:
                # sql-create-context declares many numeric columns as VARCHAR and compares them with numbers
                pool = text_pool + [n for n in int_pool[:3]]
            values.append([rng.choice(pool) for _ in range(SQL_ROWS_PER_TABLE)])
        placeholders = ", ".join("?" for _ in columns)
        conn.executemany(f'INSERT INTO "{table}" VALUES ({placeholders})', list(zip(*values)))
    return conn


def run_sql(conn, query, timeout=None):
    """Rows of one read-only query, or raise sqlite3.Error (syntax error, unknown column, time limit)."""
    import sqlite3
    import time

    deadline = time.monotonic() + (SQL_TIMEOUT_SECONDS if timeout is None else timeout)
    # a non-zero return aborts the statement: this stops runaway joins and recursive CTEs
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
    allowed = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
    # a model's output must never write files (ATTACH) or change the shared database between the two queries
    conn.set_authorizer(lambda action, *args: sqlite3.SQLITE_OK if action in allowed else sqlite3.SQLITE_DENY)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.set_authorizer(None)
        conn.set_progress_handler(None, 0)


def comparable_rows(rows):
    return [tuple(round(v, 6) if isinstance(v, float) else v for v in row) for row in rows]


def sql_results_match(reference_rows, predicted_rows, ordered):
    from collections import Counter

    reference_rows, predicted_rows = comparable_rows(reference_rows), comparable_rows(predicted_rows)
    if ordered:
        return reference_rows == predicted_rows
    return Counter(map(repr, reference_rows)) == Counter(map(repr, predicted_rows))


def sql_execution_verdict(context, reference, prediction, timeout=None):
    """(match, error): error says why a row is a miss when a query or the schema could not run."""
    reference = re.sub(r"[\s;]+$", "", str(reference).strip())
    prediction = re.sub(r"^```(?:sql)?\s*|\s*```$", "", str(prediction).strip(), flags=re.IGNORECASE)
    prediction = re.sub(r"[\s;]+$", "", prediction)
    try:
        conn = build_sql_database(context, sql_literals(reference, prediction))
    except Exception as error:  # a broken schema in one row must not stop the evaluation
        return False, f"schema: {error}"
    try:
        try:
            expected = run_sql(conn, reference, timeout)
        except Exception as error:  # sqlite3.Error, sqlite3.Warning (two statements), OverflowError
            return False, f"reference: {error}"
        try:
            predicted = run_sql(conn, prediction, timeout)
        except Exception as error:
            return False, f"prediction: {error}"
    finally:
        conn.close()
    # row order only counts when the reference asks for it
    ordered = re.search(r"\border\s+by\b", reference, flags=re.IGNORECASE) is not None
    return sql_results_match(expected, predicted, ordered), None


def metric_sql_execution_match(rows):
    errors = 0
    for row in rows:
        match, error = sql_execution_verdict(row.get("context", ""), row["reference"], row["prediction"])
        row["sql_execution_match"] = match
        row["sql_execution_error"] = error
        errors += error is not None
    n = max(len(rows), 1)
    return {"sql_execution_match": sum(r["sql_execution_match"] for r in rows) / n, "sql_error_rate": errors / n}


METRICS = {
    "exact_match": metric_exact_match,
    "rouge": metric_rouge,
    "call_match": metric_call_match,
    "sql_exact_match": metric_sql_exact_match,
    "sql_execution_match": metric_sql_execution_match,
}
