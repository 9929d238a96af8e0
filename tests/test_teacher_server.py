"""The teacher paths against a real OpenAI-compatible server: `transformers serve` with the embedded SmolLM2-135M.

The fake servers in test_skills.py and test_finqa_data.py script failures (429, 500, malformed JSON, timeouts); this
one checks that whatever a real server answers is parsed, validated, counted and cached as with a paid API. A 135M
model writes poor examples and wrong programs, so most answers are rejected: the test asserts the accounting, not
the quality.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import ROOT, load_script, run_script

td = load_script("training_data")
START_TIMEOUT = 240  # seconds; the server loads in 20-60 s on two busy cores
LIFETIME = 1800  # seconds; the server is killed after this whatever happens
REQUEST_REASONS = {"malformed_answer", "malformed_example", "multiline", *td.SKILL_REASONS}
# Short answers keep the test short: on two cores under load the model writes a few tokens a second, and the server
# finishes a generation even after the client gave up on it. Cut answers are still parsed, validated and counted.
BOUNDS = ["--max_tokens", "32", "--timeout", "240"]
WEATHER = """#### Prompt:
weather(location)
Current weather or forecast for a place; call weather() with no argument when the user names no place.

#### Prompt Examples:
### User: What is the weather in Berlin?
### Assistant: weather(location="Berlin")

### User: Is it going to rain today?
### Assistant: weather()
"""
FINQA_REASONS = {"no_code", "syntax_error", "runtime_error", "no_ans", "wrong_answer", "timeout", "memory", "blocked",
                 "crashed"}


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop(process):
    """The server and anything it started go, whatever state the test left them in."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=5)  # uvicorn waits for a generation in flight; no need to wait for it
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def start_server(model_dir, log):
    """A running server process and its port; None if the port was taken between probing and binding."""
    port = free_port()
    command = [sys.executable, "-c", "from transformers.cli.transformers import main; main()", "serve", model_dir,
               "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--default-seed", "0",
               "--log-level", "info"]
    if shutil.which("timeout"):
        command = ["timeout", "-s", "KILL", str(LIFETIME), *command]  # gone even if pytest itself is killed
    # One thread: with two OpenMP threads on two cores shared with other jobs, 64 new tokens took 247 s instead of 17 s
    # (threads spin while waiting for each other).
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "OMP_NUM_THREADS": "1"}
    with open(log, "w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            if "address already in use" in log.read_text().lower():
                return None, port
            pytest.fail(f"transformers serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                if answer.status == 200:
                    return process, port
        except OSError:
            pass
        if time.monotonic() > deadline:
            stop(process)
            pytest.fail(f"transformers serve not up within {START_TIMEOUT}s:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def server(default_model_dir, tmp_path_factory):
    """(base URL, model name, log path) of a running `transformers serve` pinned to the embedded model."""
    from transformers.utils.import_utils import is_serve_available

    if not is_serve_available():
        pytest.skip("transformers serve needs fastapi and uvicorn (pinned in requirements.txt; run make setup)")
    log = tmp_path_factory.mktemp("serve") / "server.log"
    process = None
    try:
        for _ in range(3):
            process, port = start_server(default_model_dir, log)
            if process:
                break
        else:
            pytest.fail("transformers serve found no free port in 3 tries")
        yield f"http://127.0.0.1:{port}/v1", default_model_dir, log
    finally:
        if process:
            stop(process)


def counts(text):
    """{'reason': count} from 'a=1, b=2'."""
    return {reason: int(count) for reason, count in re.findall(r"(\w+)=(\d+)", text)}


def test_create_against_transformers_serve(server, tmp_path):
    url, model, log = server
    path = tmp_path / "weather_examples.txt"
    path.write_text(WEATHER)
    before = path.read_text()
    done = run_script("training_data.py", "-c", "--file", path, "--append", "--base_url", url, "--model", model,
                      "--n_generations", "2", "--max_retries", "1", "--retry_delay", "0", *BOUNDS,
                      env={"OPENAI_API_KEY": "local"}, timeout=600)
    assert "Traceback" not in done.stderr, done.stderr
    summary = re.search(r"generated (\d+) valid(?: \(appended to .*\))?, rejected: (.*)", done.stderr)
    assert summary, done.stderr
    print(summary.group(0))  # e.g. "generated 0 valid, rejected: malformed_answer=2" (shown with pytest -s)
    valid, rejected = int(summary.group(1)), counts(summary.group(2))
    assert valid + sum(rejected.values()) > 0 and set(rejected) <= REQUEST_REASONS, done.stderr
    # the requests reached the model (no connection_error, server_error or timeout among the reasons above)
    assert len(re.findall(r'"POST /v1/chat/completions HTTP/1.1" 200', log.read_text())) >= 1
    if valid:
        assert done.returncode == 0 and path.read_text().startswith(before.rstrip("\n"))
        skill = td.parse_skill_file(path)
        for example in skill["examples"][-valid:]:
            reason = td.check_skill_example(example["user"], "weather", example["arguments"], {"weather": skill}, True)
            assert reason is None, example
    else:
        assert done.returncode == 1 and "no valid examples for weather() after 2 requests" in done.stderr
        assert path.read_text() == before


def test_finqa_teacher_against_transformers_serve(server, tmp_path):
    url, model, _ = server
    records = json.loads((ROOT / "examples" / "finqa" / "train.json").read_text())[:2]
    (tmp_path / "finqa").mkdir()
    (tmp_path / "finqa" / "train.json").write_text(json.dumps(records))
    out = tmp_path / "out"

    def prepare(base_url):
        return run_script("training_data.py", "--finqa_dir", tmp_path / "finqa", "--output_dir", out,
                          "--source", "teacher", "--teacher_model", model, "--base_url", base_url,
                          "--max_concurrency", "1", "--max_retries", "0", "--sandbox_timeout", "2",
                          "--max_context_tokens", "300", *BOUNDS, env={"OPENAI_API_KEY": "local"}, timeout=600)

    done = prepare(url)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    kept = re.search(r"train: kept (\d+) of (\d+) \(dropped: (.*)\)", done.stderr)
    assert kept, done.stderr
    print(kept.group(0))
    drops = counts(kept.group(3))
    assert int(kept.group(2)) == 2 and int(kept.group(1)) + sum(drops.values()) == 2
    assert set(drops) <= FINQA_REASONS, done.stderr  # no teacher_error: every request was answered
    lines = [json.loads(line) for line in (out / "teacher_cache.jsonl").read_text().splitlines()]
    cache = [entry for entry in lines if "verdict" not in entry]  # the rest: answers cleaning rejected, kept for reruns
    assert sorted(entry["id"] for entry in cache) == sorted(str(record["id"]) for record in records)
    assert all(entry["model"] == model and isinstance(entry["response"], str) for entry in cache)
    rows = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    answers = {entry["id"]: td.finqa_extract_code(entry["response"]) for entry in cache}
    assert len(rows) == int(kept.group(1)) and all(row["completion"] == answers[row["id"]] for row in rows)
    # a rerun asks nothing: every answer comes from the cache, even with the server unreachable
    first = (out / "train.jsonl").read_text()
    again = prepare(f"http://127.0.0.1:{free_port()}/v1")
    assert again.returncode == 0 and "teacher: 2 cached, 0 to ask" in again.stderr, again.stderr
    assert (out / "train.jsonl").read_text() == first
