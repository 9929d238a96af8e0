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
    ],
)
def test_sql_exact_match(reference, prediction, expected):
    rows = [row(reference, prediction)]
    scores = ev.METRICS["sql_exact_match"](rows)
    assert rows[0]["sql_exact_match"] is expected
    assert scores == {"sql_exact_match": float(expected)}


@pytest.mark.parametrize(
    "reference, prediction, context",
    [
        ("SELECT COUNT(*) FROM head WHERE age > 56", "SELECT COUNT(name) FROM head WHERE 56 < age", SCHEMA),
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
    assert scores == {"sql_execution_match": 0.0, "sql_error_rate": 1.0}
    assert list(tmp_path.iterdir()) == []


def test_broken_schema_or_reference_is_a_miss():
    rows = [
        row("SELECT name FROM head", "SELECT name FROM head", context="CREATE TABLE broken ("),
        row("SELECT nothing FROM head", "SELECT name FROM head"),
        {"prompt": "", "reference": "SELECT 1", "prediction": "SELECT 1"},
    ]
    ev.METRICS["sql_execution_match"](rows)
    assert rows[0]["sql_execution_error"].startswith("schema:")
    assert rows[1]["sql_execution_error"].startswith("reference:")
    assert rows[2]["sql_execution_match"] is True


def test_runaway_query_is_aborted(monkeypatch):
    monkeypatch.setattr(ev, "SQL_TIMEOUT_SECONDS", 0.3)
    endless = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT COUNT(*) FROM n"
    rows = [row("SELECT COUNT(*) FROM head", endless)]
    start = time.monotonic()
    ev.METRICS["sql_execution_match"](rows)
    assert time.monotonic() - start < 5
    assert rows[0]["sql_execution_match"] is False
    assert "interrupted" in rows[0]["sql_execution_error"]


def test_synthetic_rows_are_deterministic():
    literals = ev.sql_literals("SELECT name FROM head WHERE born_state = 'Texas' AND age > 40")
    first = ev.build_sql_database(SCHEMA, literals).execute("SELECT * FROM head").fetchall()
    second = ev.build_sql_database(SCHEMA, literals).execute("SELECT * FROM head").fetchall()
    assert first == second and len(first) == ev.SQL_ROWS_PER_TABLE
    assert any(r[2] == "Texas" for r in first)


SQL_FILES = ["train.json", "test.json", "stage2_train.json", "stage2_test.json"]


@pytest.mark.parametrize("name", SQL_FILES)
def test_shipped_sql_examples_execute_against_their_schema(name):
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
