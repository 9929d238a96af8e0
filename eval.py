"""Evaluate a base or fine-tuned model: batched greedy generation, task metrics, base vs fine-tuned.

    python eval.py --model_name_or_path outputs/instruct --dataset examples/instruct/test.json --metrics rouge,perplexity
    python eval.py --model_name_or_path outputs/instruct --dataset examples/instruct/test.json --compare_base
"""

import logging
import re

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
    "sql_exact_match": metric_sql_exact_match,
    "sql_execution_match": metric_sql_execution_match,
}
