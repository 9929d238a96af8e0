"""Text-to-SQL: SQL metrics in eval.py, the shipped SQL examples, and training_data.py --sql_data."""

import json
import time

import pytest
from conftest import ROOT, load_script

ev = load_script("eval")
td = load_script("training_data")

SCHEMA = "CREATE TABLE head (name VARCHAR, age INTEGER, born_state VARCHAR)"
JOIN_SCHEMA = (
    "CREATE TABLE player (player_name VARCHAR, team_id VARCHAR); CREATE TABLE team (team_id VARCHAR, team_name VARCHAR)"
)


def row(reference, prediction, context=SCHEMA):
    return {"prompt": "", "reference": reference, "prediction": prediction, "context": context}


@pytest.mark.parametrize(
    "reference, prediction, expected",
    [
        ("SELECT COUNT(*) FROM head WHERE age > 56", "select count( * ) from head where age>56;", True),
        ("SELECT name FROM head", "  SELECT   name\nFROM head ;\n", True),
        ("SELECT name FROM head WHERE born_state = 'Texas'", "SELECT name FROM head WHERE born_state = 'Ohio'", False),
        ("SELECT name FROM head", "SELECT age FROM head", False),
        # sqlglot: keyword and identifier case, quoting, <> and !=, table aliases where each table occurs once
        ("SELECT T1.name FROM head AS T1 WHERE T1.age <> 3", 'select "NAME" from HEAD where age != 3', True),
        ("SELECT name FROM head WHERE born_state = \"Texas\"", "SELECT name FROM head WHERE born_state = 'Texas'",
         True),
        ("SELECT name FROM head WHERE born_state = 'Texas'", "SELECT name FROM head WHERE born_state = 'texas'", False),
        ("SELECT p.player_name FROM player AS p JOIN team AS t ON p.team_id = t.team_id",
         "SELECT T1.player_name FROM player AS T1 JOIN team AS T2 ON T1.team_id = T2.team_id", True),
        # a self-join keeps its aliases: T1 and T2 are different rows of one table
        ("SELECT T1.name FROM head AS T1 JOIN head AS T2 ON T1.age = T2.age",
         "SELECT T2.name FROM head AS T1 JOIN head AS T2 ON T1.age = T2.age", False),
    ],
)
def test_sql_exact_match(reference, prediction, expected):
    rows = [row(reference, prediction, SCHEMA + "; " + JOIN_SCHEMA)]
    scores = ev.METRICS["sql_exact_match"](rows)
    assert rows[0]["sql_exact_match"] is expected
    assert scores == {"sql_exact_match": float(expected), "sql_exact_match_text_fallbacks": 0}


@pytest.mark.parametrize(
    "reference, prediction, expected",
    [
        ("SELECT name FROM head", "SELECT name FROM head WHERE ((", False),
        ("SELECT name FROM head WHERE ((", "select  name from head where ((", True),
    ],
)
def test_sql_exact_match_falls_back_to_text_when_sqlglot_cannot_parse(reference, prediction, expected):
    rows = [row(reference, prediction)]
    scores = ev.METRICS["sql_exact_match"](rows)
    assert rows[0]["sql_exact_match"] is expected
    assert scores["sql_exact_match_text_fallbacks"] == 1


@pytest.mark.parametrize(
    "reference, prediction, context",
    [
        ("SELECT COUNT(*) FROM head WHERE age > 56", "SELECT count(*) FROM head AS h WHERE 56 < h.age", SCHEMA),
        ("SELECT DISTINCT name FROM head", "SELECT name FROM head GROUP BY name", SCHEMA),
        (
            "SELECT name FROM head WHERE born_state = 'Texas'",
            "SELECT name FROM head WHERE born_state IN ('Texas')",
            SCHEMA,
        ),
        ("SELECT MAX(age) FROM head", "SELECT age FROM head ORDER BY age DESC LIMIT 1", SCHEMA),
        ("SELECT name, age FROM head", "SELECT name, age FROM head ORDER BY age", SCHEMA),
        (
            (
                "SELECT T1.player_name FROM player AS T1 JOIN team AS T2 ON T1.team_id = T2.team_id WHERE T2.team_name"
                " = 'Comets'"
            ),
            (
                "SELECT p.player_name FROM team AS t JOIN player AS p ON p.team_id = t.team_id WHERE t.team_name ="
                " 'Comets'"
            ),
            JOIN_SCHEMA,
        ),
    ],
)
def test_sql_execution_match_accepts_equivalent_queries(reference, prediction, context):
    rows = [row(reference, prediction, context)]
    scores = ev.METRICS["sql_execution_match"](rows)
    assert rows[0]["sql_execution_match"] is True, rows[0]["sql_execution_error"]
    assert rows[0]["sql_execution_error"] is None
    assert scores["sql_execution_match"] == 1.0


@pytest.mark.parametrize(
    "reference, prediction",
    [
        # the literal of the question is among the synthetic rows, so a wrong literal returns different rows
        ("SELECT name FROM head WHERE born_state = 'Texas'", "SELECT name FROM head WHERE born_state = 'Ohio'"),
        ("SELECT COUNT(*) FROM head WHERE age > 56", "SELECT COUNT(*) FROM head WHERE age < 56"),
        ("SELECT name FROM head ORDER BY age", "SELECT name FROM head ORDER BY age DESC"),
        # the test suite's NULLs and duplicates tell these apart
        ("SELECT COUNT(*) FROM head WHERE age > 56", "SELECT COUNT(name) FROM head WHERE age > 56"),
        ("SELECT DISTINCT name FROM head", "SELECT name FROM head"),
        # only a group of exactly 3 rows tells these apart
        ("SELECT born_state FROM head GROUP BY born_state HAVING COUNT(*) >= 3",
         "SELECT born_state FROM head GROUP BY born_state HAVING COUNT(*) > 3"),
    ],
)
def test_sql_execution_match_rejects_different_results(reference, prediction):
    rows = [row(reference, prediction)]
    ev.METRICS["sql_execution_match"](rows)
    assert rows[0]["sql_execution_match"] is False
    assert rows[0]["sql_execution_error"] is None


@pytest.mark.parametrize(
    "prediction, error",
    [
        ("SELEC name FROM", "syntax error"),
        ("SELECT nickname FROM head", "no such column"),
        ("SELECT name FROM head; DROP TABLE head", "one statement"),
        ("DELETE FROM head", "not authorized"),
        ("ATTACH DATABASE 'stray.db' AS other", "not authorized"),
        ("", "not a query"),
        ("-- SELECT name FROM head", "not a query"),
    ],
)
def test_broken_sql_is_a_miss_not_a_crash(prediction, error, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = [row("SELECT name FROM head", prediction)]
    scores = ev.METRICS["sql_execution_match"](rows)
    assert rows[0]["sql_execution_match"] is False
    assert rows[0]["sql_execution_error"].startswith("prediction:")
    assert error in rows[0]["sql_execution_error"]
    assert scores == {"sql_execution_match": 0.0, "sql_error_rate": 1.0, "sql_empty_reference_rate": 0.0}
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "context, reason",
    [
        ("CREATE TABLE broken (", "schema: incomplete input"),
        ("CREATE TABLE head (name VARCHAR); CREATE TABLE head (age INTEGER)", "schema: table head already exists"),
        ("this is not SQL", "schema: near \"this\": syntax error"),
        # a schema comes from a data file: it may not write files either
        ("ATTACH DATABASE 'stray.db' AS other", "schema: not authorized"),
        ("CREATE TABLE head (name VARCHAR); VACUUM INTO 'stray.db'", "schema: authorization denied"),
    ],
)
def test_schema_that_does_not_run_is_a_miss_with_the_reason(context, reason, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = [row("SELECT name FROM head", "SELECT name FROM head", context=context)]
    scores = ev.METRICS["sql_execution_match"](rows)
    assert rows[0]["sql_execution_match"] is False
    assert rows[0]["sql_execution_error"] == reason
    assert scores["sql_error_rate"] == 1.0
    assert list(tmp_path.iterdir()) == []


def test_broken_reference_or_no_schema():
    rows = [
        row("SELECT nothing FROM head", "SELECT name FROM head"),
        {"prompt": "", "reference": "SELECT 1", "prediction": "SELECT 1"},
    ]
    ev.METRICS["sql_execution_match"](rows)
    assert rows[0]["sql_execution_error"].startswith("reference:")
    assert rows[1]["sql_execution_match"] is True


@pytest.mark.parametrize(
    "prediction",
    [
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT COUNT(*) FROM n",
        "SELECT COUNT(*) FROM head a, head b, head c, head d, head e, head f, head g, head h, head i, head j",
    ],
)
def test_runaway_query_is_aborted(prediction, monkeypatch):
    monkeypatch.setattr(ev, "SQL_TIMEOUT_SECONDS", 0.3)
    rows = [row("SELECT COUNT(*) FROM head", prediction)]
    ev.METRICS["sql_execution_match"](rows)
    assert rows[0]["sql_execution_match"] is False
    assert "interrupted" in rows[0]["sql_execution_error"]


def test_fuzzed_databases_are_deterministic_and_varied():
    reference = "SELECT name FROM head WHERE born_state = 'Texas' AND age > 40"
    facts = ev.sql_query_facts([reference], ev.schema_columns(SCHEMA))
    schema = ev.sql_schema(SCHEMA)
    suites = [[ev.fuzzed_database(schema, facts, i, 7).execute("SELECT * FROM head").fetchall()
               for i in range(ev.SQL_SUITE_SIZE)] for _ in range(2)]
    assert suites[0] == suites[1]
    cells = [value for table in suites[0] for record in table for value in record]
    assert "Texas" in cells and {39, 40, 41} <= set(cells)  # the literal and its neighbours
    assert None in cells  # NULLs in some databases
    assert len({len(table) for table in suites[0]}) > 2  # different sizes


def test_joined_columns_share_values_so_joins_return_rows():
    reference = ("SELECT T1.player_name FROM player AS T1 JOIN team AS T2 ON T1.team_id = T2.team_id "
                 "WHERE T2.team_name = 'Comets'")
    verdict = ev.sql_test_suite_verdict(JOIN_SCHEMA, reference, reference)
    assert verdict["match"] and verdict["reference_empty"] is False


def test_reference_that_never_returns_rows_is_reported():
    # no age is both above 60 and below 10: the reference is empty on every database and matches any empty query
    rows = [row("SELECT name FROM head WHERE age > 60 AND age < 10", "SELECT name FROM head WHERE 1 = 0"),
            row("SELECT name FROM head WHERE age > 60", "SELECT name FROM head WHERE age > 60")]
    scores = ev.METRICS["sql_execution_match"](rows)
    assert [r["sql_reference_empty"] for r in rows] == [True, False]
    assert scores["sql_execution_match"] == 1.0 and scores["sql_empty_reference_rate"] == 0.5


SQL_FILES = ["train.json", "test.json", "stage2_train.json", "stage2_test.json"]


@pytest.mark.parametrize("name", SQL_FILES)
def test_shipped_sql_examples_execute_against_their_schema(name, monkeypatch):
    monkeypatch.setattr(ev, "SQL_SUITE_SIZE", 2)  # whether they run, not how well the suite tells queries apart
    records = json.loads((ROOT / "examples" / "text2sql" / name).read_text())
    assert len(records) >= 30
    for record in records:
        assert set(record) == {"question", "context", "answer"}
        match, error = ev.sql_execution_verdict(record["context"], record["answer"], record["answer"])
        assert error is None and match, f"{name}: {record['answer']!r}: {error}"


def test_shipped_sql_splits_do_not_overlap():
    base = ROOT / "examples" / "text2sql"
    for train, test in (("train.json", "test.json"), ("stage2_train.json", "stage2_test.json")):
        train_questions = {r["question"] for r in json.loads((base / train).read_text())}
        assert not train_questions & {r["question"] for r in json.loads((base / test).read_text())}


@pytest.mark.parametrize("name", ["train.json", "test.json"])
def test_shipped_finance_examples_have_alpaca_fields(name):
    records = json.loads((ROOT / "examples" / "finance" / name).read_text())
    assert len(records) >= 50
    for record in records:
        assert set(record) == {"instruction", "input", "output"}
        assert record["instruction"].strip() and record["output"].strip()


def write(path, records):
    path.write_text(json.dumps(records))
    return path


def test_convert_question_context_answer(tmp_path):
    record = {
        "question": "How many heads are older than 56?",
        "context": "CREATE TABLE head (age INTEGER)",
        "answer": "SELECT COUNT(*) FROM head WHERE age > 56",
    }
    write(tmp_path / "stage2_train.json", [record] * 3)
    write(tmp_path / "stage2_test.json", [record])
    td.main(["--sql_data", str(tmp_path / "stage2_train.json"), "--output_dir", str(tmp_path / "out")])
    train = json.loads((tmp_path / "out" / "train.json").read_text())
    test = json.loads((tmp_path / "out" / "test.json").read_text())
    assert len(train) == 3 and len(test) == 1
    assert train[0]["completion"] == record["answer"]
    assert train[0]["context"] == record["context"]
    assert record["context"] in train[0]["prompt"] and record["question"] in train[0]["prompt"]
    assert train[0]["prompt"].endswith("SQL:")
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_convert_holds_out_a_test_share_without_test_file(tmp_path):
    records = [
        {"question": f"q{i}", "context": "CREATE TABLE t (a INTEGER)", "answer": f"SELECT {i} FROM t"}
        for i in range(20)
    ]
    write(tmp_path / "data.jsonl", []).write_text("\n".join(json.dumps(r) for r in records) + "\n")
    td.main(["--sql_data", str(tmp_path / "data.jsonl"), "--sql_test_fraction", "0.25", "--output_dir", str(tmp_path)])
    train = json.loads((tmp_path / "train.json").read_text())
    test = json.loads((tmp_path / "test.json").read_text())
    assert len(train) == 15 and len(test) == 5
    assert not {r["completion"] for r in train} & {r["completion"] for r in test}


def grouped_records(sizes):
    """Records of databases db0, db1, ... with the given numbers of questions each."""
    return [{"question": f"q{db}-{i}", "context": "CREATE TABLE t (a INTEGER)", "answer": f"SELECT {i} FROM t",
             "db_id": f"db{db}"} for db, size in enumerate(sizes) for i in range(size)]


@pytest.mark.parametrize("sizes, fraction", [([4] * 10, 0.2), ([1, 7, 2, 5, 3, 9, 4, 6, 8, 5], 0.25), ([3, 3], 0.5)])
def test_convert_holds_out_whole_groups(tmp_path, sizes, fraction):
    path = write(tmp_path / "spider.json", grouped_records(sizes)[::-1])  # groups interleaved in no particular order
    split = {}
    for seed in ("1", "1", "2"):
        out = tmp_path / seed
        td.main(["--sql_data", str(path), "--sql_group_by", "db_id", "--sql_test_fraction", str(fraction),
                 "--sql_seed", seed, "--output_dir", str(out)])
        train, test = (json.loads((out / name).read_text()) for name in ("train.json", "test.json"))
        train_dbs, test_dbs = {r["db_id"] for r in train}, {r["db_id"] for r in test}
        assert train_dbs and test_dbs and not train_dbs & test_dbs
        assert len(train) + len(test) == sum(sizes)
        assert len(test) >= round(sum(sizes) * fraction)
        assert len(test) - max(sizes) < round(sum(sizes) * fraction)  # stops at the first group past the share
        assert split.setdefault(seed, test_dbs) == test_dbs  # the seed alone decides


def test_convert_group_caps_apply_after_the_split(tmp_path, caplog):
    path = write(tmp_path / "spider.json", grouped_records([5] * 8))
    with caplog.at_level("INFO"):
        td.main(["--sql_data", str(path), "--sql_group_by", "db_id", "--sql_test_fraction", "0.25",
                 "--sql_max_records", "7", "--sql_max_test_records", "3", "--output_dir", str(tmp_path / "out")])
    train, test = (json.loads((tmp_path / "out" / name).read_text()) for name in ("train.json", "test.json"))
    assert len(train) == 7 and len(test) == 3 and not {r["db_id"] for r in train} & {r["db_id"] for r in test}
    assert "held out 2 of 8 db_id groups, 10 of 40 records" in caplog.text


@pytest.mark.parametrize(
    "records, message",
    [
        (grouped_records([2, 2])[:3] + [{"question": "q", "context": "CREATE TABLE t (a INT)", "answer": "SELECT 1"}],
         "record 3: no field 'db_id' for --sql_group_by (add it to every record, or drop --sql_group_by)"),
        (grouped_records([10]), "all 10 records share db_id 'db0': cannot hold out a group"),
    ],
)
def test_convert_bad_groups_fail_with_one_line(tmp_path, records, message):
    path = write(tmp_path / "spider.json", records)
    with pytest.raises(SystemExit) as caught:
        td.main(["--sql_data", str(path), "--sql_group_by", "db_id", "--sql_test_fraction", "0.5",
                 "--output_dir", str(tmp_path / "out")])
    text = str(caught.value)
    assert text.startswith(f"error: {path}") and "\n" not in text and message in text
    assert not (tmp_path / "out").exists()


def test_convert_input_output_records(tmp_path):
    built = (
        "Below is an instruction.\n\n### Instruction:\nHow many teams are there?\n\n"
        "### Input:\nCREATE TABLE team (team_id VARCHAR)\n\n### Response:\n"
    )
    other = "Translate to SQL: how many teams? Tables: CREATE TABLE team (team_id VARCHAR)"
    write(
        tmp_path / "llama_train.json",
        [
            {"input": built, "output": "SELECT COUNT(*) FROM team"},
            {"input": other, "output": "SELECT COUNT(*) FROM team"},
        ],
    )
    td.main(
        [
            "--sql_data",
            str(tmp_path / "llama_train.json"),
            "--sql_test_fraction",
            "0",
            "--output_dir",
            str(tmp_path / "out"),
        ]
    )
    rebuilt, kept = json.loads((tmp_path / "out" / "train.json").read_text())
    assert rebuilt["prompt"] == td.sql_prompt("CREATE TABLE team (team_id VARCHAR)", "How many teams are there?")
    assert kept["prompt"] == other
    assert rebuilt["context"] == kept["context"] == "CREATE TABLE team (team_id VARCHAR)"


@pytest.mark.parametrize(
    "content, message",
    [
        ([{"question": "q", "query": "SELECT 1"}], "found: query, question"),
        ([{"question": "q", "context": "CREATE TABLE t (a INTEGER)", "answer": 3}], "found: answer, context, question"),
        (["just text"], "expected an object"),
        ({"rows": []}, "expected a JSON list"),
    ],
)
def test_convert_bad_records_fail_with_one_line(tmp_path, content, message):
    path = write(tmp_path / "bad.json", content)
    with pytest.raises(SystemExit) as caught:
        td.main(["--sql_data", str(path), "--output_dir", str(tmp_path / "out")])
    text = str(caught.value)
    assert text.startswith("error: ") and "\n" not in text
    assert str(path) in text and message in text
    assert not (tmp_path / "out" / "train.json").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sql_data", "missing.json", "--output_dir", "x"], "file not found"),
        (["--sql_data", "examples/text2sql/train.json"], "--output_dir"),
    ],
)
def test_convert_bad_arguments(args, message, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as caught:
        td.main(args)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_convert_invalid_json_names_file_and_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[\n{"question": "q",\n')
    with pytest.raises(SystemExit) as caught:
        td.main(["--sql_data", str(path), "--output_dir", str(tmp_path / "out")])
    assert f"{path}:3" in str(caught.value)


# --- issue 13: mutation test, real databases, re-scoring saved predictions -----------------------------------------


def load_benchmark(name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Wrong variants the test suite judges right because they ARE right: on a VARCHAR column SQLite compares the numbers
# as text, and '8' > '10', so both BETWEEN ranges are empty for every possible value (the reference never returns a
# row). The train files (python benchmarks/sql_mutations.py examples/text2sql/<file>) have one more of the same kind.
TRULY_EQUIVALENT = {
    ("SELECT country FROM table_name_485 WHERE wins BETWEEN 8 AND 10",
     "SELECT country FROM table_name_485 WHERE wins BETWEEN 15 AND 10"),
}


# the test splits only: the train files take 5x longer and test_shipped_sql_examples_... checks their gold queries
@pytest.mark.parametrize("name", ["test.json", "stage2_test.json"])
def test_mutated_reference_queries_are_not_matches(name):
    """A literal changed, a comparison flipped, an aggregate swapped, an AND condition dropped, DESC -> ASC: the gold
    query matches itself, (almost) no wrong variant matches it, and the ones that do are listed above."""
    mutations = load_benchmark("sql_mutations")
    counts, false_matches = mutations.measure(ev, json.loads((ROOT / "examples" / "text2sql" / name).read_text()))
    assert counts["gold_self_match"] == counts["gold"]
    assert counts["variants"] > counts["gold"] * 0.9
    assert counts["false_matches"] <= 0.05 * counts["variants"]
    unexplained = [(m["reference"], m["variant"]) for m in false_matches
                   if (m["reference"], m["variant"]) not in TRULY_EQUIVALENT]
    assert unexplained == []


@pytest.mark.parametrize(
    "reference, expected",
    [
        ("SELECT name FROM head WHERE born_state = 'Texas' AND age > 56",
         {"literal": "SELECT name FROM head WHERE born_state = 'zzz_wrong' AND age > 56",
          "comparison": "SELECT name FROM head WHERE born_state = 'Texas' AND age <= 56",
          "and_dropped": "SELECT name FROM head WHERE born_state = 'Texas'"}),
        ("SELECT COUNT(*) FROM head GROUP BY age ORDER BY MAX(age) DESC LIMIT 1",
         {"aggregate": "SELECT SUM(*) FROM head GROUP BY age ORDER BY MAX(age) DESC LIMIT 1",
          "desc_to_asc": "SELECT COUNT(*) FROM head GROUP BY age ORDER BY MAX(age) ASC LIMIT 1"}),
        ("SELECT name FROM head WHERE age BETWEEN 30 AND 40 AND born_state = 'a > b'",
         {"literal": "SELECT name FROM head WHERE age BETWEEN 30 AND 40 AND born_state = 'zzz_wrong'",
          "and_dropped": "SELECT name FROM head WHERE age BETWEEN 30 AND 40"}),
    ],
)
def test_mutations_are_the_ones_the_issue_describes(reference, expected):
    assert dict(load_benchmark("sql_mutations").variants(reference)) == expected


SHOP_SCHEMA = "CREATE TABLE item (name TEXT, price INTEGER)"


@pytest.fixture
def shop_databases(tmp_path):
    """DIR/shop/shop.sqlite in Spider's layout, with a real name longer than any fuzzed word."""
    import sqlite3

    path = tmp_path / "databases" / "shop" / "shop.sqlite"
    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(path)
    conn.executescript(SHOP_SCHEMA + "; INSERT INTO item VALUES ('fountain pen', 12), ('ink', 3), ('notebook', 5);")
    conn.commit()
    conn.close()
    return path.parent.parent


def test_real_database_catches_what_the_fuzzed_ones_miss(shop_databases, caplog):
    # the prediction differs from the reference only on names of 9 or more letters: fuzzed words are shorter
    reference = "SELECT name FROM item WHERE price > 4"
    prediction = "SELECT name FROM item WHERE price > 4 AND length(name) < 9"
    make = lambda db_id: dict(row(reference, prediction, SHOP_SCHEMA), db_id=db_id)  # noqa: E731
    fuzzed_only = [make("shop")]
    assert ev.METRICS["sql_execution_match"](fuzzed_only)["sql_execution_match"] == 1.0
    rows = [make("shop"), make("missing"), make("also_missing"), make("../shop")]
    scores = ev.METRICS["sql_execution_match"](rows, database_dir=str(shop_databases))
    assert rows[0]["sql_execution_match"] is False and rows[0]["sql_differs_on"] == "real database"
    assert [r["sql_execution_match"] for r in rows[1:]] == [True, True, True]  # fuzzed databases only
    assert scores["sql_real_database_rows"] == 1 and scores["sql_missing_databases"] == 3
    warnings = [r.getMessage() for r in caplog.records if "does not have" in r.getMessage()]
    assert len(warnings) == 1 and "3 rows" in warnings[0]


def test_real_database_is_read_only_and_supplies_a_missing_schema(shop_databases, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = shop_databases / "shop" / "shop.sqlite"
    before = path.read_bytes()
    rows = [dict(row("SELECT name FROM item", hostile, context=""), db_id="shop")
            for hostile in ("DELETE FROM item", "UPDATE item SET price = 0", "DROP TABLE item",
                            "ATTACH DATABASE 'stray.db' AS x", "VACUUM INTO 'stray.db'", "SELECT name FROM item")]
    ev.METRICS["sql_execution_match"](rows, database_dir=str(shop_databases))
    assert [r["sql_execution_match"] for r in rows] == [False] * 5 + [True]
    assert all(r["sql_execution_error"].startswith("prediction:") for r in rows[:5])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["databases"]


SQL_PREDICTIONS = [
    {"id": "a", "reference": "SELECT name FROM head WHERE age > 56",
     "prediction": "select name from head where 56 < age", "context": SCHEMA},
    {"id": "b", "reference": "SELECT COUNT(*) FROM head", "prediction": "SELECT COUNT(*) FROM head", "context": SCHEMA},
    {"id": "c", "reference": "SELECT name FROM head ORDER BY age DESC",
     "prediction": "SELECT name FROM head ORDER BY age", "context": SCHEMA},
    {"id": "d", "reference": "SELECT name FROM head", "prediction": "DROP TABLE head", "context": SCHEMA},
]
SQL_METRICS = "rouge,exact_match,sql_exact_match,sql_execution_match"


def rescore(path, output_dir, metrics=SQL_METRICS, **overrides):
    ev.main(ev.EvalArguments(predictions=str(path), metrics=metrics, output_dir=str(output_dir), **overrides))
    metrics_file = json.loads((output_dir / "metrics.json").read_text())
    return metrics_file, [json.loads(line) for line in (output_dir / "predictions.jsonl").read_text().splitlines()]


def test_predictions_are_rescored_without_a_model_and_round_trip(tmp_path, capsys):
    path = tmp_path / "system.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in SQL_PREDICTIONS))
    metrics, rows = rescore(path, tmp_path / "first")
    assert metrics["sql_execution_match"] == 0.5 and metrics["sql_exact_match"] == 0.25
    assert metrics["sql_error_rate"] == 0.25 and metrics["exact_match"] == 0.25 and 0 < metrics["rougeL"] < 1
    assert [r["id"] for r in rows] == ["a", "b", "c", "d"]
    assert [r["sql_execution_match"] for r in rows] == [True, True, False, False]
    assert rows[2]["sql_differs_on"].startswith("fuzzed database")
    assert "not authorized" in rows[3]["sql_execution_error"]
    assert "| metric | model |" in capsys.readouterr().out
    # its own output, scored again: the same metrics and rows
    again, again_rows = rescore(tmp_path / "first" / "predictions.jsonl", tmp_path / "second")
    assert again == metrics and again_rows == rows


def test_rescoring_base_predictions_gives_the_base_column(tmp_path):
    path = tmp_path / "predictions.jsonl"
    records = [dict(r, base_prediction="SELECT 1") for r in SQL_PREDICTIONS]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    metrics, rows = rescore(path, tmp_path / "out")
    assert metrics["sql_execution_match"] == 0.5 and metrics["base"]["sql_execution_match"] == 0.0
    assert all(r["base_prediction"] == "SELECT 1" for r in rows)


@pytest.mark.parametrize(
    "lines, metrics, message",
    [
        ([{"reference": "SELECT 1", "prediction": "SELECT 1", "context": SCHEMA}, {"reference": "SELECT 1"}],
         SQL_METRICS, "rows.jsonl:2: field 'prediction' is missing"),
        ([{"reference": "SELECT 1", "prediction": "SELECT 1"}], SQL_METRICS,
         "rows.jsonl:1: field 'context' is missing"),
        ([{"reference": "SELECT 1", "prediction": None}], "exact_match",
         "rows.jsonl:1: field 'prediction' is NoneType"),
        (["not an object"], "exact_match", "rows.jsonl:1: expected a JSON object"),
        ([{"reference": "a", "prediction": "a", "base_prediction": "b"}, {"reference": "a", "prediction": "a"}],
         "exact_match", "rows.jsonl:2: field 'base_prediction' is missing"),
        ([{"reference": "a", "prediction": "a"}], "rouge,perplexity", "perplexity needs the model"),
        ([], "exact_match", "no rows"),
    ],
)
def test_bad_predictions_fail_with_one_line(tmp_path, lines, metrics, message):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    with pytest.raises(SystemExit) as caught:
        rescore(path, tmp_path / "out", metrics=metrics)
    text = str(caught.value)
    assert text.startswith("error:") and "\n" not in text and message in text, text
    assert not (tmp_path / "out").exists()


def test_rescoring_refuses_to_overwrite_its_input(tmp_path):
    path = tmp_path / "predictions.jsonl"
    path.write_text(json.dumps(SQL_PREDICTIONS[0]) + "\n")
    with pytest.raises(SystemExit, match="would overwrite it"):
        rescore(path, tmp_path)
    with pytest.raises(SystemExit, match="--sql_database_dir .*: no such folder"):
        rescore(path, tmp_path / "out", sql_database_dir=str(tmp_path / "nowhere"))


def test_rescoring_uses_the_real_databases(tmp_path, shop_databases):
    path = tmp_path / "spider.jsonl"
    rows = [{"reference": "SELECT name FROM item WHERE price > 4", "db_id": "shop",
             "prediction": "SELECT name FROM item WHERE price > 4 AND length(name) < 9"}]
    path.write_text(json.dumps(rows[0]) + "\n")  # no context: the real database has the schema
    metrics, scored = rescore(path, tmp_path / "out", metrics="sql_execution_match",
                              sql_database_dir=str(shop_databases))
    assert metrics["sql_execution_match"] == 0.0 and scored[0]["sql_differs_on"] == "real database"


def test_convert_keeps_the_db_id(tmp_path):
    record = {"question": "How many items?", "context": SHOP_SCHEMA, "answer": "SELECT COUNT(*) FROM item",
              "db_id": "shop"}
    write(tmp_path / "train.json", [record] * 2)
    write(tmp_path / "test.json", [record])
    td.main(["--sql_data", str(tmp_path / "train.json"), "--output_dir", str(tmp_path / "out")])
    assert json.loads((tmp_path / "out" / "test.json").read_text())[0]["db_id"] == "shop"


@pytest.mark.parametrize("fields", [
    {"question": "Heads older than 56 from Los  Angeles?", "context": SCHEMA},  # sql-create-context: no db_id
    {"question": "Heads older than 56 from Los  Angeles?", "context": SCHEMA, "db_id": "heads"},  # Spider
    {"input": f"### Instruction: Heads older than 56?\n### Context: {SCHEMA}\n### Input: Heads older than 56?"},
])
def test_every_sql_completion_gets_single_spaces_outside_quotes(tmp_path, fields):
    # Spider's "age  >  56" spacing also reaches sets without a db_id; quoted text is data and keeps its spaces
    query = "SELECT  name\n  FROM head\tWHERE age  >  56 AND born_state = 'Los  Angeles' AND \"born  state\" != ''  "
    answer = "answer" if "question" in fields else "output"
    write(tmp_path / "train.json", [{**fields, answer: query}] * 2)
    write(tmp_path / "test.json", [{**fields, answer: query}])
    td.main(["--sql_data", str(tmp_path / "train.json"), "--output_dir", str(tmp_path / "out")])
    completion = json.loads((tmp_path / "out" / "test.json").read_text())[0]["completion"]
    assert completion == ("SELECT name FROM head WHERE age > 56 AND born_state = 'Los  Angeles' AND \"born  state\" "
                          "!= ''")


@pytest.mark.parametrize("sql,expected", [
    ("SELECT  'a  b' ,  \"c  d\"", "SELECT 'a  b' , \"c  d\""),
    ("SELECT 'it''s  here'  FROM  t", "SELECT 'it''s  here' FROM t"),  # an escaped quote does not end the string
    ("SELECT `my  col`,  [other  col]  FROM t", "SELECT `my  col`, [other  col] FROM t"),  # SQLite's quoted names
])
def test_single_spaces_keep_whitespace_inside_quoted_literals_and_names(sql, expected):
    assert td.sql_single_spaces(sql) == expected


def test_a_rerun_removes_the_split_files_it_no_longer_writes(tmp_path, caplog):
    records = [{"question": f"q{i}", "context": "CREATE TABLE t (a INTEGER)", "answer": f"SELECT {i} FROM t"}
               for i in range(20)]
    (tmp_path / "in").mkdir()
    write(tmp_path / "in" / "train.json", records)
    write(tmp_path / "in" / "test.json", records[:2])
    out = tmp_path / "out"
    td.main(["--sql_data", str(tmp_path / "in" / "train.json"), "--output_dir", str(out)])
    for name in ("test_extra.json", "test.jsonl", "notes.json"):  # an older test set; another mode's; not a split
        (out / name).write_text("[]")
    write(tmp_path / "in" / "data.json", records)  # no sibling test file: a held-out validation split only
    with caplog.at_level("INFO", logger="training_data"):
        td.main(["--sql_data", str(tmp_path / "in" / "data.json"), "--sql_held_out_split", "validation",
                 "--output_dir", str(out)])
    assert sorted(path.name for path in out.iterdir()) == ["notes.json", "test.jsonl", "train.json", "validation.json"]
    assert "removed test.json, test_extra.json, split files of an earlier run" in caplog.text
    # the folder of the input: its files are never removed, only named
    td.main(["--sql_data", str(tmp_path / "in" / "data.json"), "--sql_held_out_split", "validation",
             "--output_dir", str(tmp_path / "in")])
    assert (tmp_path / "in" / "test.json").is_file()
    assert "test.json not written by this run but left there: the folder holds this run's input" in caplog.text
