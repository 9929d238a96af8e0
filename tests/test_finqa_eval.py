"""eval.py execution accuracy for FinQA: predicted Python runs in the sandbox and is scored against gold_answer."""

import pytest
from conftest import load_script

ev = load_script("eval")


def test_execution_accuracy_scores_and_verdicts(monkeypatch):
    monkeypatch.setattr(ev, "FINQA_EXECUTION_TIMEOUT", 1.0)
    rows = [
        {"prediction": "a = 1250\nb = 1000\nans = (a - b) / b\n", "gold_answer": 0.25},
        {"prediction": "ans = 25.0\n", "gold_answer": 0.25},  # percent vs fraction
        {"prediction": "```python\nans = 3 > 2\n```", "gold_answer": "yes"},
        {"prediction": "ans = 7\n", "gold_answer": 8.0},
        {"prediction": "while True:\n    pass\n", "gold_answer": 1.0},
        {"prediction": "ans = (\n", "gold_answer": 1.0},
        {"prediction": "import os\nos.system('true')\nans = 1\n", "gold_answer": 1.0},
        {"prediction": "", "gold_answer": 1.0},
        {"prediction": "ans = 4\n", "reference": "x = 2\nans = x * 2\n"},  # gold from the reference program
    ]
    scores = ev.metric_execution_accuracy(rows)
    assert [row["verdict"] for row in rows] == [
        "correct", "correct", "correct", "wrong_answer", "timeout", "syntax_error", "blocked", "no_code", "correct",
    ]
    assert rows[0]["executed_answer"] == pytest.approx(0.25) and rows[2]["executed_answer"] is True
    assert rows[4]["executed_answer"] is None
    assert scores["execution_accuracy"] == pytest.approx(4 / 9)
    assert scores["execution_failure_rate"] == pytest.approx(4 / 9)


def test_execution_accuracy_is_registered():
    assert ev.METRICS["execution_accuracy"] is ev.metric_execution_accuracy

