"""FinQA / ConvFinQA data: program translation, the sandbox, ConvFinQA turns, the teacher path over real HTTP, a run."""

import json
import re
import subprocess
import sys
import threading
from argparse import Namespace
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import load_script

td = load_script("training_data")
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# An invented report in the official FinQA layout.
RECORD = {
    "id": "ACME/2019/page_12.pdf-1",
    "pre_text": [
        "acme tools sells hand tools through home centers .",
        "during 2019 the company repurchased 2.5 million shares at an average price of $ 40.00 per share .",
    ],
    "post_text": ["the effective tax rate was 21% in 2019 .", "management expects demand to stay stable ."],
    "table": [
        ["( in millions )", "2019", "2018", "2017"],
        ["revenue", "$ 1,250", "$ 1,000", "$ 900"],
        ["operating income", "150", "120", "( 10 )"],
        ["gross margin", "31.0%", "29.5%", "28.0%"],
    ],
    "qa": {
        "question": "what was the percentage change in revenue from 2018 to 2019?",
        "program": "subtract(1250, 1000), divide(#0, 1000)",
        "exe_ans": 0.25,
        "gold_inds": {"table_1": "the revenue of 2019 is $ 1250 ;", "text_1": "during 2019 ..."},
    },
}


def document(record=RECORD):
    return td.finqa_document(record, "test")


def run_translation(program, record=RECORD):
    code = td.finqa_translate(program, document(record))
    namespace = {}
    exec(code, namespace)  # our own translation of a trusted program; the sandbox is tested separately
    return code, namespace["ans"]


@pytest.mark.parametrize(
    "program, expected, snippet",
    [
        ("add(1250, 1000)", 2250, "revenue_2019 = 1250"),
        ("subtract(1250, 1000)", 250, "ans = revenue_2019 - revenue_2018"),
        ("multiply(2.5, 40.00)", 100.0, "repurchased"),
        ("divide(150, 1250)", 0.12, "operating_income_2019 = 150"),
        ("exp(1.1, 2)", 1.21, "** "),
        ("greater(1250, 1000)", True, " > "),
        ("greater(120, 150)", False, " > "),
        ("table_sum(revenue, none)", 3150, "revenue = [1250.0, 1000.0, 900.0]"),
        ("table_average(revenue, none)", 1050, "sum(revenue) / len(revenue)"),
        ("table_max(gross margin, none)", 0.31, "max(gross_margin)"),
        ("table_min(gross margin, none)", 0.28, "min(gross_margin)"),
        ("subtract(1250, 1000), divide(#0, 1000)", 0.25, "difference = revenue_2019 - revenue_2018"),
        ("divide(150, 1250), multiply(#0, const_100)", 12.0, "* 100"),
        ("multiply(2.5, const_1000)", 2500, "* 1000"),
        ("multiply(150, const_m1)", -150, "* (-1)"),
        ("divide(21%, const_2)", 0.105, "21 / 100"),
        ("add(1,250, 1)", None, None),  # a comma inside a number is ambiguous: FinQA programs never write one
        ("1250", 1250, "ans = revenue_2019"),  # a ConvFinQA turn that reads off one number
        ("table_max(revenue, none), table_min(revenue, none), subtract(#0, #1)", 350, "revenue_max = max(revenue)"),
    ],
)
def test_translation_of_every_operation(program, expected, snippet):
    if expected is None:
        with pytest.raises(ValueError):
            td.finqa_translate(program, document())
        return
    code, answer = run_translation(program)
    assert answer == pytest.approx(expected)
    assert snippet in code
    assert code.rstrip().splitlines()[-1].startswith("ans = ")


@pytest.mark.parametrize(
    "program, reason",
    [
        ("sqrt(4)", "bad_program"),
        ("add(1, 2", "bad_program"),
        ("add(1, #3)", "bad_program"),
        ("add(1)", "bad_program"),
        ("add(one, 2)", "bad_program"),
        ("add(1, 2) garbage", "bad_program"),
        ("table_sum(net income, none)", "unknown_row"),
        ("table_sum(operating income, none)", "non_numeric_row"),
    ],
)
def test_translation_rejects_bad_programs(program, reason):
    with pytest.raises(ValueError) as raised:
        td.finqa_translate(program, document())
    assert raised.value.args[0] == reason


def test_translation_reproduces_exe_ans_on_real_dev_records():
    records = json.loads((FIXTURES / "finqa_dev_sample.json").read_text())["records"]
    assert len(records) >= 10
    reproduced = 0
    for index, record in enumerate(records):
        (example,) = td.finqa_examples_from_finqa(record, f"record {index}")
        code = td.finqa_translate(example["program"], example["document"])
        answer, status, _ = td.finqa_run_code(code, timeout=5)
        assert status == "ok", (record["id"], code)
        gold = example["gold_answer"]
        # exe_ans is rounded to 5 decimals; the translation must match it to those 5 decimals
        reproduced += gold == ("yes" if answer else "no") if isinstance(gold, str) else round(answer, 5) == gold
    assert reproduced == len(records)


def test_sandbox_returns_answers_and_output():
    assert td.finqa_run_code("x = 3\nprint('three')\nans = x / 4\n") == (0.75, "ok", "three\n")
    assert td.finqa_run_code("ans = 2 > 1\n")[:2] == (True, "ok")
    assert td.finqa_run_code("import math\nans = math.sqrt(16)\n")[:2] == (4.0, "ok")


@pytest.mark.parametrize(
    "predicted, gold, same",
    [
        (0.25, 0.25, True),
        (25.0, 0.25, True),  # percent vs fraction
        (0.25, 25.0, True),
        (0.250004, 0.25, True),
        (127.4, 127.40001, True),
        (16086.33, 16086.33333, True),  # rounded to cents
        (0.14, 0.14243, False),
        (True, "yes", True),
        (False, "no", True),
        ("Yes", "yes", True),
        (True, "no", False),
        (1.0, "yes", False),
        ("n/a", 3.0, False),
        (None, 3.0, False),
        (float("nan"), 3.0, False),
        (-4.0, 4.0, False),
    ],
)
def test_answers_match_finqa_conventions(predicted, gold, same):
    assert td.finqa_answers_match(predicted, gold) is same


OFFICIAL_CONVFINQA = {
    "id": "Single_ACME/2019/page_12.pdf-1",
    "pre_text": RECORD["pre_text"],
    "post_text": RECORD["post_text"],
    "table": RECORD["table"],
    "annotation": {
        "dialogue_break": ["what was revenue in 2019?", "and in 2018?", "what was the change?", "and in percent?"],
        "turn_program": ["1250", "1000", "subtract(1250, 1000)", "subtract(1250, 1000), divide(#0, 1000)"],
        "exe_ans_list": [1250.0, 1000.0, 250.0, 0.25],
        "qa_split": [False, False, True, True],
    },
    "qa_0": {"question": "q", "program": "1250", "exe_ans": 1250.0, "gold_inds": {"table_1": "revenue row"}},
    "qa_1": {"question": "q", "program": "x", "exe_ans": 0.25, "gold_inds": {"text_1": "repurchase"}},
}
# The re-arranged layout of the public ConvFinQA sample: doc{...} with a {column: {row: value}} table, dialogue{...}.
REARRANGED_CONVFINQA = {
    "id": "Single_ACME/2019/page_12.pdf-2",
    "doc": {
        "pre_text": "acme tools sells hand tools . revenue grew in 2019 .",
        "post_text": "management expects demand to stay stable .",
        "table": {"2019": {"revenue": 1250.0, "operating income": 150.0}, "2018": {"revenue": 1000.0,
                                                                                  "operating income": 120.0}},
    },
    "dialogue": {
        "conv_questions": ["what was revenue in 2019?", "and in 2018?", "what was the percentage change?"],
        "conv_answers": ["1250", "1000", "25%"],
        "turn_program": ["1250", "1000", "subtract(1250, 1000), divide(#0, 1000)"],
        "executed_answers": [1250.0, 1000.0, 0.25],
        "qa_split": [False, False, False],
    },
    "features": {"num_dialogue_turns": 3},
}


@pytest.mark.parametrize("record, turns", [(OFFICIAL_CONVFINQA, 4), (REARRANGED_CONVFINQA, 3)])
def test_convfinqa_turn_expansion(record, turns):
    examples = td.finqa_examples_from_convfinqa(record, "conv.json record 0")
    assert [e["id"] for e in examples] == [f"{record['id']}#turn{i}" for i in range(turns)]
    last = examples[-1]
    assert last["gold_answer"] == 0.25
    assert len(last["history"]) == turns - 1
    prompt = td.finqa_prompt(td.finqa_context(last["document"], {}, "full", 0), last["question"], last["history"])
    assert "Q: what was revenue in 2019?\nA: 1250\nQ: and in 2018?\nA: 1000\n" in prompt
    assert prompt.rstrip().endswith(f"Question: {last['question']}")
    assert "| revenue | $ 1,250 | $ 1,000 |" in prompt or "| revenue | 1250 | 1000 |" in prompt
    for example in examples:
        code = td.finqa_translate(example["program"], example["document"])
        namespace = {}
        exec(code, namespace)
        assert td.finqa_answers_match(namespace["ans"], example["gold_answer"])


def test_convfinqa_official_turns_pick_gold_evidence_by_qa_split():
    examples = td.finqa_examples_from_convfinqa(OFFICIAL_CONVFINQA, "conv.json record 0")
    assert [list(e["gold_inds"]) for e in examples] == [["table_1"], ["table_1"], ["text_1"], ["text_1"]]


def test_context_gold_and_token_budget():
    doc = document()
    full = td.finqa_context(doc, RECORD["qa"]["gold_inds"], "full", 0)
    gold = td.finqa_context(doc, RECORD["qa"]["gold_inds"], "gold", 0)
    assert "| revenue | $ 1,250 | $ 1,000 | $ 900 |" in full and "management expects" in full
    assert "| ( in millions ) | 2019 |" in gold and "| revenue |" in gold and "repurchased" in gold
    assert "gross margin" not in gold and "management expects" not in gold
    trimmed = td.finqa_context(doc, RECORD["qa"]["gold_inds"], "full", 80)
    assert td.finqa_count_tokens(trimmed) <= 80
    # gold evidence is kept longest, then the table header; plain text goes first
    assert "| revenue |" in trimmed and "repurchased" in trimmed and "| ( in millions ) |" in trimmed
    assert "management expects" not in trimmed and "gross margin" not in trimmed
    prompt = td.finqa_prompt(trimmed, RECORD["qa"]["question"], [])
    assert prompt.rstrip().endswith("Question: what was the percentage change in revenue from 2018 to 2019?")


def write_split(folder, name, records):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(records))


def finqa_args(tmp_path, **overrides):
    values = dict(finqa_dir=None, convfinqa_dir=None, output_dir=str(tmp_path / "out"), source="gold_program",
                  context="full", max_context_tokens=0, max_examples=0, teacher_model=None, teacher_temperature=0.0,
                  max_concurrency=2, teacher_cache=None, sandbox_timeout=2.0, sandbox_memory_mb=256,
                  sandbox_workers=2, base_url=None, max_retries=3, retry_delay=0.01, timeout=10.0)
    values.update(overrides)
    return Namespace(**values)


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_bad_records_are_counted_drops(tmp_path, caplog):
    missing_question = json.loads(json.dumps(RECORD))
    missing_question["id"] = "ACME/no-question"
    del missing_question["qa"]["question"]
    ragged = json.loads(json.dumps(RECORD))
    ragged["id"] = "ACME/ragged"
    ragged["table"][2] = ["operating income", "150"]
    bad_program = json.loads(json.dumps(RECORD))
    bad_program["id"] = "ACME/bad-program"
    bad_program["qa"]["program"] = "subtract(1250, 1000"
    wrong_gold = json.loads(json.dumps(RECORD))
    wrong_gold["id"] = "ACME/wrong-gold"
    wrong_gold["qa"]["exe_ans"] = 0.3
    records = [RECORD, missing_question, ragged, bad_program, wrong_gold, "not a record"]
    write_split(tmp_path / "finqa", "train", records)
    with caplog.at_level("INFO", logger="training_data"):
        td.prepare_finqa(finqa_args(tmp_path, finqa_dir=str(tmp_path / "finqa")))
    rows = read_jsonl(tmp_path / "out" / "train.jsonl")
    assert [row["id"] for row in rows] == [RECORD["id"]]
    log = caplog.text
    assert "train: kept 1 of 6 (dropped: missing_field=2, " in log
    for reason in ("ragged_table=1", "bad_program=1", "wrong_answer=1"):
        assert reason in log
    assert "id ACME/no-question): missing field qa.question" in log
    assert not (tmp_path / "out" / "dev.jsonl").exists()  # no dev.json given


def test_a_rerun_without_a_split_removes_its_stale_file(tmp_path, caplog):
    write_split(tmp_path / "finqa", "train", [RECORD])
    write_split(tmp_path / "finqa", "dev", [RECORD])
    td.prepare_finqa(finqa_args(tmp_path, finqa_dir=str(tmp_path / "finqa")))
    (tmp_path / "finqa" / "dev.json").unlink()
    (tmp_path / "out" / "teacher_cache.jsonl").write_text("")  # not a split: never removed
    with caplog.at_level("INFO", logger="training_data"):
        td.prepare_finqa(finqa_args(tmp_path, finqa_dir=str(tmp_path / "finqa")))
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["teacher_cache.jsonl", "train.jsonl"]
    assert "removed dev.jsonl, split files of an earlier run that this run did not write" in caplog.text


def test_missing_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(SystemExit) as raised:
        td.prepare_finqa(finqa_args(tmp_path, finqa_dir=str(tmp_path / "nowhere")))
    assert str(raised.value).startswith("error: ") and "\n" not in str(raised.value)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "train.json").write_text("{not json")
    with pytest.raises(SystemExit) as raised:
        td.prepare_finqa(finqa_args(tmp_path, finqa_dir=str(tmp_path / "broken")))
    assert "train.json: not valid JSON" in str(raised.value)


class FakeTeacher:
    """An OpenAI-compatible /v1/chat/completions on 127.0.0.1: the first call fails with 500, then it answers from a
    table of question -> code, and it records which questions it was asked."""

    def __init__(self, answers):
        self.answers = answers
        self.asked = []
        self.failures_left = 1
        teacher = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                assert self.path == "/v1/chat/completions"
                assert self.headers["Authorization"] == "Bearer test-key"
                question = body["messages"][-1]["content"].rsplit("Question: ", 1)[1].strip()
                with lock:
                    if teacher.failures_left:
                        teacher.failures_left -= 1
                        self.send_response(500)
                        self.send_header("Content-Type", "application/json")
                        self.end_headers()
                        self.wfile.write(b'{"error": {"message": "try again"}}')
                        return
                    teacher.asked.append(question)
                reply = {
                    "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop", "message": {
                        "role": "assistant", "content": f"```python\n{teacher.answers[question]}\n```"}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_teacher_path_over_http_with_retry_and_resume(tmp_path, monkeypatch):
    questions = {
        "what was the percentage change in revenue from 2018 to 2019?":
            "revenue_2019 = 1250\nrevenue_2018 = 1000\nans = (revenue_2019 - revenue_2018) / revenue_2018",
        "what was revenue in 2018?": "ans = 1000",
        "what was operating income in 2019?": "ans = 999",  # wrong: dropped
        "what was revenue in 2017?": "while True:\n    pass",  # hangs: dropped as timeout
    }
    records = []
    for index, (question, _) in enumerate(questions.items()):
        record = json.loads(json.dumps(RECORD))
        record["id"] = f"ACME/teacher-{index}"
        record["qa"]["question"] = question
        record["qa"]["exe_ans"] = {0: 0.25, 1: 1000.0, 2: 150.0, 3: 900.0}[index]
        records.append(record)
    write_split(tmp_path / "finqa", "train", records)
    teacher = FakeTeacher(questions)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    args = finqa_args(tmp_path, finqa_dir=str(tmp_path / "finqa"), source="teacher", teacher_model="tiny-teacher",
                      base_url=teacher.url, sandbox_timeout=1.0)
    try:
        td.prepare_finqa(args)
        rows = read_jsonl(tmp_path / "out" / "train.jsonl")
        assert [row["id"] for row in rows] == ["ACME/teacher-0", "ACME/teacher-1"]
        assert rows[0]["completion"].endswith("ans = (revenue_2019 - revenue_2018) / revenue_2018\n")
        assert teacher.failures_left == 0 and sorted(teacher.asked) == sorted(questions)
        cache = read_jsonl(tmp_path / "out" / "teacher_cache.jsonl")
        answers = [entry["id"] for entry in cache if "verdict" not in entry]
        assert sorted(answers) == [f"ACME/teacher-{i}" for i in range(4)]
        # the wrong answer is kept with its verdict, so a rerun does not run it again; the timeout runs again
        assert [(entry["id"], entry["verdict"]) for entry in cache if "verdict" in entry] == [
            ("ACME/teacher-2", "wrong_answer")]

        # Resume: two cached answers are dropped from the cache file as if the run had been cut short.
        (tmp_path / "out" / "teacher_cache.jsonl").write_text(
            "".join(json.dumps(e) + "\n" for e in cache if e["id"] in ("ACME/teacher-0", "ACME/teacher-2"))
            + '{"id": "ACME/teach'  # a line cut short
        )
        teacher.asked.clear()
        td.prepare_finqa(args)
        assert sorted(teacher.asked) == ["what was revenue in 2017?", "what was revenue in 2018?"]
        assert [row["id"] for row in read_jsonl(tmp_path / "out" / "train.jsonl")] == [r["id"] for r in rows]
        teacher.asked.clear()
        td.prepare_finqa(args)
        assert teacher.asked == []
    finally:
        teacher.server.shutdown()


def test_end_to_end_on_the_example_data(tmp_path, root):
    result = subprocess.run(
        [sys.executable, "training_data.py", "--finqa_dir", "examples/finqa", "--convfinqa_dir", "examples/convfinqa",
         "--output_dir", str(tmp_path)],
        cwd=root, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    examples = {split: len(json.loads((root / "examples" / "finqa" / f"{split}.json").read_text()))
                for split in ("train", "dev", "test")}
    turns = {split: sum(len(r["annotation"]["dialogue_break"])
                        for r in json.loads((root / "examples" / "convfinqa" / f"{split}.json").read_text()))
             for split in ("train", "dev", "test")}
    for split in ("train", "dev", "test"):
        total = examples[split] + turns[split]
        assert f"{split}: kept {total} of {total} (dropped: none)" in result.stderr
        rows = read_jsonl(tmp_path / f"{split}.jsonl")
        assert len(rows) == total
        assert {"id", "prompt", "completion", "gold_answer"} <= set(rows[0])
        assert "`ans`" in rows[0]["prompt"] and "Question: " in rows[0]["prompt"]
        assert "ans = " in rows[0]["completion"]
    assert examples["train"] >= 100 and examples["dev"] >= 25 and examples["test"] >= 25
    train = json.loads((root / "examples" / "finqa" / "train.json").read_text())
    operations = Counter(op for record in train for op in re.findall(r"(\w+)\(", record["qa"]["program"]))
    for op in ("add", "subtract", "multiply", "divide", "greater", "table_sum", "table_average", "table_max",
               "table_min"):
        assert operations[op] > 0, op


def test_checker_error_is_not_kept_as_a_cached_verdict(tmp_path):
    # checker_error means our checker failed, not the program: a rerun (with a fixed checker) runs it again
    cache = tmp_path / "teacher_cache.jsonl"
    verdicts = {"a": ("checker_error", "RecursionError: deep"), "b": ("wrong_answer", "ans=1, gold=2"),
                "c": ("timeout", "no answer within 5s")}
    td.finqa_record_verdicts(cache, "teacher", {"a": "ans = 1", "b": "ans = 1", "c": "ans = 1"}, verdicts)
    assert [(entry["id"], entry["verdict"]) for entry in read_jsonl(cache)] == [("b", "wrong_answer")]
    # an older cache's checker_error line is an answer to run again, not a rejection
    with cache.open("a") as handle:
        handle.write(json.dumps({"id": "a", "model": "teacher", "response": "ans = 1", "verdict": "checker_error",
                                 "message": "RecursionError: deep"}) + "\n")
    cached, rejected = td.finqa_read_cache(str(cache), "teacher")
    assert set(cached) == {"a", "b"} and set(rejected) == {"b"}


def test_a_turn_without_gold_inds_gets_the_rows_and_sentences_holding_its_programs_numbers():
    # the hub layout keeps no gold_inds: the evidence is where the turn's (and earlier turns') numbers are
    record = {**REARRANGED_CONVFINQA, "doc": {**REARRANGED_CONVFINQA["doc"], "pre_text": "revenue was 1250 in 2019 ."}}
    examples = td.finqa_examples_from_convfinqa(record, "conv.json record 0")
    assert [e["evidence_from_program"] for e in examples] == [True] * 3
    first, last = examples[0]["gold_inds"], examples[-1]["gold_inds"]
    assert set(first) == {"text_0", "table_1"} and "table_2" not in first  # operating income holds no 1250
    context = td.finqa_context(examples[-1]["document"], last, "gold", 0)
    assert "revenue was 1250" in context and "operating income" not in context and "stay stable" not in context
    assert td.finqa_program_evidence(examples[0]["document"], ["2019"]) == {"text_0": ""}  # not the header row
    many = {**examples[0]["document"], "sentences": ["it was 7 ."] * 4}
    assert td.finqa_program_evidence(many, ["7"]) == {}  # in more than three places: says nothing
    official = td.finqa_examples_from_convfinqa(OFFICIAL_CONVFINQA, "conv.json record 0")
    assert not any(e["evidence_from_program"] for e in official if e["gold_inds"])
