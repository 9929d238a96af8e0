"""How often SQL execution match calls a wrong query right: mutation false-match rate (issue 13).

Every reference query of a question/context/answer file gets mechanically wrong variants: a literal changed
('France' -> 'zzz_wrong', 56 -> 63), a comparison flipped (> -> <=), an aggregate swapped (COUNT -> SUM, MAX -> MIN),
one AND condition dropped, DESC -> ASC. eval.py's sql_execution_verdict judges each against its reference; a good metric
matches every gold query with itself and (almost) no variant. Variants that do not run are counted apart: any
metric rejects them.

    python benchmarks/sql_mutations.py examples/text2sql/test.json
    python benchmarks/sql_mutations.py data.json --max_records 300 --eval_py /path/to/older/eval.py   # before/after
"""

import argparse
import importlib.util
import json
import random
import re
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STRING = r"'(?:[^']|'')*'|\"[^\"]*\""
AGGREGATES = {"COUNT(": "SUM(", "SUM(": "COUNT(", "MAX(": "MIN(", "MIN(": "MAX(", "AVG(": "SUM("}
FLIPS = {">=": "<", "<=": ">", "<>": "=", "!=": "=", ">": "<=", "<": ">="}


def outside_strings(query):
    """The query with string literals blanked out (same length), so that patterns never match inside them."""
    return re.sub(STRING, lambda m: "'" + "\0" * (len(m.group()) - 2) + "'", query)


def change_literal(query):
    string = re.search(STRING, query)
    if string:
        return query[: string.start()] + "'zzz_wrong'" + query[string.end():]
    plain = outside_strings(query)
    for number in re.finditer(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])", plain):
        if re.search(r"\bLIMIT\s*$", plain[: number.start()], flags=re.IGNORECASE):
            continue  # LIMIT 1 -> LIMIT 8 changes the question less than the mutations mean to
        value = float(number.group())
        new = str(int(value) + 7) if value.is_integer() and "." not in number.group() else f"{value + 7.5:g}"
        return query[: number.start()] + new + query[number.end():]
    return None


def flip_comparison(query):
    plain = outside_strings(query)
    match = re.search(r">=|<=|<>|!=|(?<![<>!])>(?!=)|(?<![<>!])<(?![=>])", plain)
    if not match:
        return None
    return query[: match.start()] + FLIPS[match.group()] + query[match.end():]


def swap_aggregate(query):
    plain = outside_strings(query)
    match = re.search(r"\b(COUNT|SUM|MAX|MIN|AVG)\s*\(", plain, flags=re.IGNORECASE)
    if not match:
        return None
    new = AGGREGATES[match.group(1).upper() + "("]
    return query[: match.start()] + new + query[match.end():]


def drop_and(query):
    plain = outside_strings(query)
    for match in re.finditer(r"\s+AND\s+", plain, flags=re.IGNORECASE):
        if re.search(r"\bBETWEEN\s+\S+\s*$", plain[: match.start()], flags=re.IGNORECASE):
            continue  # the AND of BETWEEN x AND y
        end = re.search(r"\s+(?:AND|OR|GROUP|ORDER|LIMIT|INTERSECT|UNION|EXCEPT)\b|\)|$", plain[match.end():],
                        flags=re.IGNORECASE)
        stop = match.end() + end.start()
        return query[: match.start()] + query[stop:]
    return None


def desc_to_asc(query):
    plain = outside_strings(query)
    match = re.search(r"\bDESC\b", plain, flags=re.IGNORECASE)
    return query[: match.start()] + "ASC" + query[match.end():] if match else None


MUTATIONS = {"literal": change_literal, "comparison": flip_comparison, "aggregate": swap_aggregate,
             "and_dropped": drop_and, "desc_to_asc": desc_to_asc}


def variants(query):
    """(mutation name, wrong query) for every mutation that applies to the query."""
    found = []
    for name, mutate in MUTATIONS.items():
        wrong = mutate(query)
        if wrong and wrong.strip() != query.strip():
            found.append((name, wrong))
    return found


def load_eval(path):
    spec = importlib.util.spec_from_file_location("eval_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure(ev, records):
    """Counts of the run, and the variants judged matches."""
    counts, false_matches = Counter(), []
    for record in records:
        context, gold = record["context"], record["answer"]
        match, error = ev.sql_execution_verdict(context, gold, gold)
        counts["gold"] += 1
        counts["gold_self_match"] += match
        if hasattr(ev, "sql_test_suite_verdict"):  # eval.py before issue 13 does not say
            counts["gold_always_empty"] += ev.sql_test_suite_verdict(context, gold, gold)["reference_empty"] is True
        if not match:
            continue
        for name, wrong in variants(gold):
            match, error = ev.sql_execution_verdict(context, gold, wrong)
            if error and error.startswith("prediction:"):
                counts["variants_that_do_not_run"] += 1
                continue
            counts["variants"] += 1
            counts[f"variants/{name}"] += 1
            if match:
                counts["false_matches"] += 1
                counts[f"false_matches/{name}"] += 1
                false_matches.append({"mutation": name, "reference": gold, "variant": wrong, "context": context})
    return counts, false_matches


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", help="JSON list of question/context/answer records (sql-create-context layout)")
    parser.add_argument("--max_records", type=int, help="Sample at most this many records (seed 0).")
    parser.add_argument("--eval_py", default=str(ROOT / "eval.py"), help="The eval.py whose metric is measured.")
    parser.add_argument("--show", type=int, default=10, help="Print this many false matches.")
    args = parser.parse_args()
    records = json.loads(Path(args.data).read_text())
    if args.max_records and len(records) > args.max_records:
        records = random.Random(0).sample(records, args.max_records)
    ev = load_eval(args.eval_py)
    started = time.perf_counter()
    counts, false_matches = measure(ev, records)
    seconds = time.perf_counter() - started
    variants_run = max(counts["variants"], 1)
    print(f"{args.data} with {args.eval_py}: gold self-match {counts['gold_self_match']}/{counts['gold']}, "
          f"false matches {counts['false_matches']}/{counts['variants']} "
          f"({100 * counts['false_matches'] / variants_run:.1f}%), "
          f"{counts['variants_that_do_not_run']} variants do not run, {counts['gold_always_empty']} gold queries "
          f"return no row on any database, {seconds:.1f}s")
    for name in MUTATIONS:
        print(f"  {name}: {counts[f'false_matches/{name}']}/{counts[f'variants/{name}']}")
    for item in false_matches[: args.show]:
        print(f"  [{item['mutation']}] {item['reference']}  ->  {item['variant']}")


if __name__ == "__main__":
    main()
