"""Issue 31: no row a model writes (or another tool's predictions file holds) crashes, stalls or fools eval.py's
scorers or training_data.py's FinQA cleaning. Each scorer gets adversarial rows (deep nesting, huge strings, bad
Unicode, NaN and Infinity, invalid JSON in calls), and every run still writes metrics.json and predictions.jsonl as
strict JSON, with each row's failure as that row's verdict."""

import json
import time
from argparse import Namespace
from collections import Counter

import pytest
from conftest import load_script, write_json

ev = load_script("eval")
td = load_script("training_data")

# 2,000 characters that crashed the whole run: the checker recursed once per nested format spec
FORMAT_BOMB = "ans = '" + "{:" * 500 + "}" * 500 + "'.format(1)\n"
HOSTILE = {
    "format_bomb": FORMAT_BOMB,
    "deep_brackets": "[" * 100_000,
    "deep_call": "f(x=" + "[" * 5_000 + "]" * 5_000 + ")",
    "many_parens": "f(x=1" + ")" * 100_000,
    "deep_json_call": '{"name": "f", "arguments": ' + '{"a": ' * 3_000 + "1" + "}" * 3_000 + "}",
    "nan_call": '{"name": "f", "arguments": {"x": NaN, "y": Infinity}}',
    "broken_arguments": '{"name": "f", "arguments": "{\\"x\\": 1,,}"}',
    "lone_surrogate": "SELECT a FROM t WHERE b = '\udcff' -- \ud800",
    "control_characters": "\x1b[2J\rINFO eval: forged line\n",
    "huge_literal": "SELECT '" + "x" * 2_000_000 + "'",
    "huge_text": "word " * 20_000,
    "poisoned_math": "import math\nmath.isfinite = lambda x: True\nans = float('inf')\n",
    "nan_answer": "ans = float('nan')\n",
    "missing_name": "from math import nothing\nans = 1\n",
}
# metric -> (the row a correct prediction answers, that prediction)
CASES = {
    "exact_match": ({"reference": "Berlin"}, "Berlin"),
    "rouge": ({"reference": "the cat sat on the mat"}, "the cat sat on the mat"),
    "call_match": ({"reference": "f(x=1)", "prompt": "Skills: f(x)"}, "f(x=1)"),
    "tool_call_match": ({"reference": '{"name": "f", "arguments": {"x": 1}}'}, '{"name": "f", "arguments": {"x": 1}}'),
    "sql_exact_match": ({"reference": "SELECT a FROM t", "context": "CREATE TABLE t (a INT, b TEXT)"},
                        "SELECT a FROM t"),
    "sql_execution_match": ({"reference": "SELECT a FROM t", "context": "CREATE TABLE t (a INT, b TEXT)"},
                            "SELECT a FROM t"),
    "execution_accuracy": ({"reference": "ans = 2\n", "gold_answer": 2.0}, "ans = 1 + 1\n"),
}


def refuse_constant(name):
    raise ValueError(f"{name} is not strict JSON")


def read_strict(output_dir):
    """metrics.json and the rows of predictions.jsonl, read as UTF-8 and strict JSON (NaN or Infinity fail)."""
    metrics = json.loads((output_dir / "metrics.json").read_bytes().decode("utf-8"), parse_constant=refuse_constant)
    lines = (output_dir / "predictions.jsonl").read_bytes().decode("utf-8").splitlines()
    return metrics, [json.loads(line, parse_constant=refuse_constant) for line in lines]


def write_predictions(path, rows):
    # json.dumps escapes lone surrogates (\udcff) and writes NaN: as another tool's file may hold them
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("metric", CASES)
def test_every_scorer_survives_hostile_predictions(metric, tmp_path, monkeypatch):
    monkeypatch.setattr(ev, "FINQA_EXECUTION_TIMEOUT", 2.0)
    reference_row, correct = CASES[metric]
    rows = [dict(reference_row, id="correct", prediction=correct)]
    rows += [dict(reference_row, id=name, prediction=text) for name, text in HOSTILE.items()]
    rows.append(dict(reference_row, id="nan_field", prediction=correct, score=float("nan")))
    path = write_predictions(tmp_path / "hostile.jsonl", rows)
    start = time.monotonic()
    ev.main(ev.EvalArguments(predictions=str(path), metrics=metric, output_dir=str(tmp_path / "out")))
    assert time.monotonic() - start < 60
    metrics, written = read_strict(tmp_path / "out")
    assert [row["id"] for row in written] == [row["id"] for row in rows]
    assert written[-1]["score"] is None  # NaN from the file is written as null
    first = next(value for key, value in metrics.items() if isinstance(value, float))
    assert 0 < first < 0.5, metrics  # the correct rows score, no hostile one does
    texts = "".join((tmp_path / "out" / name).read_text(encoding="utf-8") for name in ("metrics.json",
                                                                                        "predictions.jsonl"))
    assert "\x1b" not in texts and "\r" not in texts.replace("\\r", "")


def test_hostile_rows_get_their_reasons():
    rows = [{"reference": "f(x=1)", "prediction": HOSTILE["many_parens"]},
            {"reference": HOSTILE["huge_text"], "prediction": "word"}]
    ev.metric_call_match(rows[:1])
    ev.metric_rouge(rows[1:])
    assert rows[0]["predicted_skill"] is None and rows[1]["rouge_error"].startswith("too_long")
    sql = {"context": "CREATE TABLE t (a INT, b TEXT)", "reference": "SELECT a FROM t"}
    sql_rows = [dict(sql, prediction=HOSTILE["huge_literal"]), dict(sql, prediction=HOSTILE["lone_surrogate"])]
    ev.metric_sql_execution_match(sql_rows)
    # the prediction's fault, not the reference's or the schema's
    assert [row["sql_execution_error"].split(":")[0] for row in sql_rows] == ["prediction", "prediction"]
    tool_rows = [{"reference": CASES["tool_call_match"][0]["reference"], "prediction": HOSTILE[name]}
                 for name in ("deep_brackets", "deep_json_call", "broken_arguments")]
    ev.metric_tool_call_match(tool_rows)
    assert [row["tool_call_verdict"] for row in tool_rows] == ["unparsable", "unparsable", "wrong_arguments"]


def test_execution_verdicts_of_hostile_programs_and_references():
    rows = [{"prediction": HOSTILE[name], "gold_answer": 1.0} for name in
            ("format_bomb", "poisoned_math", "nan_answer", "missing_name")]
    rows.append({"prediction": "ans = 1\n", "reference": FORMAT_BOMB})  # no gold_answer: the reference runs
    rows.append({"prediction": "ans = 1\n", "reference": "ans = 1\n", "gold_answer": None})
    ev.metric_execution_accuracy(rows)
    assert [row["verdict"] for row in rows] == ["blocked", "non_finite", "non_finite", "runtime_error",
                                                "no_gold_answer", "correct"]


def test_a_predictions_file_that_is_not_utf8_is_one_line_naming_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"reference": "a", "prediction": "a"}\n{"reference": "\xff", "prediction": "a"}\n')
    with pytest.raises(SystemExit, match=r"bad.jsonl:2: not UTF-8"):
        ev.main(ev.EvalArguments(predictions=str(path), metrics="exact_match", output_dir=str(tmp_path / "out")))
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_execution_scoring_stays_inside_its_budget(tmp_path, monkeypatch):
    # 8 looping rows, scored for the base and the model, the first two also running a looping reference: ~40 s of
    # runs without a budget, 3 s with it
    monkeypatch.setattr(ev, "FINQA_EXECUTION_TIMEOUT", 1.0)
    loop = "while True:\n    pass\n"
    rows = [{"id": index, "reference": loop, "prediction": loop, "base_prediction": loop} for index in range(8)]
    for row in rows[2:]:
        row["gold_answer"] = 1.0
    path = write_predictions(tmp_path / "loops.jsonl", rows)
    start = time.monotonic()
    ev.main(ev.EvalArguments(predictions=str(path), metrics="execution_accuracy", output_dir=str(tmp_path / "out"),
                             sandbox_total_timeout=3.0))
    assert time.monotonic() - start < 3.0 + 3.0  # the budget, and the interpreters' start and the files around it
    metrics, written = read_strict(tmp_path / "out")
    assert metrics["base"]["execution_not_run"] >= 2 and metrics["execution_not_run"] == len(rows)
    assert all(row["verdict"] == "not_run" and "--sandbox_total_timeout" in row["execution_message"]
               for row in written)


def test_a_reference_program_runs_once_for_the_base_and_the_model(monkeypatch):
    runs = []
    run_code = ev.finqa_run_code
    monkeypatch.setattr(ev, "finqa_run_code", lambda code, *args: runs.append(code) or run_code(code, *args))
    rows = [{"reference": "ans = 2\n", "prediction": "ans = 2\n"}, {"reference": "ans = 3\n", "prediction": "ans = 1\n"}]
    budget = {}
    for _ in range(2):  # as eval.py scores the base model's rows, then the model's, on one budget
        scores = ev.metric_execution_accuracy([dict(row) for row in rows], budget=budget)
        assert scores["execution_accuracy"] == 0.5
    assert sorted(runs).count("ans = 2\n") == 3 and runs.count("ans = 3\n") == 1  # 2 references + 4 predictions


@pytest.mark.parametrize("seconds", [0.0, -1.0, float("nan")])
def test_a_budget_of_no_time_is_a_one_line_error(tmp_path, seconds):
    path = write_predictions(tmp_path / "rows.jsonl", [{"id": 0, "prediction": "ans = 1\n", "gold_answer": 1.0}])
    with pytest.raises(SystemExit, match="--sandbox_total_timeout .*: give a number of seconds above 0"):
        ev.main(ev.EvalArguments(predictions=str(path), metrics="execution_accuracy",
                                 output_dir=str(tmp_path / "out"), sandbox_total_timeout=seconds))
    assert not (tmp_path / "out").exists()


def test_the_default_budget_grows_with_the_rows():
    budget = {}
    ev.metric_execution_accuracy([{"prediction": "ans = 1\n", "gold_answer": 1.0}] * 4, budget=budget)
    assert 0 < budget["left"] <= ev.FINQA_BUDGET_BASE + 4 * ev.FINQA_BUDGET_PER_ROW


def test_hostile_predictions_after_generation(tiny_model_dir, tmp_path, monkeypatch):
    # the model's own answers: generation is replaced, the rest of the run (prompts, scoring, files) is real
    records = [{"prompt": f"question {index}", "completion": "ans = 2\n", "gold_answer": 2.0}
               for index in range(len(HOSTILE) + 1)]
    data = write_json(tmp_path / "test.jsonl", records, lines=True)
    answers = ["ans = 1 + 1\n"] + list(HOSTILE.values())
    monkeypatch.setattr(ev, "load_model", lambda name, dtype: (None, None))
    monkeypatch.setattr(ev, "generate", lambda model, tokenizer, prompts, *rest: answers[:len(prompts)])
    monkeypatch.setattr(ev, "FINQA_EXECUTION_TIMEOUT", 2.0)
    ev.main(ev.EvalArguments(model_name_or_path=tiny_model_dir, dataset=str(data), metrics="execution_accuracy",
                             output_dir=str(tmp_path / "out"), general_dataset="none"))
    metrics, written = read_strict(tmp_path / "out")
    assert metrics["execution_accuracy"] == pytest.approx(1 / len(records))
    assert written[0]["verdict"] == "correct" and written[1]["verdict"] == "blocked"


def finqa_examples(names):
    return [{"id": name, "where": f"record {name}", "gold_answer": 1.0, "prompt": "p", "question": "q",
             "program": None, "source": "test"} for name in names]


def test_teacher_cleaning_survives_and_remembers_rejected_answers(tmp_path, monkeypatch, caplog):
    cache = tmp_path / "teacher_cache.jsonl"
    answers = {"good": "ans = 1\n", "format_bomb": FORMAT_BOMB, "poisoned_math": HOSTILE["poisoned_math"],
               "forged_log": "raise ValueError('\\x1b[2J\\nINFO training_data: train: kept 1000 of 1000')\n"}
    cache.write_bytes("".join(json.dumps({"id": key, "model": "m", "response": f"```python\n{code}```"}) + "\n"
                              for key, code in answers.items()).encode() + b'{"id": ["not", "hashable"]}\n\xff\xfe\n')
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    args = Namespace(teacher_model="m", sandbox_timeout=2.0, sandbox_memory_mb=256, sandbox_workers=2)
    drops = Counter()
    with caplog.at_level("INFO", logger="training_data"):
        codes, responses, examples = td.finqa_teacher_examples(finqa_examples(answers), args, str(cache), drops)
        verdicts = {}
        kept = td.finqa_clean(examples, codes, args, drops, verdicts)
        td.finqa_record_verdicts(str(cache), "m", responses, verdicts)
    assert [example["id"] for example in kept] == ["good"]
    assert drops == Counter(blocked=1, non_finite=1, runtime_error=1)
    assert sum("line 5 skipped" in message or "line 6 skipped" in message for message in caplog.messages) == 2
    assert not any("\n" in message or "\x1b" in message for message in caplog.messages)

    # a rerun skips what was rejected: it runs only the good answer
    ran = []
    run_code = td.finqa_run_code
    monkeypatch.setattr(td, "finqa_run_code", lambda code, *rest: ran.append(code) or run_code(code, *rest))
    drops = Counter()
    codes, responses, examples = td.finqa_teacher_examples(finqa_examples(answers), args, str(cache), drops)
    assert [example["id"] for example in td.finqa_clean(examples, codes, args, drops)] == ["good"]
    assert ran == ["ans = 1\n"] and drops == Counter(blocked=1, non_finite=1, runtime_error=1)


def test_a_crashing_teacher_answer_in_the_cache_no_longer_stops_the_splits(tmp_path, monkeypatch, caplog, root):
    # the cached reproducer once crashed every rerun before dev and test were built
    finqa = tmp_path / "finqa"
    finqa.mkdir()
    cache, ids = tmp_path / "out" / "teacher_cache.jsonl", []
    for split in ("train", "dev", "test"):
        records = json.loads((root / "examples" / "finqa" / f"{split}.json").read_text())[:2]
        (finqa / f"{split}.json").write_text(json.dumps(records))
        ids += [example["id"] for record in records for example in td.finqa_examples_from_finqa(record, split)]
    cache.parent.mkdir()
    cache.write_text("".join(json.dumps({"id": example_id, "model": "m", "response": FORMAT_BOMB}) + "\n"
                             for example_id in ids))
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    args = Namespace(finqa_dir=str(finqa), convfinqa_dir=None, output_dir=str(tmp_path / "out"), source="teacher",
                     context="full", max_context_tokens=0, max_examples=0, teacher_model="m", teacher_temperature=0.0,
                     max_concurrency=1, teacher_cache=None, sandbox_timeout=2.0, sandbox_memory_mb=256,
                     sandbox_workers=2, base_url=None, max_retries=0, retry_delay=0.01, timeout=1.0)
    for run in range(2):
        caplog.clear()
        with caplog.at_level("INFO", logger="training_data"):
            td.prepare_finqa(args)
        for split in ("train", "dev", "test"):
            assert (tmp_path / "out" / f"{split}.jsonl").read_text() == ""
            assert any(message.startswith(f"{split}: kept 0 of 2 (dropped: blocked=2)") for message in caplog.messages)
        assert any("rejected on an earlier run are skipped" in message for message in caplog.messages) == (run == 1)


@pytest.mark.parametrize("answer", [HOSTILE["deep_call"], "f(x=" + "-" * 100_000 + "1)", "f(x='\udcff')"])
def test_a_teachers_hostile_skill_call_is_a_reason(answer):
    skill = {"name": "f", "parameters": {"x": {"type": "string"}}}
    assert td.validate_generated_pair({"user": "do f", "assistant": answer}, skill, set())[0] is None
