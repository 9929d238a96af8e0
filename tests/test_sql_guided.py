"""eval.py --sql_execution_guided: a greedy query that does not run on its database is replaced by the first
beam-search candidate that runs; hostile candidates never run, never change a database; bad flags are one-line
errors; the real beam search on a tiny model end to end."""

import json
import sqlite3

import pytest
from conftest import ROOT, load_script, run_script, write_json

ev = load_script("eval")

SCHEMA = "CREATE TABLE shop (id INTEGER, name VARCHAR, city VARCHAR)"
GOOD = "SELECT name FROM shop"
BAD = "SELECT nme FROM shop"  # the model's most common error on Spider: a column the table does not have


class Args:
    sql_execution_guided = 3
    sql_database_dir = None
    max_new_tokens = 16


def guided(monkeypatch, rows, predictions, candidates, database_dir=None):
    """sql_guided_predictions with beam search replaced by fixed candidates; records which prompts were searched."""
    searched = []

    def beams(model, tokenizer, prompts, num_beams, max_new_tokens):
        searched.extend(prompts)
        return [candidates[prompt] for prompt in prompts]

    monkeypatch.setattr(ev, "beam_candidates", beams)
    args = Args()
    args.sql_database_dir = database_dir
    return (*ev.sql_guided_predictions(None, None, rows, predictions, args), searched)


RUNAWAY = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c"


@pytest.mark.parametrize("greedy, candidates, expected, rank", [
    (GOOD, [BAD, BAD], GOOD, None),  # runs: kept, no beam search
    (BAD, [BAD, GOOD, "SELECT city FROM shop"], GOOD, 2),  # the first candidate that runs, in beam order
    (BAD, ["SELECT x FROM y", "not sql at all", ""], BAD, 0),  # none runs: greedy stays
    ("```sql\nSELECT nme FROM shop\n```", ["```sql\nSELECT id FROM shop\n```"], "```sql\nSELECT id FROM shop\n```", 1),
    # hostile candidates do not "run": writes and attaches are denied, runaway queries stop, statements pile up
    (BAD, ["DROP TABLE shop", "DELETE FROM shop", "ATTACH DATABASE 'x.db' AS x", RUNAWAY,
           "SELECT 1; DROP TABLE shop", "INSERT INTO shop VALUES (1, 'a', 'b')", GOOD], GOOD, 7),
])
def test_first_running_candidate_replaces_a_greedy_query_that_does_not_run(
        monkeypatch, greedy, candidates, expected, rank):
    rows = [{"prompt": "q", "context": SCHEMA, "reference": GOOD}]
    predictions, notes, searched = guided(monkeypatch, rows, [greedy], {"q": candidates})
    assert predictions == [expected]
    assert notes[0]["sql_guided_candidate"] == rank
    assert searched == ([] if rank is None else ["q"])
    assert ("greedy_prediction" in notes[0]) is (rank is not None)
    if rank is not None:
        assert notes[0]["greedy_prediction"] == greedy


def test_rows_without_a_database_are_not_retried(monkeypatch):
    rows = [{"prompt": "a", "context": "", "reference": GOOD},
            {"prompt": "b", "context": "CREATE TABLE broken (", "reference": GOOD},
            {"prompt": "c", "context": SCHEMA, "reference": GOOD}]
    predictions, notes, searched = guided(monkeypatch, rows, [BAD, BAD, BAD], {"c": [GOOD]})
    assert predictions == [BAD, BAD, GOOD]
    assert [n["sql_guided_candidate"] for n in notes] == [None, None, 1]
    assert searched == ["c"]


def test_the_real_database_decides_and_is_never_changed(monkeypatch, tmp_path):
    """With --sql_database_dir the query runs on a read-only copy of the row's real database (whose columns the
    prompt's schema may not list); no candidate can change the file."""
    folder = tmp_path / "db" / "shops"
    folder.mkdir(parents=True)
    path = folder / "shops.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE shop (id INTEGER, name VARCHAR, opened INTEGER)")
        conn.execute("INSERT INTO shop VALUES (1, 'Corner', 1999)")
    before = path.read_bytes()
    rows = [{"prompt": "q", "db_id": "shops", "context": SCHEMA, "reference": GOOD},
            {"prompt": "r", "db_id": "shops", "context": SCHEMA, "reference": GOOD}]
    candidates = {"q": ["DELETE FROM shop", "SELECT city FROM shop", "SELECT opened FROM shop"],
                  "r": ["UPDATE shop SET name = 'x'", "SELECT name FROM shop"]}
    predictions, notes, _ = guided(monkeypatch, rows, [BAD, BAD], candidates, database_dir=tmp_path / "db")
    # city is in the prompt's schema but not in the real table; opened only in the real one
    assert predictions == ["SELECT opened FROM shop", "SELECT name FROM shop"]
    assert [n["sql_guided_candidate"] for n in notes] == [3, 2]
    assert path.read_bytes() == before


@pytest.mark.parametrize("flags, message", [
    (["--sql_execution_guided", "1"], "--sql_execution_guided 1: give the number of beam-search candidates, 2 or more"),
    (["--sql_execution_guided", "4", "--metrics", "rouge"], "add sql_execution_match to --metrics"),
    (["--sql_execution_guided", "4", "--metrics", "sql_execution_match", "--predictions", "p.jsonl"],
     "--predictions re-scores saved queries"),
])
def test_bad_guided_flags_are_one_line_errors(flags, message, tmp_path):
    result = run_script(ROOT / "eval.py", "--dataset", tmp_path / "none.jsonl", *flags, cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr and last.startswith("error:") and message in last, result.stderr[-2000:]


def test_guided_decoding_end_to_end_on_a_tiny_model(tiny_model_dir, tmp_path):
    """The real beam search: a random model's queries do not run, so every row is retried with 3 candidates; the
    verdicts and the greedy query are in predictions.jsonl, the shares in metrics.json."""
    records = [{"messages": [{"role": "user", "content": f"{SCHEMA}\n-- Question {i}: list the shop names"},
                             {"role": "assistant", "content": GOOD}], "context": SCHEMA} for i in range(3)]
    data = write_json(tmp_path / "test.jsonl", records, lines=True)
    ev.main(ev.parse_arguments(["--model_name_or_path", tiny_model_dir, "--dataset", str(data), "--metrics",
                                "sql_execution_match", "--sql_execution_guided", "3", "--max_new_tokens", "6",
                                "--output_dir", str(tmp_path / "out")]))
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    scores = metrics.get("model", metrics)
    assert scores["sql_guided_retried"] == 1.0 and 0.0 <= scores["sql_guided_replaced"] <= 1.0
    rows = [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert all(row["sql_guided_candidate"] in (0, 1, 2, 3) and "greedy_prediction" in row for row in rows)
