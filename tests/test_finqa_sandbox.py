"""The FinQA sandbox against hostile programs: eval.py's execution accuracy and training_data.py's cleaning.

Every hostile program would set ans = 1 (the gold answer) if it got out. None may score, reach a listener on
127.0.0.1 or touch a world-writable folder, both with the kernel isolation and without it (the layers any user has on
any kernel), and as an unprivileged user (run through setpriv when the tests run as root)."""

import inspect
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from argparse import Namespace
from collections import Counter
from pathlib import Path

import pytest
from conftest import ROOT, load_script

ev = load_script("eval")
td = load_script("training_data")

# {port} is the test's listener, {folder} a world-writable folder holding the file "victim".
HOSTILE = {
    "ctypes_reimport": "import sys\nsys.modules.pop('ctypes')\nimport ctypes\nctypes.CDLL(None).getpid()\nans = 1\n",
    "posix_truncate": "import sys\nsys.modules.pop('posix')\nimport posix\n"
                      "posix.open('{folder}/victim', posix.O_CREAT | posix.O_TRUNC | posix.O_WRONLY)\nans = 1\n",
    "os_open_create": "import os\nos.open('{folder}/created', os.O_CREAT | os.O_WRONLY)\nans = 1\n",
    "socket_reimport": "import sys\nsys.modules.pop('socket')\nimport socket\n"
                       "socket.create_connection(('127.0.0.1', {port}))\nans = 1\n",
    "socket_from": "from socket import create_connection\ncreate_connection(('127.0.0.1', {port}))\nans = 1\n",
    "dunder_import": "s = __import__('socket')\ns.create_connection(('127.0.0.1', {port}))\nans = 1\n",
    "subclasses_walk": "g = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0]"
                       ".__init__.__globals__\ng['open']('{folder}/created', 65)\nans = 1\n",
    "generator_frame": "f = (x for x in [1]).gi_frame.f_back.f_globals\nf['os'].system('touch {folder}/created')\n"
                       "ans = 1\n",
    "format_field": "ans = len('{{0.__class__.__base__}}'.format(1)) > 0\n",
    "eval_builtin": "ans = eval(\"__import__('os').system('touch {folder}/created') + 1\")\n",
    "open_write": "open('{folder}/victim', 'w').write('')\nans = 1\n",
    "builtins_dict": "__builtins__['__import__']('os').remove('{folder}/victim')\nans = 1\n",
    "getattr_walk": "ans = getattr(getattr(1, '__class__'), '__name__') == 'int'\n",
    "class_getattr": "class A:\n    def __getattr__(self, name):\n        return 1\nans = A().x\n",
    "global_stmt": "def f():\n    global ans\n    ans = 1\nf()\n",
    "fork_bomb": "import os\nwhile True:\n    os.fork()\n",
    "subprocess": "import subprocess\nsubprocess.run(['touch', '{folder}/created'])\nans = 1\n",
    "memory_bomb": "block = [0] * (10 ** 10)\nans = 1\n",
    "string_bomb": "block = 'x' * (10 ** 11)\nans = 1\n",
    "infinite_loop": "while True:\n    pass\nans = 1\n",
    "huge_power": "ans = 10 ** 10 ** 10 // 10 ** 10 ** 10\n",
    "recursion": "def f(n):\n    return f(n + 1)\nans = f(0)\n",
    "too_long": "x = 1\n" * 5000 + "ans = 1\n",
}
LEGIT = {
    "translated": "revenue_2019 = 1250\nrevenue_2018 = 1000\ndifference = revenue_2019 - revenue_2018\n"
                  "ans = difference / revenue_2018\n",
    "teacher_style": "import math\nfrom math import sqrt\nvalues = [1.0, 2.0, 3.0]\ntotal = sum(values)\n"
                     "try:\n    ratio = total / len(values)\nexcept ZeroDivisionError:\n    ratio = 0\n"
                     "print(f'{{ratio:.2f}}')\nans = round(math.floor(ratio) * sqrt(1), 2)\n",
}


@pytest.fixture
def listener():
    """A TCP listener on 127.0.0.1 that records every connection it accepts."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    accepted, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            try:
                accepted.append(server.accept()[1])
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join()
    server.close()


@pytest.fixture
def open_folder():
    """A world-writable folder with a world-writable file in it, where nobody can reach it (tmp_path is private)."""
    folder = Path(tempfile.mkdtemp(prefix="finqa_world_"))
    folder.chmod(0o1777)
    (folder / "victim").write_text("keep me")
    (folder / "victim").chmod(0o666)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def assert_untouched(accepted, folder):
    assert accepted == [], "a sandboxed program connected to the listener"
    assert sorted(path.name for path in folder.iterdir()) == ["victim"]
    assert (folder / "victim").read_text() == "keep me"


def programs(corpus, port, folder):
    return {name: code.format(port=port, folder=folder) for name, code in corpus.items()}


@pytest.fixture(params=[True, False], ids=["kernel_isolation", "no_kernel_isolation"])
def isolation(request, monkeypatch):
    # Off: only the allow-list and the process limits, as for an ordinary user on a kernel without user namespaces
    # or Landlock (and without the root-only network namespace and drop to nobody).
    for module in (ev, td):
        monkeypatch.setattr(module, "FINQA_SANDBOX_KERNEL_ISOLATION", request.param)
    return request.param


def test_hostile_programs_never_score_in_eval(isolation, listener, open_folder, monkeypatch):
    port, accepted = listener
    monkeypatch.setattr(ev, "FINQA_EXECUTION_TIMEOUT", 1.0)
    corpus = programs({**HOSTILE, **LEGIT}, port, open_folder)
    rows = [{"prediction": f"```python\n{code}```", "gold_answer": 1.0} for code in corpus.values()]
    rows[-2]["gold_answer"], rows[-1]["gold_answer"] = 0.25, 2.0
    ev.metric_execution_accuracy(rows)
    verdicts = dict(zip(corpus, (row["verdict"] for row in rows)))
    assert verdicts.pop("translated") == verdicts.pop("teacher_style") == "correct"
    assert {name: verdict for name, verdict in verdicts.items() if verdict == "correct"} == {}
    assert verdicts["infinite_loop"] == "timeout" and verdicts["huge_power"] in ("timeout", "memory")
    assert verdicts["memory_bomb"] == verdicts["string_bomb"] == "memory"
    assert verdicts["recursion"] == "runtime_error" and verdicts["too_long"] == "too_long"
    assert all(verdict == "blocked" for name, verdict in verdicts.items() if name not in (
        "infinite_loop", "huge_power", "memory_bomb", "string_bomb", "recursion", "too_long"))
    assert_untouched(accepted, open_folder)


def test_hostile_predictions_file_never_scores(isolation, listener, open_folder, monkeypatch, tmp_path):
    # The same corpus as saved predictions of another system: python eval.py --predictions FILE --metrics ...
    port, accepted = listener
    monkeypatch.setattr(ev, "FINQA_EXECUTION_TIMEOUT", 1.0)
    corpus = programs({**HOSTILE, **LEGIT}, port, open_folder)
    path = tmp_path / "hostile.jsonl"
    references = {"translated": "ans = 0.25\n", "teacher_style": "ans = 2.0\n"}  # the hostile ones: ans = 1
    path.write_text("".join(
        json.dumps({"id": name, "reference": references.get(name, "ans = 1\n"), "prediction": code}) + "\n"
        for name, code in corpus.items()
    ))
    ev.main(ev.EvalArguments(predictions=str(path), metrics="execution_accuracy", output_dir=str(tmp_path / "out")))
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    rows = [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert [row["id"] for row in rows if row["verdict"] == "correct"] == ["translated", "teacher_style"]
    assert metrics["execution_accuracy"] == pytest.approx(2 / len(corpus))
    assert_untouched(accepted, open_folder)


def test_hostile_programs_never_become_training_data(isolation, listener, open_folder):
    port, accepted = listener
    corpus = programs(HOSTILE, port, open_folder)
    examples = [{"id": name, "where": name, "gold_answer": 1.0} for name in corpus]
    args = Namespace(sandbox_timeout=1.0, sandbox_memory_mb=256, sandbox_workers=2)
    drops = Counter()
    assert td.finqa_clean(examples, corpus, args, drops) == []
    assert sum(drops.values()) == len(corpus) and drops["wrong_answer"] == 0
    assert_untouched(accepted, open_folder)


@pytest.mark.parametrize(
    "code, reason",
    [
        ("ans = (1 +\n", "syntax_error"),
        ("total = 1\n", "no_ans"),
        ("ans = 1 / 0\n", "runtime_error"),
        ("ans = revenue * 2\n", "runtime_error"),  # a name the program never set
        ("import numpy\nans = 1\n", "blocked"),
        ("import sys\nsys.exit(0)\n", "blocked"),
        ("ans = 'x' * 10 ** 10\n", "memory"),
    ],
)
def test_sandbox_verdicts(code, reason):
    assert td.finqa_run_code(code, timeout=2.0, memory_mb=256)[:2] == (None, reason)


@pytest.mark.parametrize("name, code", list(LEGIT.items()))
def test_checker_accepts_arithmetic(name, code):
    assert td.finqa_check_code(code.format()) is None


@pytest.mark.parametrize(
    "code, allowed",
    [
        ("ans = 0.25\nprint('{:.2%}'.format(ans))\n", True),
        ("ans = '{x:>{width}} {0}'.format(1, x=2, width=5)\n", True),
        ("ans = '{0.real}'.format(1)\n", False),  # field attribute access: the route to __class__ and __globals__
        ("ans = '{0[0]}'.format([1])\n", False),
        ("ans = '{:{0.real}}'.format(1)\n", False),  # nested in the format spec
        ("template = '{}'\nans = template.format(1)\n", False),  # only literal templates can be checked
        ("ans = '{x}'.format_map({'x': 1})\n", False),
    ],
)
def test_checker_allows_plain_format_templates_only(code, allowed):
    assert (td.finqa_check_code(code) is None) == allowed


def test_checker_accepts_every_translated_example_program():
    checked = 0
    for split in ("train", "dev", "test"):
        for index, record in enumerate(json.loads((ROOT / "examples" / "finqa" / f"{split}.json").read_text())):
            for example in td.finqa_examples_from_finqa(record, f"{split} {index}"):
                code = td.finqa_translate(example["program"], example["document"])
                assert td.finqa_check_code(code) is None, code
                checked += 1
    assert checked >= 100


# Gets os through a __subclasses__ walk, frees a descriptor (so the open-files limit does not stop it), then tries
# to create a file, connect to the listener and fork. Only the kernel layers are left to stop it.
BYPASS = """
g = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0].__init__.__globals__
out = []
g['close'](0)
for attempt in (lambda: g['open']('{folder}/created', 0o101, 0o666),
                lambda: g['__builtins__']['__import__']('socket').create_connection(('127.0.0.1', {port}), 1),
                lambda: g['fork']()):
    try:
        out.append(str(attempt()))
    except Exception as error:
        out.append(error.__class__.__name__)
ans = ' '.join(out)
"""


def run_bypass(module, port, folder):
    """Run BYPASS with the allow-list switched off; return (answer, status, kernel isolation that held)."""
    module.FINQA_SANDBOX_SEEN.clear()
    check = module.finqa_check_code
    module.finqa_check_code = lambda code: None
    try:
        answer, status, _ = module.finqa_run_code(BYPASS.format(port=port, folder=folder), timeout=2.0, memory_mb=256)
    finally:
        module.finqa_check_code = check
    return answer, status, ", ".join(module.FINQA_SANDBOX_SEEN)


def test_kernel_layers_hold_without_the_allow_list(listener, open_folder):
    port, accepted = listener
    answer, status, held = run_bypass(td, port, open_folder)
    if "landlock" not in held:
        pytest.skip(f"this kernel gives no Landlock (held: {held or 'nothing'})")
    assert status == "ok", answer  # the walk itself works: the allow-list is what stops it in real runs
    assert_untouched(accepted, open_folder)


UNPRIVILEGED = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("training_data", sys.argv[1])
td = importlib.util.module_from_spec(spec)
spec.loader.exec_module(td)
BYPASS = sys.argv[2]
exec(sys.argv[3])
print(json.dumps(run_bypass(td, int(sys.argv[4]), sys.argv[5])))
"""


def test_unprivileged_user_gets_kernel_isolation(listener, open_folder):
    # The real non-root path: the same sandbox started by nobody, where root's network namespace and drop to nobody
    # do not apply.
    python = shutil.which("python3", path="/usr/bin:/bin")
    if os.geteuid() != 0 or not shutil.which("setpriv") or not python:
        pytest.skip("needs root, setpriv and a system python3 to start the sandbox as nobody")
    port, accepted = listener
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", python, "-I", "-c", UNPRIVILEGED,
         str(ROOT / "training_data.py"), BYPASS, inspect.getsource(run_bypass), str(port), str(open_folder)],
        capture_output=True, text=True, timeout=60, cwd="/",
    )
    if result.returncode != 0:
        pytest.skip(f"nobody cannot run the scripts here: {result.stderr.strip().splitlines()[-1:]}")
    answer, status, held = json.loads(result.stdout)
    if not held:
        pytest.skip("this kernel gives an ordinary user neither user namespaces nor Landlock")
    assert status == "ok", answer
    assert "user+network namespace" in held or "landlock" in held
    assert_untouched(accepted, open_folder)


# Issue 31: the evaluation around the sandbox. Each of these once crashed the run, wrote non-JSON or judged wrongly.
FORMAT_BOMB = "ans = '" + "{:" * 500 + "}" * 500 + "'.format(1)\n"  # the checker recursed once per level
FOOLING = {
    "format_bomb": (FORMAT_BOMB, "blocked"),
    "format_three_levels": ("ans = '{:{:{}}}'.format(1, 2, 3)\n", "blocked"),  # Python itself refuses three
    "deep_lists": ("ans = " + "[" * 150 + "1" + "]" * 150 + "\n", "too_deep"),
    "deep_unary": ("ans = " + "-" * 5000 + "1\n", "too_deep"),
    "poisoned_isfinite": ("import math\nmath.isfinite = lambda x: True\nans = float('inf')\n", "non_finite"),
    "nan": ("ans = float('nan')\n", "non_finite"),
    "deleted_isfinite": ("import math\ndel math.isfinite\nans = 1.0\n", "ok"),
    "missing_name": ("from math import nothing\nans = 1\n", "runtime_error"),
    "prints_gigabytes": ("for i in range(1500):\n    print('x' * (1 << 20))\nans = 1\n", "ok"),
}


@pytest.mark.parametrize("name", FOOLING)
def test_fooling_programs_get_their_own_verdict(name):
    code, verdict = FOOLING[name]
    answer, status, message = td.finqa_run_code(code, timeout=2.0, memory_mb=256)
    assert status == verdict, message
    assert (answer == 1.0) if verdict == "ok" else answer is None
    assert "/" not in message  # no interpreter path (from math import nothing once named math's .so file)
    assert len(message) <= 2000  # what a program prints is kept to 2,000 characters


def test_a_failing_checker_is_the_programs_verdict(monkeypatch):
    def overflow(code):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(td, "finqa_check_code", overflow)
    assert td.finqa_run_code("ans = 1\n")[:2] == (None, "checker_error")


def test_answers_and_messages_are_safe_to_log_and_write():
    answer, status, message = td.finqa_run_code("print('\\x1b[2J\\ndone\\udcff')\nans = 'a\\ud800\\r\\nINFO forged'\n")
    assert status == "ok" and answer == "a\\ud800\\r\\nINFO forged"
    assert message == "\\x1b[2J\ndone\\udcff\n"  # printed lines keep their line ends, nothing else unprintable
    _, status, message = td.finqa_run_code("raise ValueError('\\x1b[2J\\nINFO training_data: train: kept 9 of 9')\n")
    assert status == "runtime_error" and "\n" not in message and "\x1b" not in message


def run_without_allow_list(module, code, timeout=2.0):
    module.FINQA_SANDBOX_SEEN.clear()
    check = module.finqa_check_code
    module.finqa_check_code = lambda code: None
    try:
        return module.finqa_run_code(code, timeout=timeout, memory_mb=256), ", ".join(module.FINQA_SANDBOX_SEEN)
    finally:
        module.finqa_check_code = check


def test_a_program_that_floods_its_result_pipe_is_cut_off(isolation):
    import resource
    import time

    # 1.5 GB to the result descriptor (3), as only a program past the allow-list could: the parent reads 32 KB of it
    flood = ("g = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0]"
             ".__init__.__globals__\nblock = b'x' * (1 << 20)\nfor _ in range(1500):\n    g['write'](3, block)\n")
    before, start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.monotonic()
    (answer, status, message), _ = run_without_allow_list(td, flood)
    assert (answer, status) == (None, "crashed") and "bytes of output" in message
    assert time.monotonic() - start < 2.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KB: no gigabyte in the parent


# Gets os as BYPASS does, then reads a file every user may read and connects to a unix socket every user may
# connect to (an ssh-agent or docker.sock of the same user): only Landlock and seccomp stand in the way. Without
# them the answer is "s3cret connected".
READ_AND_CONNECT = """
g = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0].__init__.__globals__
out = []
g['close'](0)

def read():
    fd = g['open']('{folder}/secret', 0)
    return g['read'](fd, 100).decode()

def connect():  # through the ctypes the sandbox itself loaded: nobody cannot import from root's own Python
    ctypes = g['sys'].modules['ctypes']
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.socket(1, 1, 0)  # AF_UNIX, SOCK_STREAM
    address = b'\\x01\\x00' + b'{folder}/agent.sock' + b'\\x00'
    if fd < 0 or libc.connect(fd, address, len(address)) != 0:
        raise g['error'](ctypes.get_errno(), 'no connection')  # errno 1 makes it a PermissionError
    return 'connected'

for attempt in (read, connect):
    try:
        out.append(str(attempt()))
    except Exception as error:
        out.append(error.__class__.__name__)
ans = ' '.join(out)
"""


@pytest.fixture
def private_things(open_folder):
    """A secret file and a listening unix socket in open_folder, both open to every user (so only the sandbox's
    own layers keep a program from them); yields the connections the socket accepted."""
    (open_folder / "secret").write_text("s3cret")
    (open_folder / "secret").chmod(0o644)
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(open_folder / "agent.sock"))
    (open_folder / "agent.sock").chmod(0o777)
    server.listen(4)
    server.settimeout(0.2)
    accepted, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield accepted
    stop.set()
    thread.join()
    server.close()


def test_kernel_layers_keep_files_and_unix_sockets_out_of_reach(open_folder, private_things):
    (answer, status, _), held = run_without_allow_list(td, READ_AND_CONNECT.format(folder=open_folder))
    if "landlock" not in held or "seccomp" not in held:
        pytest.skip(f"this kernel gives no Landlock or no seccomp (held: {held or 'nothing'})")
    assert status == "ok", answer
    assert answer == "PermissionError PermissionError" and private_things == []


def test_kernel_layers_keep_files_and_unix_sockets_from_an_unprivileged_user(open_folder, private_things):
    python = shutil.which("python3", path="/usr/bin:/bin")
    if os.geteuid() != 0 or not shutil.which("setpriv") or not python:
        pytest.skip("needs root, setpriv and a system python3 to start the sandbox as nobody")
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", python, "-I", "-c", UNPRIVILEGED,
         str(ROOT / "training_data.py"), READ_AND_CONNECT, inspect.getsource(run_bypass), "0", str(open_folder)],
        capture_output=True, text=True, timeout=60, cwd="/",
    )
    if result.returncode != 0:
        pytest.skip(f"nobody cannot run the scripts here: {result.stderr.strip().splitlines()[-1:]}")
    answer, status, held = json.loads(result.stdout)
    if "landlock" not in held or "seccomp" not in held:
        pytest.skip(f"this kernel gives nobody no Landlock or no seccomp (held: {held or 'nothing'})")
    assert status == "ok", answer
    assert answer == "PermissionError PermissionError" and private_things == []


# What only the seccomp filter refuses: a signal (to itself here, which Landlock's scoping allows; on a kernel before
# Landlock ABI 6 the same call reaches every process of the user) and an internet socket (also refused by the empty
# network namespace, but not for an ordinary user without user namespaces).
SIGNAL_AND_SOCKET = """
g = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0].__init__.__globals__
out = []
libc = g['sys'].modules['ctypes'].CDLL(None)
try:
    out.append(str(g['kill'](g['getpid'](), 0)))
except Exception as error:
    out.append(error.__class__.__name__)
g['close'](0)  # a free descriptor, past the open-files limit
out.append(str(libc.socket(2, 1, 0)))  # AF_INET, SOCK_STREAM: -1 when refused
ans = ' '.join(out)
"""


def test_seccomp_refuses_signals_and_sockets():
    (answer, status, _), held = run_without_allow_list(td, SIGNAL_AND_SOCKET)
    if "seccomp" not in held:
        pytest.skip(f"this kernel or machine gives no seccomp filter (held: {held or 'nothing'})")
    assert (answer, status) == ("PermissionError -1", "ok")
