"""Skill calling: example files, collection (-t), generation (-c) against a local fake API, and call_match."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import load_script

td = load_script("training_data")
ev = load_script("eval")

WEATHER = """#### Prompt:
weather(location)
Current weather for a place; weather() when no place is given.

#### Prompt Examples:
### User: What's the weather in Berlin?
### Assistant: weather(location='Berlin')

### User: is it raining
### Assistant: weather()
"""

NOTES = """#### Prompt:
notes(action="add|list", note)
Add a note or list the notes.

#### Prompt Examples:
### User: add buy milk to my notes
### Assistant: notes(action="add", note="buy milk")

### User: read my notes
### Assistant: notes(action="list")

#### Generated Examples:
### User: note down call Bob
### Assistant: notes(action="add", note="call Bob")
"""

OTHER = """#### Prompt:
other()
No skill applies.

#### Prompt Examples:
### User: thanks
### Assistant: other()

### User: turn on the lights
### Assistant: other()
"""


@pytest.fixture(autouse=True)
def in_tmp_dir(tmp_path, monkeypatch):
    # default output paths (data/skills/test.json) must land in the test's folder, never in the repository
    monkeypatch.chdir(tmp_path)


def write(folder, name, text):
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def skill_dir(tmp_path):
    for name, text in [("weather", WEATHER), ("notes", NOTES), ("other", OTHER)]:
        write(tmp_path, f"{name}_examples.txt", text)
    return tmp_path


def run_main(argv, capsys):
    """Run training_data.main; return (exit code, stdout, stderr)."""
    code = 0
    try:
        td.main(argv)
    except SystemExit as error:
        code = error.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- example files ---------------------------------------------------------------------------------------------------


def test_parse_good_file(skill_dir):
    skill = td.parse_skill_file(skill_dir / "notes_examples.txt")
    assert skill["name"] == "notes"
    assert skill["signature"] == 'notes(action="add|list", note)'
    assert skill["parameters"] == ["action", "note"]
    assert skill["choices"] == {"action": {"add", "list"}}
    assert skill["description"] == "Add a note or list the notes."
    assert [e["user"] for e in skill["examples"]] == ["add buy milk to my notes", "read my notes", "note down call Bob"]
    assert skill["examples"][0]["arguments"] == [("action", "add"), ("note", "buy milk")]
    assert (skill["examples"][2]["line"], skill["examples"][2]["answer_line"]) == (13, 14)


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("### User: hi\n### Assistant: other()\n", 1, "no '#### Prompt:' section"),
        ("#### Prompt:\n\n#### Prompt Examples:\n", 1, "no '#### Prompt:' section"),
        ("#### Prompt:\nweather location\n", 2, "signature"),
        (WEATHER + "\n### User: Rome\n\n### User: and Paris\n### Assistant: weather()\n", 12, "no '### Assistant:'"),
        (WEATHER + "\n### User: weather in Rome\n", 12, "no '### Assistant:'"),
        (WEATHER + "\n### User: weather in Rome\n### Assistant: the weather in Rome\n", 13, "is not one call"),
        (WEATHER + "\n### User: weather in Rome\n### Assistant: weather('Rome')\n", 13, "positional"),
        (WEATHER + "\n### User: weather in Rome\n### Assistant: weather(location=Rome)\n", 13, "quoted string"),
        (WEATHER + "\n### User: a\n### Assistant: weather(location='a', location='b')\n", 13, "twice"),
        (WEATHER + "\n### User: a\n### Assistant: weather(); other()\n", 13, "is not one call"),
        (WEATHER + "\n### Assistant: weather()\n", 12, "without a '### User:'"),
        (WEATHER + "\n### User:\n### Assistant: weather()\n", 12, "empty '### User:'"),
        (WEATHER + "\nsome stray text\n", 12, "unexpected line"),
        ("#### Prompt:\ntimer(duration)\n", 2, "file is named weather_examples.txt"),
    ],
)
def test_broken_file_names_file_and_line(tmp_path, text, line, words):
    path = write(tmp_path, "weather_examples.txt", text)
    with pytest.raises(SystemExit) as error:
        td.parse_skill_file(path)
    message = str(error.value)
    assert message.startswith(f"error: {path}:{line}: ")
    assert words in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "answer, words",
    [
        ("timer(duration='5 minutes')", "no '#### Prompt:' section defines"),
        ("weather(place='Rome')", "argument name"),
        ("notes(action='delete', note='x')", "outside the choices"),
        ("weather(location=' ')", "empty argument"),
    ],
)
def test_collect_rejects_unknown_skill_and_arguments(skill_dir, capsys, answer, words):
    path = write(skill_dir, "weather_examples.txt", WEATHER + f"\n### User: weather in Rome\n### Assistant: {answer}\n")
    code, out, err = run_main(["-t", "--files", str(path), str(skill_dir / "notes_examples.txt")], capsys)
    assert f"{path}:13: " in str(code) and words in str(code)
    assert out == ""


# --- collection (-t) -------------------------------------------------------------------------------------------------


def collect(skill_dir, capsys, *extra):
    files = sorted(str(p) for p in skill_dir.glob("*_examples.txt"))
    return run_main(["-t", "--files", *files, *extra], capsys)


def test_collect_all_to_stdout_with_fraction_zero(skill_dir, capsys):
    test_file = skill_dir / "out" / "test.json"
    code, out, _ = collect(skill_dir, capsys, "--test_fraction", "0", "--test_file", str(test_file))
    assert code == 0
    records = json.loads(out)
    assert len(records) == 7
    assert not test_file.exists()
    assert all(set(r) == {"prompt", "completion", "skill"} for r in records)
    first = records[0]
    assert first["completion"] == "notes(action=\"add\", note=\"buy milk\")"
    assert first["skill"] == "notes"
    assert first["prompt"] == (
        'Skills: notes(action="add|list", note), other(), weather(location)\n'
        "User: add buy milk to my notes\nCall:\n"
    )
    # quotes are made uniform so the model sees one spelling of a call
    assert {"prompt": records[-2]["prompt"].split("User: ")[1], "completion": records[-2]["completion"]} == {
        "prompt": "What's the weather in Berlin?\nCall:\n",
        "completion": 'weather(location="Berlin")',
    }


def test_collect_split_is_stratified_and_deterministic(skill_dir, capsys):
    test_file = skill_dir / "data" / "test.json"
    runs = []
    for _ in range(2):
        code, out, _ = collect(skill_dir, capsys, "--test_fraction", "0.3", "--test_file", str(test_file))
        assert code == 0
        runs.append((json.loads(out), json.loads(test_file.read_text())))
    assert runs[0] == runs[1]
    train, test = runs[0]
    assert test_file.stat().st_mode & 0o777 == 0o644
    assert len(train) + len(test) == 7
    assert sorted(r["skill"] for r in test) == ["notes", "other", "weather"]  # one per skill, none left without train
    assert {r["skill"] for r in train} == {"notes", "other", "weather"}
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in test}
    code, out, _ = collect(skill_dir, capsys, "--test_fraction", "0.3", "--test_file", str(test_file), "--seed", "7")
    assert code == 0


def test_collect_skips_repeats_and_rejects_conflicting_repeats(skill_dir, capsys):
    write(skill_dir, "other_examples.txt", OTHER + "\n### User: Thanks!\n### Assistant: other()\n")
    code, out, err = collect(skill_dir, capsys, "--test_fraction", "0")
    assert code == 0 and len(json.loads(out)) == 7
    write(skill_dir, "other_examples.txt", OTHER + "\n### User: is it raining?\n### Assistant: other()\n")
    code, out, _ = collect(skill_dir, capsys, "--test_fraction", "0")
    assert "same request has another answer" in str(code) and "weather_examples.txt:9" in str(code)


def test_collect_bad_fraction_and_duplicate_skill(skill_dir, capsys):
    code, _, _ = collect(skill_dir, capsys, "--test_fraction", "1")
    assert "--test_fraction" in str(code)
    write(skill_dir, "copy.txt", OTHER)
    code, _, _ = collect(skill_dir, capsys, "--test_fraction", "0")
    assert code == 0  # copy.txt does not match *_examples.txt
    code, _, _ = run_main(["-t", "--files", str(skill_dir / "copy.txt"), str(skill_dir / "other_examples.txt")], capsys)
    assert "defined again" in str(code)


# --- typed signatures and --format openai ----------------------------------------------------------------------------

TIMER = """#### Prompt:
timer(minutes: int, label: str = "tea", loud: bool = False, unit: "s|min" = "min", speed: float = None, note)
A countdown timer.

#### Prompt Examples:
### User: timer for 5 minutes
### Assistant: timer(minutes=5)

### User: a loud 2.0 minute egg timer
### Assistant: timer(minutes=2.0, label="egg", loud=True)
"""


def test_typed_signature_becomes_json_schema(tmp_path):
    skill = td.parse_skill_file(write(tmp_path, "timer_examples.txt", TIMER))
    assert skill["schema"] == {
        "type": "object",
        "properties": {
            "minutes": {"type": "integer"},
            "label": {"type": "string", "default": "tea"},
            "loud": {"type": "boolean", "default": False},
            "unit": {"type": "string", "enum": ["s", "min"], "default": "min"},
            "speed": {"type": "number"},
            "note": {"type": "string"},
        },
        "required": ["minutes"],
        "additionalProperties": False,
    }
    # prompts show names, choices and non-string types only, so the untyped files' prompts never changed
    assert skill["short_signature"] == 'timer(minutes: int, label, loud: bool, unit="s|min", speed: float, note)'
    assert skill["examples"][1]["arguments"] == [("minutes", 2.0), ("label", "egg"), ("loud", True)]
    typed_notes = NOTES.replace('notes(action="', 'notes(action: "', 1)
    notes = td.parse_skill_file(write(tmp_path, "notes_examples.txt", typed_notes))
    assert notes["schema"]["required"] == ["action"]
    assert notes["schema"]["properties"]["action"]["enum"] == ["add", "list"]
    assert notes["short_signature"] == 'notes(action="add|list", note)'
    assert td.parse_skill_file(write(tmp_path, "notes_examples.txt", NOTES))["schema"]["required"] == []


@pytest.mark.parametrize(
    "signature, words",
    [
        ('timer(unit="tea" = "x")', "has a default but no type"),
        ("timer(minutes = 5)", "has a default but no type"),
        ("timer(minutes: int = five)", "not a Python literal"),
        ('timer(minutes: int = "5")', "does not fit its type int"),
        ("timer(loud: bool = 1)", "does not fit its type bool"),
        ('timer(unit: "s|min" = "h")', "does not fit"),
        ("timer(minutes: list)", "bad parameter"),
        ("timer(minutes, minutes: int)", "appears twice"),
    ],
)
def test_bad_typed_signature_names_file_and_line(tmp_path, signature, words):
    path = write(tmp_path, "timer_examples.txt", f"#### Prompt:\n{signature}\nA timer.\n")
    with pytest.raises(SystemExit) as error:
        td.parse_skill_file(path)
    assert str(error.value).startswith(f"error: {path}:2: ") and words in str(error.value)


@pytest.mark.parametrize(
    "answer, reason",
    [
        ("timer(minutes=5)", None),
        ("timer(minutes=-5, speed=2, loud=False)", None),
        ("timer(minutes=5.0)", None),  # an integer to JSON Schema too
        ("timer(minutes=5.5)", "wrong_type"),
        ('timer(minutes="5")', "wrong_type"),
        ("timer(minutes=True)", "wrong_type"),
        ("timer(minutes=5, loud=1)", "wrong_type"),
        ("timer(minutes=5, label=3)", "non_string_argument"),
        ('timer(minutes=5, unit="h")', "bad_choice"),
        ('timer(label="tea")', "missing_argument"),
        ("timer(minutes=5, seconds=3)", "unknown_argument"),
        ("timer(minutes=None)", "non_string_argument"),
        ("timer(minutes=[5])", "non_string_argument"),
    ],
)
def test_calls_are_checked_against_the_schema(tmp_path, answer, reason):
    skill = td.parse_skill_file(write(tmp_path, "timer_examples.txt", TIMER))
    try:
        name, arguments = td.parse_skill_call(answer)
    except ValueError as error:
        assert str(error) == reason
        return
    assert td.check_skill_example("a timer for 5", name, arguments, {"timer": skill}, False) == reason


def collect_lines(skill_dir, capsys, *extra):
    code, out, err = collect(skill_dir, capsys, "--format", "openai", *extra)
    assert code == 0, code
    return [json.loads(line) for line in out.splitlines()], err


def test_collect_openai_format(skill_dir, capsys, caplog):
    caplog.set_level("INFO", logger="training_data")
    records, _ = collect_lines(skill_dir, capsys, "--test_fraction", "0")
    assert len(records) == 7 and "(openai): 7 to stdout" in caplog.text
    assert not (skill_dir / "data").exists()
    for record in records:
        assert set(record) == {"messages", "tools"}
        assert [m["role"] for m in record["messages"]] == ["system", "user", "assistant"]
        # other() is the absence of a call: no tool for it
        assert [t["function"]["name"] for t in record["tools"]] == ["notes", "weather"]
    notes = records[0]["tools"][0]["function"]
    assert notes["description"] == "Add a note or list the notes."
    assert notes["parameters"]["properties"]["action"] == {"type": "string", "enum": ["add", "list"]}
    first = records[0]["messages"]
    assert first[1]["content"] == "add buy milk to my notes"
    (call,) = first[2]["tool_calls"]
    assert set(first[2]) == {"role", "tool_calls"} and call["type"] == "function" and call["id"]
    assert call["function"]["name"] == "notes"
    assert json.loads(call["function"]["arguments"]) == {"action": "add", "note": "buy milk"}
    no_call = [r["messages"][2] for r in records if r["messages"][1]["content"] in ("thanks", "turn on the lights")]
    assert no_call == [{"role": "assistant", "content": td.SKILL_NO_CALL_REPLY}] * 2
    weather = [r["messages"][2]["tool_calls"][0]["function"] for r in records if "rain" in r["messages"][1]["content"]]
    assert weather == [{"name": "weather", "arguments": "{}"}]
    # other kept as a tool, with a reply of one's own
    records, _ = collect_lines(skill_dir, capsys, "--test_fraction", "0", "--no_call_skill", "")
    assert [t["function"]["name"] for t in records[0]["tools"]] == ["notes", "other", "weather"]
    assert all("tool_calls" in r["messages"][2] for r in records)
    code, _, _ = collect(skill_dir, capsys, "--format", "openai", "--no_call_skill", "weather")
    assert "--no_call_skill weather has parameters" in str(code)


def test_openai_format_holds_out_the_same_requests(skill_dir, capsys, caplog):
    caplog.set_level("INFO", logger="training_data")
    write(skill_dir, "weather_examples.txt", WEATHER + "".join(
        f"\n### User: weather in town {i}\n### Assistant: weather(location='town {i}')\n" for i in range(12)))
    code, out, _ = collect(skill_dir, capsys, "--test_fraction", "0.3", "--test_file", "plain.json")
    assert code == 0
    plain_train = [r["prompt"].split("User: ")[1].removesuffix("\nCall:\n") for r in json.loads(out)]
    plain_test = [r["prompt"].split("User: ")[1].removesuffix("\nCall:\n") for r in json.loads(
        (skill_dir / "plain.json").read_text())]
    records, _ = collect_lines(skill_dir, capsys, "--test_fraction", "0.3")
    test_path = skill_dir / "data" / "skills" / "test.jsonl"  # the default for --format openai
    assert f"held out in {test_path.relative_to(skill_dir)}" in caplog.text
    tests = [json.loads(line) for line in test_path.read_text().splitlines()]
    assert [r["messages"][1]["content"] for r in records] == plain_train
    assert [r["messages"][1]["content"] for r in tests] == plain_test
    assert len(plain_test) >= 5


# --- generation (-c) against a local OpenAI-compatible server --------------------------------------------------------


def tool_answer(arguments):
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    call = {"id": "call_1", "type": "function", "function": {"name": "add_examples", "arguments": arguments}}
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    choice = {"index": 0, "finish_reason": "tool_calls", "message": message}
    return 200, {"id": "c1", "object": "chat.completion", "created": 0, "model": "test", "choices": [choice]}


def pairs(*items):
    return {"examples": [{"user": user, "assistant": assistant} for user, assistant in items]}


class FakeAPI:
    """Answers POST /v1/chat/completions with scripted (status, body) replies, and records each request."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.requests = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                api.requests.append((self.path, json.loads(body)))
                status, answer = api.replies.pop(0) if api.replies else (500, {"error": {"message": "no more"}})
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


GOOD = pairs(("how's the weather in Oslo", 'weather(location="Oslo")'), ("is it hot outside", "weather()"))


def create(skill_dir, capsys, api, *extra, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    argv = ["-c", "--file", str(skill_dir / "weather_examples.txt"), "--base_url", api.url, "--model", "test"]
    argv += ["--retry_delay", "0", "--timeout", "5", *extra]
    return run_main(argv, capsys)


def test_create_retries_server_error_then_prints_valid(skill_dir, capsys, monkeypatch):
    with FakeAPI([(500, {"error": {"message": "boom"}}), tool_answer(GOOD)]) as api:
        code, out, err = create(skill_dir, capsys, api, "--n_generations", "2", monkeypatch=monkeypatch)
    assert code == 0
    assert out == (
        "### User: how's the weather in Oslo\n### Assistant: weather(location=\"Oslo\")\n\n"
        "### User: is it hot outside\n### Assistant: weather()\n\n"
    )
    assert "generated 2 valid, rejected: server_error=1" in err
    path, request = api.requests[-1]
    assert path == "/v1/chat/completions" and request["model"] == "test"
    tool = request["tools"][0]["function"]
    assert tool["name"] == "add_examples"
    assert tool["parameters"]["properties"]["examples"]["items"]["required"] == ["user", "assistant"]
    assert request["tool_choice"]["function"]["name"] == "add_examples"
    assert request["max_tokens"] == 256 + 64 * 2  # room for the examples asked for, and a bound for local servers
    assert "weather(location)" in request["messages"][1]["content"]
    assert (skill_dir / "weather_examples.txt").read_text() == WEATHER


@pytest.mark.parametrize(
    "failure, reason",
    [
        ((429, {"error": {"message": "slow down", "type": "rate_limit"}}), "rate_limit=1"),
        (tool_answer('{"examples": [{"user": "x", '), "malformed_answer=1"),
        (tool_answer({"items": []}), "malformed_answer=1"),
        ((200, {"object": "chat.completion", "created": 0, "model": "m", "choices": []}), "malformed_answer=1"),
    ],
)
def test_create_retries_rate_limit_and_malformed_answers(skill_dir, capsys, monkeypatch, failure, reason):
    with FakeAPI([failure, tool_answer(GOOD)]) as api:
        code, out, err = create(skill_dir, capsys, api, "--n_generations", "2", monkeypatch=monkeypatch)
    assert code == 0
    assert out.count("### User:") == 2
    assert f"generated 2 valid, rejected: {reason}" in err
    assert len(api.requests) == 2


def test_create_rejects_invalid_and_duplicate_examples(skill_dir, capsys, monkeypatch):
    answer = pairs(
        ("What's the weather in BERLIN", 'weather(location="BERLIN")'),  # in the file already
        ("weather in Rome", 'weather(location="Rome")'),
        ("weather in rome!", 'weather(location="rome")'),  # repeats the one before
        ("what time is it in Rome", 'timecheck(location="Rome")'),
        ("weather for Kyiv", 'weather("Kyiv")'),
        ("weather for Lima", 'weather(city="Lima")'),
        ("weather for Quito", 'weather(location="Bogota")'),
        ("weather in Bern", "sure! weather(location='Bern')"),
        ("", "weather()"),
        ("### User: weather in Porto", '### Assistant: weather(location="Porto")'),
        ("weather in Graz", 'weather(location="Graz")'),
    )
    answer["examples"].append({"user": "missing answer"})
    with FakeAPI([tool_answer(answer)]) as api:
        extra = ["--n_generations", "5", "--max_retries", "0"]
        code, out, err = create(skill_dir, capsys, api, *extra, monkeypatch=monkeypatch)
    assert code == 0
    assert out == (
        '### User: weather in Rome\n### Assistant: weather(location="Rome")\n\n'
        '### User: weather in Porto\n### Assistant: weather(location="Porto")\n\n'
        '### User: weather in Graz\n### Assistant: weather(location="Graz")\n\n'
    )
    expected = (
        "generated 3 valid, rejected: duplicate=2, empty_request=1, malformed_example=1, not_a_call=1, "
        "not_in_request=1, positional_argument=1, unknown_argument=1, wrong_skill=1"
    )
    assert expected in err
    assert len(api.requests) == 1



def test_create_checks_calls_against_the_schema(tmp_path, capsys, monkeypatch):
    path = write(tmp_path, "timer_examples.txt", TIMER)
    answer = pairs(
        ("5 minute timer please", "timer(minutes=5)"),
        ("timer for ten minutes", 'timer(minutes="ten")'),
        ("start a tea timer", 'timer(label="tea")'),
        ("a loud 3 minute timer", "timer(minutes=3, loud=True)"),
        ("a 3 minute timer in hours", 'timer(minutes=3, unit="h")'),
    )
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    with FakeAPI([tool_answer(answer)]) as api:
        argv = ["-c", "--file", str(path), "--base_url", api.url, "--n_generations", "3", "--max_retries", "0"]
        code, out, err = run_main(argv, capsys)
    assert code == 0
    assert out == ("### User: 5 minute timer please\n### Assistant: timer(minutes=5)\n\n"
                   "### User: a loud 3 minute timer\n### Assistant: timer(minutes=3, loud=True)\n\n")
    assert "generated 2 valid, rejected: bad_choice=1, missing_argument=1, wrong_type=1" in err
    assert "timer(minutes: int, label" in api.requests[0][1]["messages"][1]["content"]

def test_create_append_keeps_existing_content(skill_dir, capsys, monkeypatch):
    path = skill_dir / "weather_examples.txt"
    path.chmod(0o640)
    with FakeAPI([(500, {}), tool_answer(GOOD)]) as api:
        code, out, err = create(skill_dir, capsys, api, "--append", monkeypatch=monkeypatch)
    assert code == 0 and out == ""
    text = path.read_text()
    assert text.startswith(WEATHER)
    assert path.stat().st_mode & 0o777 == 0o640
    assert "#### Generated Examples:" in text
    skill = td.parse_skill_file(path)
    assert [e["user"] for e in skill["examples"]][-2:] == ["how's the weather in Oslo", "is it hot outside"]
    assert "generated 2 valid (appended to" in err
    assert [p.name for p in skill_dir.iterdir() if p.name.startswith(".")] == []  # no temp file left behind
    # a second append goes under the same Generated Examples header and still keeps everything
    with FakeAPI([tool_answer(pairs(("weather in Kyoto", 'weather(location="Kyoto")')))]) as api:
        code, _, _ = create(skill_dir, capsys, api, "--append", monkeypatch=monkeypatch)
    assert code == 0
    again = path.read_text()
    assert again.startswith(text.rstrip("\n")) and again.count("#### Generated Examples:") == 1
    assert td.parse_skill_file(path)["examples"][-1]["user"] == "weather in Kyoto"


def test_create_gives_up_after_retries_and_leaves_file_alone(skill_dir, capsys, monkeypatch):
    path = skill_dir / "weather_examples.txt"
    with FakeAPI([(500, {}), (429, {}), (503, {})]) as api:
        code, out, err = create(skill_dir, capsys, api, "--append", "--max_retries", "2", monkeypatch=monkeypatch)
    assert "no valid examples" in str(code)
    assert "generated 0 valid, rejected: rate_limit=1, server_error=2" in err
    assert len(api.requests) == 3
    assert path.read_text() == WEATHER


def test_create_stops_on_auth_error_and_needs_key(skill_dir, capsys, monkeypatch):
    with FakeAPI([(401, {"error": {"message": "bad key"}})]) as api:
        code, _, _ = create(skill_dir, capsys, api, monkeypatch=monkeypatch)
        assert "HTTP 401" in str(code) and len(api.requests) == 1
        monkeypatch.delenv("OPENAI_API_KEY")
        code, _, _ = run_main(["-c", "--file", str(skill_dir / "weather_examples.txt"), "--base_url", api.url], capsys)
    assert "OPENAI_API_KEY" in str(code)


def test_create_connection_error_is_counted(skill_dir, capsys, monkeypatch):
    with FakeAPI([]) as api:
        url = api.url
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    argv = ["-c", "--file", str(skill_dir / "weather_examples.txt"), "--base_url", url, "--retry_delay", "0"]
    code, _, err = run_main([*argv, "--max_retries", "1", "--timeout", "2"], capsys)
    assert "no valid examples" in str(code)
    assert "connection_error=2" in err


# --- call_match ------------------------------------------------------------------------------------------------------

PROMPT = 'Skills: notes(action="add|list", note), other(), timecheck(location), weather(location)\nUser: x\nCall:\n'


@pytest.mark.parametrize(
    "reference, prediction, skill, correct",
    [
        ('weather(location="Berlin")', 'weather(location="Berlin")', "weather", True),
        ('weather(location="New York")', "weather(location='  new   york ')", "weather", True),
        ('notes(action="add", note="buy milk")', 'notes(note="Buy milk", action="add")', "notes", True),
        ('notes(action="add", note="buy milk")', 'notes("add", "buy milk")', "notes", True),
        ('notes(action="add", note="buy milk")', 'notes("buy milk")', "notes", False),
        ('weather(location="Berlin")', 'weather("Berlin", location="Berlin")', "weather", False),
        ('weather(location="Berlin")', 'weather(location="Berlin")\n### User: more text', "weather", True),
        ('weather(location="Berlin")', 'weather(location="Berlin") and then', "weather", True),
        ('weather(location="Berlin")', 'weather(location="Bern")', "weather", False),
        ('weather(location="Berlin")', "weather()", "weather", False),
        ("weather()", 'weather(location="")', "weather", True),
        ('weather(location="Berlin")', 'timecheck(location="Berlin")', "timecheck", False),
        ('weather(location="Berlin")', 'weather(location="Berlin"', None, False),
        ('weather(location="Berlin")', "", None, False),
        ('weather(location="Berlin")', "__import__('os').system('true')", None, False),
        ("other()", "other()", "other", True),
        ("other()", " other() ", "other", True),
        ("other()", "other(x='1')", "other", False),
        ('math(question="2+2")', 'math(question="2 + 2")', "math", True),
        ('math(question="2*3")', 'math(question="3*2")', "math", True),  # same value
        ('math(question="2*3")', 'math(question="2+3")', "math", False),
    ],
)
def test_call_match_cases(reference, prediction, skill, correct):
    rows = [{"prompt": PROMPT, "reference": reference, "prediction": prediction}]
    scores = ev.metric_call_match(rows)
    assert rows[0]["predicted_skill"] == skill
    assert rows[0]["call_correct"] is correct
    assert scores["full_call_accuracy"] == float(correct)


def test_call_match_summary():
    rows = [
        {"prompt": PROMPT, "reference": 'weather(location="Oslo")', "prediction": 'weather(location="oslo")'},
        {"prompt": PROMPT, "reference": 'weather(location="Oslo")', "prediction": 'weather(location="Rome")'},
        {"prompt": PROMPT, "reference": "weather()", "prediction": "timecheck()"},
        {"prompt": PROMPT, "reference": "weather()", "prediction": "timecheck()"},
        {"prompt": PROMPT, "reference": "other()", "prediction": "garbage("},
        {"prompt": PROMPT, "reference": "other()", "prediction": "other()"},
    ]
    scores = ev.metric_call_match(rows)
    assert scores["full_call_accuracy"] == pytest.approx(2 / 6)
    assert scores["skill_name_accuracy"] == pytest.approx(3 / 6)
    assert scores["full_call_accuracy/weather"] == pytest.approx(1 / 4)
    assert scores["skill_name_accuracy/weather"] == pytest.approx(2 / 4)
    assert scores["skill_name_accuracy/other"] == pytest.approx(1 / 2)
    assert scores["confusions"] == "weather->timecheck:2, other->unparsable:1"
    assert scores["unparsable_predictions"] == 1
    assert all(isinstance(v, (int, float, str)) for v in scores.values())
    assert ev.METRICS["call_match"] is ev.metric_call_match
    assert ev.metric_call_match([])["confusions"] == "none"


# --- the shipped example files ---------------------------------------------------------------------------------------


def test_shipped_skill_files(root, capsys, tmp_path):
    files = sorted((root / "examples" / "skills").glob("*_examples.txt"))
    names = {"news", "math", "notes", "openai", "runapp", "story", "timecheck", "timer", "weather", "other"}
    assert {p.name.removesuffix("_examples.txt") for p in files} == names
    skills = {skill["name"]: skill for skill in map(td.parse_skill_file, files)}
    for skill in skills.values():
        assert len(skill["examples"]) >= 40, skill["path"]
        for example in skill["examples"]:
            reason = td.check_skill_example(example["user"], example["name"], example["arguments"], skills, True)
            assert reason is None and example["name"] == skill["name"], (skill["path"], example["line"], reason)
    code, out, err = run_main(["-t", "--files", *map(str, files), "--test_file", str(tmp_path / "t.json")], capsys)
    assert code == 0 and "skipping" not in err
    train, test = json.loads(out), json.loads((tmp_path / "t.json").read_text())
    assert {r["skill"] for r in test} == names
    assert len(train) + len(test) == sum(len(s["examples"]) for s in skills.values())
    argv = ["-t", "--format", "openai", "--files", *map(str, files), "--test_file", str(tmp_path / "t.jsonl")]
    code, out, _ = run_main(argv, capsys)
    lines = (tmp_path / "t.jsonl").read_text().splitlines()
    assert code == 0 and len(out.splitlines()) == len(train) and len(lines) == len(test)
    tools = {tool["function"]["name"]: tool["function"]["parameters"] for tool in json.loads(lines[0])["tools"]}
    assert set(tools) == names - {"other"}
    assert tools["math"]["required"] == ["question"] and tools["notes"]["required"] == ["action"]


def test_command_line_stdout_is_pure_json_and_errors_are_one_line(root, skill_dir, tmp_path):
    import subprocess
    import sys

    files = sorted(str(p) for p in skill_dir.glob("*_examples.txt"))
    command = [sys.executable, str(root / "training_data.py"), "-t", "--files", *files]
    done = subprocess.run([*command, "--test_file", str(tmp_path / "t.json")], capture_output=True, text=True)
    assert done.returncode == 0
    assert len(json.loads(done.stdout)) + len(json.loads((tmp_path / "t.json").read_text())) == 7
    assert "collected 7 examples of 3 skills" in done.stderr
    write(skill_dir, "other_examples.txt", OTHER + "\n### User: dangling request\n")
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().count("\n") == 0
    assert done.stderr.startswith(f"error: {skill_dir / 'other_examples.txt'}:12: '### User:' has no")


@pytest.mark.parametrize("predicted,reference,same", [
    ('math(question="15 * 64 / 100")', 'math(question="64 * 15 / 100")', True),
    ('math(question="(2+3)*4")', 'math(question="20")', True),
    ('math(question="5 * 6")', 'math(question="5 * 4 * 3 * 2 * 1")', False),
    ('math(question="2 ** 100000")', 'math(question="3")', False),
    ('math(question="1 / 0")', 'math(question="1")', False),
    ('math(question="__import__(\'os\')")', 'math(question="1")', False),
])
def test_math_questions_match_by_value(predicted, reference, same):
    rows = [{"prompt": "Skills: math(question)\nUser: x\nCall:\n", "reference": reference, "prediction": predicted}]
    assert load_script("eval").metric_call_match(rows)["full_call_accuracy"] == (1.0 if same else 0.0)
