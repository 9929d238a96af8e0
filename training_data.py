"""Prepare training data: FinQA/ConvFinQA program-of-thought pairs, skill-calling examples, text-to-SQL pairs and
tool-calling records (xLAM, Seal-Tools, ShareGPT/Glaive, OpenAI -> OpenAI tools/tool_calls).

    python training_data.py --finqa_dir examples/finqa --output_dir data/finqa
    python training_data.py -c --file examples/skills/weather_examples.txt --n_generations 5
    python training_data.py -t --files examples/skills/*_examples.txt > dataset/training_data.json
    python training_data.py --tools_data path/to/Seal-Tools_Dataset --output_dir data/sealtools
"""

# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "datasets==5.2.0",
#     "openai==3.51.0",
#     "pandas==3.1.1",
# ]
# ///

import argparse
import ast
import json
import logging
import math
import os
import random
import re
import selectors
import signal
import string
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

logger = logging.getLogger("training_data")


# copy of sft.py:fail — keep identical (tests/test_copies.py)
def fail(message):
    """Stop with a one-line error (no traceback) and exit status 1."""
    raise SystemExit(f"error: {message}")


def write_text_atomic(path, text):
    """Write a whole file or nothing: a temporary file in the same folder, renamed over the target when complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # a lone surrogate (text read from another tool's file) has no UTF-8: written as its escape \udcff
        with os.fdopen(handle, "w", encoding="utf-8", errors="backslashreplace") as stream:
            stream.write(text)
        # mkstemp makes the file private (0600); give it the mode the old file had, or the usual 0644
        os.chmod(temporary, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_jsonl(path, rows):
    write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


# Split files a data step owns by name in its --output_dir: eval.py reads test and test_* (e.g.
# test_unseen_functions), and sft.py loads every file of the folder as a split, its validation by any of the names
# sft.py:SPLIT_ALIASES gives it.
SPLIT_FILE_STEM = re.compile(r"train|validation|valid|val|dev|eval|test|test_\w+")


def remove_stale_splits(output_dir, written, suffix, inputs):
    """Remove the split files (SPLIT_FILE_STEM + suffix) an earlier run left in output_dir and this run did not write,
    so that eval never reads an old test set beside new data; in a folder that holds an input, only a warning."""
    output_dir = Path(output_dir).resolve()
    written = {Path(path).resolve() for path in written}
    stale = [path for path in sorted(output_dir.glob(f"*{suffix}"))
             if SPLIT_FILE_STEM.fullmatch(path.stem) and path.resolve() not in written]
    if not stale:
        return
    names = ", ".join(path.name for path in stale)
    sources = [Path(path).resolve() for path in inputs if path]
    if any(output_dir == (source if source.is_dir() else source.parent) for source in sources):
        logger.warning("%s: %s not written by this run but left there: the folder holds this run's input (give "
                       "another --output_dir)", output_dir, names)
        return
    for path in stale:
        path.unlink()
    logger.info("%s: removed %s, split files of an earlier run that this run did not write", output_dir, names)


def read_json_rows(path, json_list=None):
    """[(number, where, record)] of a JSON list (where 'PATH record N', N from 1; {"data": [...]} is its list) or a
    JSON Lines file (where 'PATH:LINE'); json_list None: a list when the text starts with '['. Bad JSON is a one-line
    error naming its line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        fail(f"{path}: not UTF-8 text (byte {error.start}); save it as UTF-8")
    if json_list is None:  # a JSON Lines record is an object, so "[" can only open a JSON list
        json_list = text.lstrip().startswith("[")
    if json_list:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            fail(f"{path}:{error.lineno}: invalid JSON ({error.msg}); fix the file (a list of records)")
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            fail(f"{path}: expected a JSON list of records, found {type(data).__name__}")
        return [(number, f"{path} record {number}", record) for number, record in enumerate(data, 1)]
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append((number, f"{path}:{number}", json.loads(line)))
            except json.JSONDecodeError as error:
                fail(f"{path}:{number}: invalid JSON line ({error.msg}); fix or remove that line")
    return rows


def load_hub_dataset(name, flag):
    """A hub dataset's splits (DatasetDict), or a one-line error naming `flag`; offline runs need it in the cache."""
    try:
        from datasets import load_dataset

        return load_dataset(name)
    except Exception as error:  # network, cache and format errors all end here
        fail(f"{flag} {name}: cannot load it from the hub ({type(error).__name__}: "
             f"{(str(error).splitlines() or [''])[0]}); check the name, the network or HF_HUB_OFFLINE with a filled "
             "cache")


# ---------------------------------------------------------------------------------------------------------------------
# FinQA / ConvFinQA (issue 3)
# ---------------------------------------------------------------------------------------------------------------------

FINQA_SPLITS = ("train", "dev", "test")
FINQA_INSTRUCTION = (
    "Answer the question about the financial report below. Write Python code that computes the answer and stores it "
    "in a variable named `ans`."
)
FINQA_OPS = {
    "add": "{0} + {1}",
    "subtract": "{0} - {1}",
    "multiply": "{0} * {1}",
    "divide": "{0} / {1}",
    "exp": "{0} ** {1}",
    "greater": "{0} > {1}",
}
FINQA_TABLE_OPS = {
    "table_sum": "sum({0})",
    "table_average": "sum({0}) / len({0})",
    "table_max": "max({0})",
    "table_min": "min({0})",
}
FINQA_STEP_NAMES = {
    "add": "total",
    "subtract": "difference",
    "multiply": "product",
    "divide": "ratio",
    "exp": "power",
    "greater": "is_greater",
}
# Words that carry no meaning in a variable name taken from the sentence around a number.
FINQA_NAME_STOPWORDS = set(
    "a an the of in on at to by for from and or was were is are be been as with its their our this that these those "
    "approximately about around nearly over under total totaled totaling increased decreased increase decrease "
    "compared million millions billion billions thousand thousands percent respectively which we had has have "
    "during year years ended fiscal end than versus vs".split()
)
FINQA_SLUG_FILLERS = {"a", "an", "the", "of", "in", "and", "millions", "thousands", "billions", "dollars", "usd"}
FINQA_RESERVED_NAMES = {"ans", "sum", "len", "max", "min", "abs", "round", "list", "float", "int", "value"}
FINQA_DROP_WARNINGS = 20
# The FinQA sandbox. Model- and teacher-written programs are hostile, and FinQA programs are arithmetic, so only
# arithmetic runs, behind three layers:
# 1. The syntax tree must pass an allow-list (finqa_check_code): listed node types only (no class, with, global,
#    nonlocal, async, yield, match), no import but math, no name or attribute starting with "_", attributes only from
#    FINQA_SANDBOX_ATTRIBUTES (math's functions, list/dict/str methods), none of eval/exec/open/getattr/globals/...
#    This layer holds for every user, and it is enough on its own: every escape we know of (re-importing a module
#    popped from sys.modules, ctypes, posix.open with O_TRUNC, sockets, fork, __subclasses__/__globals__/gi_frame
#    walks, str.format field access) needs an import, a "_" name, an attribute off the list or a denied builtin. The
#    program then runs with a builtins dict of FINQA_SANDBOX_BUILTINS alone and an __import__ that hands out its own
#    copy of math alone, so a name the check let through still reaches nothing else, and what the program does to
#    math (math.isfinite = ...) cannot change how its answer is read. We wrote this check rather than use asteval:
#    asteval interprets nearly all of Python and refuses a deny-list of names and attributes, which has been escaped
#    (lmfit/asteval#86: print.__reduce__ led to getattr); an allow-list this short can be read whole, and CPython then
#    runs the program at full speed. The check itself is bounded (size, syntax-tree depth, two levels of format
#    specs, as Python allows) and a failure inside it is the program's verdict (checker_error), never the run's.
# 2. A separate process (python -I -S, empty environment, its whole session killed afterwards) with limits on address
#    space, CPU time, file size (0), new processes (0), new open files (0) and core dumps: what the allowed language
#    can still do (loop, allocate, recurse, print) ends as a timeout, memory or runtime_error verdict. The parent
#    reads at most FINQA_SANDBOX_MAX_OUTPUT bytes of its answer, as strict JSON, and escapes control characters and
#    lone surrogates in every text it returns (they would forge log lines or break a UTF-8 file).
# 3. Kernel isolation where the kernel allows it, a backstop should layer 1 ever miss something: an empty network
#    namespace (root makes one, then drops to nobody; any other user makes a user+network namespace), Landlock
#    (Linux >= 5.13, any user: nothing created, written, truncated or removed, nothing read but the interpreter's own
#    files and /dev/null, /dev/zero, /dev/urandom; from ABI 4 no TCP bind/connect, from ABI 6 no abstract unix
#    socket or signal out) and a seccomp filter (Linux >= 3.5, x86_64 and aarch64: no socket at all, so no connect
#    to a unix socket file such as ssh-agent's or docker.sock, no signal to another process, no ptrace, no io_uring).
#    finqa_run_code logs once which of these held and which this kernel lacks.
FINQA_SANDBOX_MAX_CHARS = 20_000  # model outputs are cut at a few hundred tokens; teacher programs are under 2,000
FINQA_SANDBOX_MAX_DEPTH = 100  # syntax-tree depth; translated and teacher programs stay under 15
# The child's whole answer: 2,000 characters of printed text, 200 of answer and 300 of message stay under it even
# when each character is a 12-byte JSON escape.
FINQA_SANDBOX_MAX_OUTPUT = 32_768
FINQA_SANDBOX_MAX_MESSAGE = 300  # characters of a verdict's message kept (and logged)
FINQA_SANDBOX_VERDICTS = ("ok", "syntax_error", "blocked", "timeout", "memory", "runtime_error", "no_ans", "non_finite")
FINQA_SANDBOX_MODULES = ("math",)
FINQA_SANDBOX_BUILTINS = (
    "abs all any bool dict divmod enumerate filter float format int isinstance len list map max min pow print range "
    "reversed round set sorted str sum tuple zip ArithmeticError Exception IndexError KeyError OverflowError "
    "TypeError ValueError ZeroDivisionError"
).split()
FINQA_SANDBOX_ATTRIBUTES = {name for name in dir(math) if not name.startswith("_")} | set(
    "append extend insert pop index count get keys values items sort reverse copy update is_integer real imag "
    "conjugate strip lstrip rstrip replace split lower upper join startswith endswith".split()
)
# Names that only serve an escape get a clear "blocked"; any other unknown name is a NameError at run time, because
# the builtins dict is the real allow-list (so a variable called `type` or `id` stays legal).
FINQA_SANDBOX_DENIED_NAMES = {"eval", "exec", "compile", "open", "getattr", "setattr", "delattr", "globals", "locals",
                              "vars", "breakpoint"}
FINQA_SANDBOX_NODES = tuple(getattr(ast, name) for name in (
    "Module Expr Assign AugAssign AnnAssign Delete Pass Break Continue If For While Try ExceptHandler Raise Assert "
    "FunctionDef Lambda arguments arg Return Import ImportFrom alias Name Load Store Del Constant BinOp UnaryOp BoolOp "
    "Compare IfExp NamedExpr Call keyword Starred Attribute Subscript Slice List Tuple Dict Set ListComp SetComp "
    "DictComp GeneratorExp comprehension JoinedStr FormattedValue operator unaryop cmpop boolop"
).split())
FINQA_SANDBOX_KERNEL_ISOLATION = True  # tests turn it off: layers 1 and 2 must hold alone (as on kernels without it)
FINQA_SANDBOX_SEEN = set()  # kernel isolation reports already logged


def finqa_plain_format(template, depth=0):
    """True for a str.format template whose fields only name arguments ("{}", "{0:.2f}", "{x:>{width}}"). A field in
    a field's spec may hold no further field (Python's own limit), so the check is at most three calls deep."""
    try:
        fields = list(string.Formatter().parse(template)) if isinstance(template, str) else None
    except ValueError:
        return False
    return fields is not None and all(
        name is None or (depth < 2 and re.fullmatch(r"\w*", name) and finqa_plain_format(spec or "", depth + 1))
        for _, name, spec, _ in fields
    )


def finqa_check_code(code):
    """None when the program passes the allow-list above, else (status, why): too_long, syntax_error, too_deep or
    blocked."""
    if len(code) > FINQA_SANDBOX_MAX_CHARS:
        return "too_long", f"{len(code)} characters, more than the {FINQA_SANDBOX_MAX_CHARS} a FinQA program needs"
    try:
        tree = ast.parse(code)
    except (RecursionError, MemoryError) as error:  # the parser's own nesting limits
        return "too_deep", f"{type(error).__name__}: the program nests deeper than the parser allows"
    except (SyntaxError, ValueError) as error:
        return "syntax_error", f"{type(error).__name__}: {error}"[:300]
    stack = [(tree, 0)]  # depth-first by hand: ast.walk gives no depth, and a recursive walk could overflow
    while stack:
        node, depth = stack.pop()
        where = f"line {getattr(node, 'lineno', 1)}"
        if depth > FINQA_SANDBOX_MAX_DEPTH:
            return "too_deep", f"{where}: nested more than {FINQA_SANDBOX_MAX_DEPTH} levels deep"
        if not isinstance(node, FINQA_SANDBOX_NODES):
            return "blocked", f"{where}: {type(node).__name__} is not allowed in a FinQA program"
        for field in ("id", "name", "arg", "attr", "asname", "module"):
            value = getattr(node, field, None)
            if isinstance(value, str) and (value.startswith("_") or value in FINQA_SANDBOX_DENIED_NAMES):
                return "blocked", f"{where}: {value!r} is not allowed in a FinQA program"
        if isinstance(node, ast.Attribute) and node.attr not in FINQA_SANDBOX_ATTRIBUTES and not (
            # "{:.2f}".format(x) on a literal that only names its arguments; "{0.__class__}" would reach attributes
            node.attr == "format" and isinstance(node.value, ast.Constant) and finqa_plain_format(node.value.value)
        ):
            return "blocked", f"{where}: attribute {node.attr!r} is not allowed in a FinQA program"
        if isinstance(node, ast.Import) and any(alias.name not in FINQA_SANDBOX_MODULES for alias in node.names):
            return "blocked", f"{where}: only {', '.join(FINQA_SANDBOX_MODULES)} may be imported"
        if isinstance(node, ast.ImportFrom) and (node.module not in FINQA_SANDBOX_MODULES or node.level):
            return "blocked", f"{where}: only {', '.join(FINQA_SANDBOX_MODULES)} may be imported"
        stack.extend((child, depth + 1) for child in reversed(list(ast.iter_child_nodes(node))))
    return None


# The child applies its own isolation and limits before it runs the program, instead of a preexec_fn in the parent:
# preexec_fn is unsafe when the parent runs threads (the teacher pool, torch in eval.py). The seccomp filter is ten
# lines of classic BPF through ctypes: the libseccomp bindings (pyseccomp) would need site-packages, which python -I -S
# does not load, and a libseccomp that not every machine has.
FINQA_SANDBOX_BOOTSTRAP = r'''
import builtins, io, json, math, numbers, os, resource, struct, sys
request = json.loads(sys.stdin.read())
result_fd = os.dup(1)
null_fd = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null_fd, fd)
os.close(null_fd)
real_write, real_exit, dumps, isfinite, Real = os.write, os._exit, json.dumps, math.isfinite, numbers.Real
isolation, missing = [], []

def send(payload):
    data = dumps(dict(payload, isolation=", ".join(isolation), missing=", ".join(missing))).encode()
    while data:
        data = data[real_write(result_fd, data):]
    real_exit(0)

def landlock(libc, ctypes):
    abi = libc.syscall(444, None, 0, 1)  # landlock_create_ruleset(NULL, 0, VERSION): the ABI, or -1 without Landlock
    if abi < 1:
        return missing.append("landlock (Linux < 5.13 or switched off)")
    fs = (1 << 13) - 1  # every access of ABI 1: execute, write, read, remove, make
    fs |= (1 << 13 if abi >= 2 else 0) | (1 << 14 if abi >= 3 else 0) | (1 << 15 if abi >= 5 else 0)
    net, scoped = (3 if abi >= 4 else 0), (3 if abi >= 6 else 0)  # TCP bind+connect; abstract unix sockets+signals
    attr = (ctypes.c_uint64 * 3)(fs, net, scoped)
    ruleset = libc.syscall(444, ctypes.byref(attr), 24 if abi >= 6 else 16 if abi >= 4 else 8, 0)
    if ruleset < 0:
        return missing.append("landlock (no ruleset)")
    # read only: the standard library a lazy import needs, and the harmless devices
    for path in [p for p in sys.path if os.path.isdir(p)] + ["/dev/null", "/dev/zero", "/dev/urandom"]:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
        rule = struct.pack("=QI", 4 | 8 if os.path.isdir(path) else 4, fd)  # path_beneath: READ_FILE (+ READ_DIR)
        libc.syscall(445, ruleset, 1, rule, 0)  # landlock_add_rule(ruleset, PATH_BENEATH, &rule, 0)
        os.close(fd)
    if libc.syscall(446, ruleset, 0) == 0:  # landlock_restrict_self
        isolation.append(f"landlock ABI {abi}")
        missing.extend(["landlock TCP rules (ABI < 4)"] * (abi < 4) + ["landlock signal scoping (ABI < 6)"] * (abi < 6))

def seccomp(libc, ctypes):
    # arch -> (AUDIT_ARCH, socket socketpair connect kill tkill tgkill rt_sigqueueinfo rt_tgsigqueueinfo ptrace
    # process_vm_readv process_vm_writev pidfd_send_signal io_uring_setup)
    arch, calls = {
        "x86_64": (0xC000003E, (41, 53, 42, 62, 200, 234, 129, 297, 101, 310, 311, 424, 425)),
        "aarch64": (0xC00000B7, (198, 199, 203, 129, 130, 131, 138, 240, 117, 270, 271, 424, 425)),
    }.get(os.uname().machine, (None, ()))
    if arch is None:
        return missing.append(f"seccomp (no syscall table for {os.uname().machine})")
    deny, allow, n = 0x00050001, 0x7FFF0000, len(calls)  # SECCOMP_RET_ERRNO | EPERM
    # load arch, foreign arch: deny all; load the call number, x32 calls and the listed ones jump to the last deny
    program = [(0x20, 0, 0, 4), (0x15, 1, 0, arch), (0x06, 0, 0, deny), (0x20, 0, 0, 0), (0x35, n + 1, 0, 1 << 30)]
    program += [(0x15, n - i, 0, number) for i, number in enumerate(calls)] + [(0x06, 0, 0, allow), (0x06, 0, 0, deny)]
    code = ctypes.create_string_buffer(b"".join(struct.pack("=HBBI", *op) for op in program))
    fprog = struct.pack("@HP", len(program), ctypes.addressof(code))
    if libc.prctl(22, 2, fprog, 0, 0) == 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        isolation.append("seccomp")
    else:
        missing.append("seccomp (refused)")

def isolate():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if os.geteuid() == 0:
        if libc.unshare(0x40000000) == 0:  # CLONE_NEWNET
            isolation.append("network namespace")
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            isolation.append("user nobody")
        except OSError:
            pass
    elif libc.unshare(0x10000000 | 0x40000000) == 0:  # CLONE_NEWUSER | CLONE_NEWNET
        isolation.append("user+network namespace")
    else:
        missing.append("user namespace")
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS, which Landlock and seccomp require
        return missing.append("no_new_privs")
    landlock(libc, ctypes)
    seccomp(libc, ctypes)

if request["kernel_isolation"] and sys.platform.startswith("linux"):
    try:
        isolate()
    except Exception as error:  # a Python without ctypes, a libc without unshare: the other layers still hold
        missing.append(type(error).__name__)
limits = [("RLIMIT_AS", int(request["memory_mb"]) << 20), ("RLIMIT_CPU", int(request["cpu_s"])),
          ("RLIMIT_FSIZE", 0), ("RLIMIT_NPROC", 0), ("RLIMIT_CORE", 0), ("RLIMIT_NOFILE", result_fd + 1)]
for name, value in limits:
    resource.setrlimit(getattr(resource, name), (value, value + (name == "RLIMIT_CPU")))

class Blocked(ImportError):
    pass

def own_copy(module):
    copy = type(module)(module.__name__)  # no __file__ or __spec__: an error message names no path
    vars(copy).update({key: value for key, value in vars(module).items() if not key.startswith("_")})
    return copy

modules = {name: own_copy(__import__(name)) for name in request["modules"]}

def safe_import(name, globals=None, locals=None, fromlist=(), level=0):
    if name in modules and level == 0:
        return modules[name]
    raise Blocked("only " + ", ".join(request["modules"]) + " may be imported")

class Captured(io.StringIO):
    def write(self, text):
        if self.tell() < 2000:
            super().write(str(text)[:2000])
        return len(text)

captured = sys.stdout = sys.stderr = Captured()
safe_builtins = {name: getattr(builtins, name) for name in request["builtins"]}
safe_builtins["__import__"] = safe_import
namespace = {"__name__": "__main__", "__builtins__": safe_builtins}
try:
    program = compile(request["code"], "<generated>", "exec")
except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
    send({"status": "syntax_error", "message": str(error)[:300]})
try:
    exec(program, namespace)
except MemoryError:
    send({"status": "memory", "message": "MemoryError"})
except (Blocked, PermissionError) as error:
    send({"status": "blocked", "message": str(error)[:300]})
except RecursionError:
    send({"status": "runtime_error", "message": "RecursionError"})
except BaseException as error:  # "from math import nothing" too: harmless, so not blocked
    send({"status": "runtime_error", "message": (type(error).__name__ + ": " + str(error))[:300]})
if "ans" not in namespace:
    send({"status": "no_ans", "message": "the code never sets ans"})
answer = namespace["ans"]
try:
    if isinstance(answer, bool):
        answer = bool(answer)
    elif isinstance(answer, Real):
        answer = float(answer)
        if not isfinite(answer):
            send({"status": "non_finite", "message": "ans is " + repr(answer)})
    else:
        answer = str(answer)[:200]
except BaseException as error:
    send({"status": "runtime_error", "message": "ans cannot be read: " + type(error).__name__})
send({"status": "ok", "answer": answer, "stdout": io.StringIO.getvalue(captured)[:2000]})
'''


def finqa_clean_text(text, limit=FINQA_SANDBOX_MAX_MESSAGE, keep=""):
    """Hostile text made safe to log and to write as UTF-8: at most `limit` characters, and control characters
    (terminal escapes, a newline that forges a log line) and lone surrogates escaped as Python writes them, but for
    those in `keep` (a program's printed lines keep their line ends)."""
    return "".join(char if char.isprintable() or char in keep else repr(char)[1:-1] for char in str(text)[:limit])


def finqa_reject_constant(name):
    raise ValueError(f"{name} is not a number strict JSON allows")


def finqa_child_output(process, timeout):
    """(the child's output, None) once it closes its end, or (None, why): it ran past `timeout` seconds or wrote
    more than FINQA_SANDBOX_MAX_OUTPUT bytes (which only a program past the allow-list could)."""
    deadline, chunks, size = time.monotonic() + timeout, [], 0
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                return None, "timeout"
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                return b"".join(chunks), None
            chunks.append(chunk)
            size += len(chunk)
            if size > FINQA_SANDBOX_MAX_OUTPUT:
                return None, "output"


def finqa_verdict(output, returncode):
    """(answer, status, message) from the child's output: strict JSON of a known verdict, or what its exit says."""
    try:
        payload = json.loads(output.decode("utf-8"), parse_constant=finqa_reject_constant)
        status = payload["status"]
        answer = payload.get("answer")
        if status not in FINQA_SANDBOX_VERDICTS or not isinstance(answer, (bool, int, float, str, type(None))):
            raise ValueError(f"an unknown verdict {status!r}")
        if isinstance(answer, (int, float)) and not isinstance(answer, bool) and not math.isfinite(answer):
            status, answer = "non_finite", None  # "1e999" is JSON too
    except (ValueError, TypeError, KeyError, RecursionError):
        code_signal = -returncode if returncode and returncode < 0 else None
        if code_signal in (signal.SIGXCPU, signal.SIGKILL):
            return None, "timeout", f"killed by signal {code_signal}"
        if code_signal == signal.SIGXFSZ:
            return None, "blocked", "tried to write a file"
        return None, "crashed", f"exit status {returncode} without an answer"
    isolation, missing = str(payload.get("isolation") or "none"), str(payload.get("missing") or "nothing")
    if isolation not in FINQA_SANDBOX_SEEN:
        FINQA_SANDBOX_SEEN.add(isolation)
        logger.info("FinQA sandbox: allow-list, limits, kernel isolation: %s (not on this kernel: %s)",
                    finqa_clean_text(isolation), finqa_clean_text(missing))
    if status == "ok":
        answer = finqa_clean_text(answer, 200) if isinstance(answer, str) else answer
        return answer, "ok", finqa_clean_text(payload.get("stdout", ""), 2000, keep="\n\t")
    return None, status, finqa_clean_text(payload.get("message", ""))


def finqa_run_code(code, timeout=5.0, memory_mb=512):
    """Check untrusted code against the allow-list, then run it in a fresh, limited process; (answer, status, message).

    status is "ok" (answer is a finite float, a bool or a str) or a drop reason: too_long, syntax_error, too_deep,
    blocked, timeout, memory, runtime_error, no_ans, non_finite, crashed or checker_error. Never raises: whatever the
    program is, it is this program's verdict."""
    try:
        problem = finqa_check_code(str(code))
    except Exception as error:  # a limit we did not foresee: this row's verdict, not the run's
        problem = "checker_error", f"{type(error).__name__}: {error}"
    if problem:
        return None, problem[0], finqa_clean_text(problem[1])
    request = {
        "code": code,
        "memory_mb": memory_mb,
        "cpu_s": max(1, math.ceil(timeout)),
        "modules": FINQA_SANDBOX_MODULES,
        "builtins": FINQA_SANDBOX_BUILTINS,
        "kernel_isolation": FINQA_SANDBOX_KERNEL_ISOLATION,
    }
    with tempfile.TemporaryDirectory(prefix="finqa_sandbox_") as workdir:
        # the request goes in as a file, so the parent never blocks writing to a child that does not read
        request_path = os.path.join(workdir, "request.json")
        with open(request_path, "w", encoding="utf-8") as handle:
            json.dump(request, handle)
        try:
            with open(request_path, "rb") as stdin:
                process = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-c", FINQA_SANDBOX_BOOTSTRAP],
                    stdin=stdin,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    cwd=workdir,
                    env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
                    start_new_session=True,
                )
        except OSError as error:  # no process left to start (EAGAIN), no descriptors: this program is not run
            return None, "crashed", finqa_clean_text(f"the sandbox did not start: {error}")
        try:
            output, problem = finqa_child_output(process, timeout)
        finally:
            # The whole session goes, so nothing the code managed to start outlives it.
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            process.stdout.close()
            process.wait()
    if problem == "timeout":
        return None, "timeout", f"no answer within {timeout:g}s"
    if problem == "output":
        return None, "crashed", f"more than {FINQA_SANDBOX_MAX_OUTPUT} bytes of output"
    return finqa_verdict(output, process.returncode)


def finqa_answers_match(predicted, gold, rel_tol=1e-3, abs_tol=1e-4):
    """FinQA's conventions: yes/no for comparisons, 25% == 0.25, small rounding differences allowed."""
    if isinstance(gold, str) and gold.strip().lower() in ("yes", "no"):
        if isinstance(predicted, bool):
            predicted = "yes" if predicted else "no"
        return isinstance(predicted, str) and predicted.strip().lower() == gold.strip().lower()
    try:
        if isinstance(gold, str):
            gold_value = float(gold.replace(",", "").replace("%", "").strip())
            gold_value = gold_value / 100 if gold.strip().endswith("%") else gold_value
        else:
            gold_value = float(gold)
        if isinstance(predicted, bool) or predicted is None:
            return False
        predicted_value = float(predicted)
    except (TypeError, ValueError):
        return False
    if not (math.isfinite(predicted_value) and math.isfinite(gold_value)):
        return False
    for candidate in (predicted_value, predicted_value / 100, predicted_value * 100):
        if math.isclose(candidate, gold_value, rel_tol=rel_tol, abs_tol=abs_tol):
            return True
        if round(candidate, 2) == round(gold_value, 2) and abs(gold_value) >= 1:
            return True
    return False


def finqa_number(text):
    """FinQA's str_to_num: '1,234' -> 1234.0, '6.9%' -> 0.069, 'const_m1' -> -1.0; None when not a number."""
    text = str(text).replace(",", "").strip()
    try:
        return float(text)
    except ValueError:
        pass
    if text.endswith("%"):
        try:
            return float(text[:-1]) / 100
        except ValueError:
            return None
    if text.startswith("const_"):
        try:
            return -1.0 if text == "const_m1" else float(text[len("const_"):])
        except ValueError:
            return None
    return None


def finqa_cell_number(cell):
    """A table cell as FinQA's table ops read it: '$ 1,234 ( 2 )' -> 1234.0."""
    text = str(cell).replace("$", "").strip().split("(")[0].strip()
    return finqa_number(text)


def finqa_parse_program(program):
    """'subtract(5, 3), divide(#0, 3)' -> [("subtract", ["5", "3"]), ("divide", ["#0", "3"])]; ValueError if bad."""
    text = str(program).strip()
    if text and finqa_number(text) is not None:
        return [("value", [text])]  # ConvFinQA turns that only read off one number
    steps = []
    position = 0
    for match in re.finditer(r"\s*(\w+)\(([^()]*)\)\s*(,|$)", text):
        if match.start() != position:
            raise ValueError(f"cannot read {text[position:match.start() + 20]!r}")
        position = match.end()
        operation, inner = match.group(1), match.group(2)
        if operation in FINQA_TABLE_OPS:
            # A row name can hold commas; only the trailing ", none" is a separate argument.
            row = inner.rsplit(",", 1)[0] if inner.rstrip().endswith("none") else inner
            steps.append((operation, [row.strip()]))
            continue
        if operation not in FINQA_OPS:
            raise ValueError(f"unknown operation {operation!r}")
        arguments = [part.strip() for part in inner.split(",")]
        if len(arguments) != 2:
            raise ValueError(f"{operation} needs 2 arguments, got {len(arguments)}")
        for argument in arguments:
            reference = re.fullmatch(r"#(\d+)", argument)
            if reference and int(reference.group(1)) >= len(steps):
                raise ValueError(f"{argument} refers to a later step")
            if not reference and finqa_number(argument) is None:
                raise ValueError(f"argument {argument!r} is not a number")
        steps.append((operation, arguments))
    if not steps or position != len(text):
        raise ValueError(f"cannot read {text[position:position + 20]!r}")
    return steps


def finqa_slug(text, max_words=5):
    words = [w for w in re.findall(r"[a-z0-9]+", str(text).lower()) if w not in FINQA_SLUG_FILLERS]
    return "_".join(words[:max_words])


def finqa_identifier(*parts):
    parts = [part for part in parts if part]
    if parts and parts[0][0].isdigit() and len(parts) > 1 and not parts[1][0].isdigit():
        parts = [parts[1], parts[0], *parts[2:]]  # "revenue_2019" reads better than "2019_revenue"
    name = "_".join(parts)[:48].strip("_")
    if not name or name[0].isdigit():
        name = f"value_{name}".strip("_")
    return name


def finqa_name_quantity(value, record):
    """Name a number from the program after the table cell or the words before it in the text."""
    table = record["table"]
    header = table[0] if table else []
    for row in table[1:]:
        for column, cell in enumerate(row[1:], start=1):
            number = finqa_cell_number(cell)
            if number is not None and value != 0 and math.isclose(abs(number), abs(value), rel_tol=1e-9):
                column_name = finqa_slug(header[column], 3) if column < len(header) else ""
                return finqa_identifier(finqa_slug(row[0], 4), column_name)
    for sentence in record["sentences"]:
        tokens = re.findall(r"[a-z][a-z\-']*|\$?-?\d[\d,]*\.?\d*%?", sentence.lower())
        for index, token in enumerate(tokens):
            number = finqa_number(token.lstrip("$"))
            if number is None:
                continue
            if math.isclose(number, value, rel_tol=1e-9) or (token.endswith("%") and math.isclose(number * 100, value)):
                words = [w for w in tokens[max(0, index - 6):index] if w[0].isalpha() and w not in FINQA_NAME_STOPWORDS]
                if words:
                    return finqa_identifier(finqa_slug(" ".join(words[-3:]), 3))
    return "value"


def finqa_literal(text):
    """A program number as Python source: '1,234.50' -> '1234.50', '6.9%' -> '6.9 / 100', 'const_m1' -> '-1'."""
    text = str(text).replace(",", "").strip()
    if text.startswith("const_"):
        text = "-1" if text == "const_m1" else text[len("const_"):]
    percent = text.endswith("%")
    text = text[:-1].strip() if percent else text
    if not re.fullmatch(r"-?(0|[1-9]\d*)(\.\d+)?", text):
        text = repr(float(text))
    return f"{text} / 100" if percent else text


def finqa_find_row(table, name):
    """FinQA looks a row up by its first cell; the last row of that name wins, as in its executor."""
    wanted = " ".join(str(name).lower().split())
    found = None
    for row in table[1:] if len(table) > 1 else table:
        if row and " ".join(str(row[0]).lower().split()) == wanted:
            found = row
    return found


def finqa_translate(program, record):
    """Translate a FinQA program into Python that names its quantities and sets `ans`; ValueError(reason, detail)."""
    try:
        steps = finqa_parse_program(program)
    except ValueError as error:
        raise ValueError("bad_program", str(error)) from None
    lines, names, used, literals = [], [], set(FINQA_RESERVED_NAMES), {}

    def fresh(name):
        name = name if name not in used else next(f"{name}_{i}" for i in range(2, 1000) if f"{name}_{i}" not in used)
        used.add(name)
        return name

    def operand(argument):
        if argument.startswith("#"):
            return names[int(argument[1:])]
        if argument.startswith("const_"):
            literal = finqa_literal(argument)
            return f"({literal})" if literal.startswith("-") else literal
        key = argument.replace(",", "").strip()
        if key not in literals:
            value = finqa_number(key)
            literals[key] = fresh(finqa_name_quantity(value, record))
            lines.append(f"{literals[key]} = {finqa_literal(key)}")
        return literals[key]

    for index, (operation, arguments) in enumerate(steps):
        last = index == len(steps) - 1
        if operation == "value":
            expression = operand(arguments[0])
            step_name = expression
        elif operation in FINQA_TABLE_OPS:
            row = finqa_find_row(record["table"], arguments[0])
            if row is None:
                raise ValueError("unknown_row", f"no table row named {arguments[0]!r}")
            values = [finqa_cell_number(cell) for cell in row[1:]]
            if not values or None in values:
                raise ValueError("non_numeric_row", f"row {arguments[0]!r} holds cells that are not numbers")
            row_name = fresh(finqa_identifier(finqa_slug(row[0], 4)) if finqa_slug(row[0]) else "row")
            lines.append(f"{row_name} = [{', '.join(repr(v) for v in values)}]")
            expression = FINQA_TABLE_OPS[operation].format(row_name)
            step_name = f"{row_name}_{operation.split('_')[1]}"
        else:
            expression = FINQA_OPS[operation].format(*(operand(argument) for argument in arguments))
            step_name = FINQA_STEP_NAMES[operation]
        if last:
            lines.append(f"ans = {expression}")
        elif operation == "value":
            names.append(expression)
        else:
            names.append(fresh(step_name))
            lines.append(f"{names[-1]} = {expression}")
    return "\n".join(lines) + "\n"


def finqa_format_answer(value):
    if isinstance(value, float):
        return f"{value:.5f}".rstrip("0").rstrip(".")
    return str(value)


def finqa_sentences(text):
    if isinstance(text, list):
        return [str(sentence).strip() for sentence in text if str(sentence).strip()]
    return [part.strip() for part in re.split(r"(?<=[.!?])\s+", str(text or "")) if part.strip()]


def finqa_table_from_columns(columns):
    """The re-arranged ConvFinQA table {column: {row: value}} as FinQA rows [[header...], [row, values...]]."""
    row_names = []
    for values in columns.values():
        for row_name in values:
            if row_name not in row_names:
                row_names.append(row_name)
    rows = [[""] + [str(column) for column in columns]]
    for row_name in row_names:
        rows.append([str(row_name)] + [finqa_format_answer(columns[c].get(row_name, "")) for c in columns])
    return rows


def finqa_count_tokens(text):
    # An approximation that needs no tokenizer: each digit, punctuation mark and piece of up to 6 letters counts one.
    # On FinQA reports it lands within about 7% of the SmolLM2 / Llama tokenizers, which split numbers into digits.
    return len(re.findall(r"[^\W\d_]{1,6}|\d|[^\w\s]|_", text))


def finqa_context(record, gold_inds, mode, max_tokens):
    """Pre-text, the table as '|'-separated rows, post-text; only gold evidence in gold mode; trimmed to max_tokens.

    Trimming drops the least useful pieces first (plain text, then table rows, keeping the header and the gold
    evidence longest) and keeps the order of what stays."""
    pre_count = len(record["pre_text"])
    units = []  # [section, position, priority, text]
    gold_text = {int(k.split("_")[1]) for k in gold_inds if k.startswith("text_") and k.split("_")[1].isdigit()}
    gold_rows = {int(k.split("_")[1]) for k in gold_inds if k.startswith("table_") and k.split("_")[1].isdigit()}
    use_gold = mode == "gold" and (gold_text or gold_rows)
    for position, sentence in enumerate(record["sentences"]):
        if use_gold and position not in gold_text:
            continue
        units.append([0 if position < pre_count else 2, position, 3 if position in gold_text else 0, sentence])
    for position, row in enumerate(record["table"]):
        if use_gold and position not in gold_rows and position != 0:
            continue
        priority = 3 if position in gold_rows else 2 if position == 0 else 1
        units.append([1, position, priority, "| " + " | ".join(str(cell).strip() for cell in row) + " |"])
    if max_tokens and max_tokens > 0:
        total = sum(finqa_count_tokens(unit[3]) for unit in units)
        while units and total > max_tokens:
            victim = min(range(len(units)), key=lambda i: (units[i][2], -units[i][0], -units[i][1]))
            if len(units) == 1:
                words = re.findall(r"\S+", units[0][3])
                while words and finqa_count_tokens(" ".join(words)) > max_tokens:
                    words.pop()
                units[0][3] = " ".join(words)
                break
            total -= finqa_count_tokens(units[victim][3])
            units.pop(victim)
    parts = []
    for section in (0, 1, 2):
        lines = [unit[3] for unit in units if unit[0] == section and unit[3]]
        if lines:
            parts.append(("\n" if section == 1 else " ").join(lines))
    return "\n\n".join(parts)


def finqa_prompt(context, question, history):
    conversation = "".join(f"Q: {q}\nA: {a}\n" for q, a in history)
    conversation = f"Earlier in the conversation:\n{conversation}\n" if conversation else ""
    return f"{FINQA_INSTRUCTION}\n\nReport:\n{context}\n\n{conversation}Question: {question}\n"


def finqa_document(raw, where):
    """pre_text, post_text and table of a FinQA or ConvFinQA record (either layout); ValueError(reason, detail)."""
    source = raw.get("doc", raw) if isinstance(raw.get("doc"), dict) else raw
    for field in ("pre_text", "post_text", "table"):
        if field not in source:
            raise ValueError("missing_field", f"{where}: missing field {'doc.' if source is not raw else ''}{field}")
    table = source["table"]
    if isinstance(table, dict):
        if not all(isinstance(values, dict) for values in table.values()):
            raise ValueError("ragged_table", f"{where}: table columns must map row names to values")
        table = finqa_table_from_columns(table)
    if not isinstance(table, list) or not all(isinstance(row, list) for row in table):
        raise ValueError("ragged_table", f"{where}: table must be a list of rows")
    widths = {len(row) for row in table}
    if len(widths) > 1:
        raise ValueError("ragged_table", f"{where}: table rows have different lengths {sorted(widths)}")
    pre_text, post_text = finqa_sentences(source["pre_text"]), finqa_sentences(source["post_text"])
    return {"pre_text": pre_text, "post_text": post_text, "sentences": pre_text + post_text, "table": table}


def finqa_field(raw, path, where):
    value = raw
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value or value[key] is None:
            raise ValueError("missing_field", f"{where}: missing field {path}")
        value = value[key]
    return value


def finqa_examples_from_finqa(raw, where):
    record_id = finqa_field(raw, "id", where)
    where = f"{where} (id {record_id})"
    document = finqa_document(raw, where)
    qa = finqa_field(raw, "qa", where)
    return [{
        "id": str(record_id),
        "source": "finqa",
        "document": document,
        "question": finqa_field(raw, "qa.question", where),
        "program": qa.get("program"),
        "gold_answer": finqa_field(raw, "qa.exe_ans", where),
        "gold_inds": qa.get("gold_inds") or {},
        "history": [],
        "where": where,
    }]


def finqa_program_evidence(document, programs):
    """{text_i/table_i: ""} for the sentences and table rows that hold the numbers these programs use: the gold
    evidence of a record that has none (ConvFinQA's hub layout keeps no gold_inds). A number found in more than three
    places (a year, a small count) says nothing about where the evidence is and is skipped."""
    def numbers(text):
        return {abs(float(n)) for n in re.findall(r"(?<![#\w.])-?\d+(?:\.\d+)?", str(text).replace(",", ""))}

    places = [(f"text_{i}", numbers(s)) for i, s in enumerate(document["sentences"])]
    places += [(f"table_{i}", numbers(" ".join(map(str, row)))) for i, row in enumerate(document["table"]) if i]
    evidence = {}
    for number in set().union(*map(numbers, programs)):
        found = [key for key, held in places if number in held]
        if 0 < len(found) <= 3:
            evidence.update(dict.fromkeys(found, ""))
    return evidence


def finqa_examples_from_convfinqa(raw, where):
    """One example per turn; earlier turns and their answers go into the prompt."""
    record_id = finqa_field(raw, "id", where)
    where = f"{where} (id {record_id})"
    document = finqa_document(raw, where)
    if "dialogue" in raw:
        questions = finqa_field(raw, "dialogue.conv_questions", where)
        programs = finqa_field(raw, "dialogue.turn_program", where)
        answers = finqa_field(raw, "dialogue.executed_answers", where)
        shown = raw["dialogue"].get("conv_answers") or [finqa_format_answer(a) for a in answers]
        splits = raw["dialogue"].get("qa_split") or [False] * len(questions)
    else:
        questions = finqa_field(raw, "annotation.dialogue_break", where)
        programs = finqa_field(raw, "annotation.turn_program", where)
        answers = finqa_field(raw, "annotation.exe_ans_list", where)
        shown = [finqa_format_answer(a) for a in answers]
        splits = raw["annotation"].get("qa_split") or [False] * len(questions)
    if not len(questions) == len(programs) == len(answers) == len(shown) == len(splits):
        raise ValueError("missing_field", f"{where}: questions, turn programs and answers differ in length")
    examples = []
    for turn, question in enumerate(questions):
        qa = raw.get("qa") or raw.get("qa_1" if splits[turn] else "qa_0") or {}
        examples.append({
            "id": f"{record_id}#turn{turn}",
            "source": "convfinqa",
            "document": document,
            "question": question,
            "program": programs[turn],
            "gold_answer": answers[turn],
            "gold_inds": qa.get("gold_inds") or finqa_program_evidence(document, programs[: turn + 1]),
            "evidence_from_program": not qa.get("gold_inds"),
            "history": list(zip(questions[:turn], shown[:turn])),
            "where": f"{where} turn {turn}",
        })
    return examples


def finqa_load_split(path, reader, drops, limit=None):
    try:
        with open(path, encoding="utf-8") as handle:
            records = json.load(handle)
    except OSError as error:
        fail(f"{path}: cannot read ({error.strerror}); point --finqa_dir/--convfinqa_dir at the dataset folder")
    except ValueError as error:
        fail(f"{path}: not valid JSON ({error}); expected the official list of records")
    if not isinstance(records, list):
        fail(f"{path}: expected a JSON list of records, got {type(records).__name__}")
    examples = []
    for index, raw in enumerate(records[:limit] if limit else records):
        where = f"{path} record {index}"
        try:
            if not isinstance(raw, dict):
                raise ValueError("missing_field", f"{where}: not a JSON object")
            examples.extend(reader(raw, where))
        except ValueError as error:
            finqa_drop(drops, *error.args)
    return examples


def finqa_drop(drops, reason, detail):
    drops[reason] += 1
    if drops[reason] <= FINQA_DROP_WARNINGS:
        # details quote data and model-written text: no terminal escape or newline (a forged log line) gets through
        logger.warning("dropped (%s): %s", reason, finqa_clean_text(detail, 500))


def finqa_teacher_messages(prompt):
    system = (
        "You are a financial analyst who answers questions about company reports by writing short Python programs. "
        "Name each quantity you read from the report, compute step by step, and store the final number in `ans` "
        "(a fraction for percentages, e.g. 0.25 for 25%; True/False for yes/no questions). Reply with one ```python "
        "code block and nothing else."
    )
    shots = [
        (
            "Report:\nnet revenue rose to $ 1450 million in 2019 .\n| | 2019 | 2018 |\n| net revenue | 1450 | 1250 |"
            "\n\nQuestion: what was the percentage change in net revenue from 2018 to 2019?",
            "net_revenue_2019 = 1450\nnet_revenue_2018 = 1250\nchange = net_revenue_2019 - net_revenue_2018\n"
            "ans = change / net_revenue_2018",
        ),
        (
            "Report:\n| | 2020 | 2019 | 2018 |\n| capital expenditures | 310 | 275 | 240 |\n\n"
            "Question: what was the average capital expenditure from 2018 to 2020?",
            "capital_expenditures = [310, 275, 240]\nans = sum(capital_expenditures) / len(capital_expenditures)",
        ),
    ]
    messages = [{"role": "system", "content": system}]
    for user, code in shots:
        messages.append({"role": "user", "content": f"{FINQA_INSTRUCTION}\n\n{user}"})
        messages.append({"role": "assistant", "content": f"```python\n{code}\n```"})
    messages.append({"role": "user", "content": prompt})
    return messages


def finqa_extract_code(text):
    blocks = re.findall(r"```(?:python|py)?[ \t]*\n(.*?)```", str(text or ""), flags=re.DOTALL)
    code = blocks[0] if blocks else str(text or "")
    return code.strip() + "\n" if code.strip() else ""


def finqa_ask_teacher(client, model, prompt, args):
    """One chat completion with exponential backoff; errors a retry cannot fix (400, 401, 403, 404) stop at once."""
    retries = getattr(args, "max_retries", None)
    delay = getattr(args, "retry_delay", None)
    retries, delay = (5 if retries is None else retries), (1.0 if delay is None else delay)
    for attempt in range(retries + 1):
        try:
            response = client.chat.completions.create(
                model=model, messages=finqa_teacher_messages(prompt), temperature=args.teacher_temperature,
                max_tokens=getattr(args, "max_tokens", None) or 512,
            )
            return response.choices[0].message.content or ""
        except Exception as error:  # the openai package raises many types; all are retried the same way
            status = getattr(error, "status_code", None)
            if attempt == retries or status in (400, 401, 403, 404, 422):
                raise
            wait = delay * 2 ** attempt * (1 + random.random() / 4)
            logger.info("teacher call failed (%s), retrying in %.1fs", type(error).__name__, wait)
            time.sleep(wait)
    return ""


def finqa_ends_with_newline(path):
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


# Verdicts the cache keeps: a program rejected for what it is. A timeout, memory or crashed verdict depends on the
# limits and the machine, and checker_error is our checker failing, not the program, so that program runs again next
# time (a fixed checker may keep it).
FINQA_CACHED_VERDICTS = {"too_long", "syntax_error", "too_deep", "blocked", "runtime_error", "no_ans", "non_finite",
                         "wrong_answer"}


def finqa_append_cache(path, lines):
    """Append whole lines to the teacher cache, first ending a line an interrupted run left cut short (so the next
    entry stays readable)."""
    if not lines:
        return
    with open(path, "a", encoding="utf-8") as cache:
        if cache.tell() and not finqa_ends_with_newline(path):
            cache.write("\n")
        cache.write("".join(lines))


def finqa_read_cache(cache_path, model):
    """({id: response}, {id: (verdict, message)}) of the cache's lines for `model`. A line with a verdict is an answer
    an earlier run rejected (the last line of an id wins); a line that is no entry is a one-line warning."""
    cached, rejected = {}, {}
    if not os.path.exists(cache_path):
        return cached, rejected
    with open(cache_path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            try:
                entry = json.loads(line.decode("utf-8"))
                if not (isinstance(entry, dict) and isinstance(entry.get("id"), str)
                        and isinstance(entry.get("response", ""), str)):
                    raise ValueError("not an object with a text id and response")
            except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
                logger.warning("%s line %d skipped (%s; a line cut short by an interrupted run?)", cache_path, number,
                               finqa_clean_text(f"{type(error).__name__}: {error}", 120))
                continue
            if entry.get("model") != model:
                continue
            cached[entry["id"]] = entry.get("response", "")
            rejected.pop(entry["id"], None)
            if entry.get("verdict") in FINQA_CACHED_VERDICTS:
                rejected[entry["id"]] = entry["verdict"], finqa_clean_text(entry.get("message", ""))
    return cached, rejected


def finqa_record_verdicts(cache_path, model, responses, verdicts):
    """Append a line with its verdict for each teacher answer cleaning rejected, so a rerun skips it."""
    lines = [json.dumps({"id": example_id, "model": model, "response": responses[example_id],
                         "verdict": verdict, "message": message}) + "\n"
             for example_id, (verdict, message) in verdicts.items() if verdict in FINQA_CACHED_VERDICTS]
    finqa_append_cache(cache_path, lines)


def finqa_teacher_codes(examples, args, cache_path):
    """Code for each example from the teacher; answers are appended to cache_path as they arrive, so a rerun only
    asks for what is missing. Returns ({id: code}, {id: response}, {id: (verdict, message)}): ids whose calls failed
    are absent, and the verdicts are those of answers an earlier run rejected."""
    from openai import OpenAI

    if not args.teacher_model:
        fail("--source teacher needs --teacher_model (and --base_url for a non-OpenAI server)")
    api_key = os.environ.get("OPENAI_API_KEY")
    if not api_key:
        fail("--source teacher: set OPENAI_API_KEY (any value for a local server that ignores it)")
    cached, rejected = finqa_read_cache(cache_path, args.teacher_model)
    todo = {example["id"]: example for example in examples if example["id"] not in cached}
    logger.info("teacher: %d cached, %d to ask %s", len(examples) - len(todo), len(todo), args.teacher_model)
    if todo:
        timeout = getattr(args, "timeout", None) or 60.0
        client = OpenAI(base_url=getattr(args, "base_url", None), api_key=api_key, max_retries=0, timeout=timeout)
        os.makedirs(os.path.dirname(os.path.abspath(cache_path)), exist_ok=True)
        pool = ThreadPoolExecutor(max(1, args.max_concurrency))
        futures = {
            pool.submit(finqa_ask_teacher, client, args.teacher_model, example["prompt"], args): example_id
            for example_id, example in todo.items()
        }
        try:
            for future in as_completed(futures):
                example_id = futures[future]
                try:
                    response = future.result()
                except Exception as error:
                    logger.warning("teacher failed for %s: %s", finqa_clean_text(example_id, 200),
                                   finqa_clean_text((str(error).splitlines() or [""])[0], 200))
                    continue
                cached[example_id] = response
                entry = {"id": example_id, "model": args.teacher_model, "response": response}
                # each answer is on disk as soon as it arrives: an interrupted run loses none it paid for
                finqa_append_cache(cache_path, [json.dumps(entry) + "\n"])
        except KeyboardInterrupt:
            fail(f"interrupted; {len(cached)} teacher answers are in {cache_path}, run the same command to resume")
        finally:
            # Queued requests are cancelled, so an interrupt does not wait for (or pay for) the rest.
            pool.shutdown(wait=False, cancel_futures=True)
    codes = {example_id: finqa_extract_code(response) for example_id, response in cached.items()}
    return codes, cached, rejected


def add_finqa_arguments(parser):
    group = parser.add_argument_group("FinQA / ConvFinQA")
    group.add_argument("--finqa_dir", help="Folder with FinQA train.json, dev.json, test.json (official format).")
    group.add_argument("--convfinqa_dir", help="Folder with ConvFinQA train.json, dev.json (test.json): official or "
                       "re-arranged (doc/dialogue) layout; one example per conversation turn.")
    group.add_argument("--source", choices=["gold_program", "teacher"], default="gold_program",
                       help="FinQA: translate the gold program to Python (offline) or ask a teacher model.")
    group.add_argument("--context", choices=["full", "gold"], default="full",
                       help="FinQA: the whole report or only the gold evidence (qa.gold_inds) in the prompt.")
    group.add_argument("--max_context_tokens", type=int, default=0,
                       help="FinQA: trim the report to about this many tokens (0: no limit); the question stays.")
    group.add_argument("--max_examples", type=int, default=0, help="FinQA: read at most this many records per file.")
    group.add_argument("--teacher_model", help="FinQA --source teacher: model name at the OpenAI-compatible API "
                       "(--base_url; key from OPENAI_API_KEY; --max_retries/--retry_delay/--timeout apply).")
    group.add_argument("--teacher_temperature", type=float, default=0.0, help="FinQA: teacher sampling temperature.")
    group.add_argument("--max_concurrency", type=int, default=4, help="FinQA: teacher requests in flight at once.")
    group.add_argument("--teacher_cache", help="FinQA: JSONL of teacher answers, appended as they arrive and reused "
                       "on the next run (default <output_dir>/teacher_cache.jsonl).")
    group.add_argument("--sandbox_timeout", type=float, default=5.0, help="FinQA: seconds one code sample may run.")
    group.add_argument("--sandbox_memory_mb", type=int, default=512, help="FinQA: memory limit of one code sample.")
    group.add_argument("--sandbox_workers", type=int, default=2, help="FinQA: code samples run at once.")


def finqa_clean(examples, codes, args, drops, verdicts=None):
    """Run each code sample in the sandbox and keep the ones whose `ans` matches the gold answer; `verdicts` (a dict)
    gets {id: (verdict, message)} of the rest."""
    verdicts = {} if verdicts is None else verdicts
    runnable = [example for example in examples if codes.get(example["id"])]
    with ThreadPoolExecutor(max(1, args.sandbox_workers)) as pool:
        results = pool.map(
            lambda example: finqa_run_code(codes[example["id"]], args.sandbox_timeout, args.sandbox_memory_mb),
            runnable,
        )
        kept = []
        for example, (answer, status, message) in zip(runnable, results):
            if status != "ok":
                finqa_drop(drops, status, f"{example['where']}: {message}")
                verdicts[example["id"]] = status, message
            elif not finqa_answers_match(answer, example["gold_answer"]):
                detail = f"{example['where']}: ans={answer!r}, gold={example['gold_answer']!r}"
                finqa_drop(drops, "wrong_answer", detail)
                verdicts[example["id"]] = "wrong_answer", finqa_clean_text(detail)
            else:
                kept.append(example)
    return kept


def finqa_teacher_examples(examples, args, cache_path, drops):
    """(codes, responses, the examples to clean): the teacher's code for each, and drops for examples without an
    answer, without code, or whose answer an earlier run rejected (its verdict is in the cache)."""
    codes, responses, rejected = finqa_teacher_codes(examples, args, cache_path)
    runnable = []
    for example in examples:
        if example["id"] not in codes:
            finqa_drop(drops, "teacher_error", f"{example['where']}: no teacher answer")
        elif example["id"] in rejected:
            verdict, message = rejected[example["id"]]
            finqa_drop(drops, verdict, f"{example['where']}: {message} (an earlier run's verdict, kept in the cache)")
        elif not codes[example["id"]]:
            finqa_drop(drops, "no_code", f"{example['where']}: the teacher answer holds no code")
        else:
            runnable.append(example)
    skipped = sum(example["id"] in rejected for example in examples)
    if skipped:
        logger.info("teacher: %d answers rejected on an earlier run are skipped (their verdict lines in %s; remove "
                    "those to run them again)", skipped, cache_path)
    return codes, responses, runnable


def prepare_finqa(args):
    output_dir = args.output_dir or os.path.join("data", "finqa")
    sources = [(args.finqa_dir, finqa_examples_from_finqa), (args.convfinqa_dir, finqa_examples_from_convfinqa)]
    present = {split: [] for split in FINQA_SPLITS}
    for folder, reader in sources:
        if not folder:
            continue
        if not os.path.isdir(folder):
            fail(f"{folder}: no such folder; it should hold train.json, dev.json and test.json")
        found = [split for split in FINQA_SPLITS if os.path.exists(os.path.join(folder, f"{split}.json"))]
        if not found:
            fail(f"{folder}: none of train.json, dev.json, test.json is there")
        for split in found:
            present[split].append((os.path.join(folder, f"{split}.json"), reader))
    if not any(present.values()):
        fail("give --finqa_dir and/or --convfinqa_dir")
    if args.source == "teacher" and not args.teacher_model:
        fail("--source teacher needs --teacher_model (and --base_url for a non-OpenAI server)")
    for split in FINQA_SPLITS:
        if not present[split]:
            logger.info("%s: no %s.json given, skipped", split, split)
            continue
        drops = Counter()
        examples = []
        for path, reader in present[split]:
            examples.extend(finqa_load_split(path, reader, drops, args.max_examples or None))
        total = len(examples) + sum(drops.values())
        if args.context == "gold":
            derived = sum(bool(e.get("evidence_from_program") and e["gold_inds"]) for e in examples)
            whole = sum(not e["gold_inds"] for e in examples)
            if derived or whole:
                logger.info("%s: %d questions without gold_inds get the sentences and table rows holding their "
                            "program's numbers; %d (no number found, or no gold_inds) the whole report", split,
                            derived, whole)
        codes = {}
        for example in examples:
            context = finqa_context(example["document"], example["gold_inds"], args.context, args.max_context_tokens)
            example["prompt"] = finqa_prompt(context, example["question"], example["history"])
        if args.source == "gold_program":
            translated = []
            for example in examples:
                try:
                    if example["program"] is None:
                        raise ValueError("missing_field", "missing field qa.program (needed by --source gold_program)")
                    codes[example["id"]] = finqa_translate(example["program"], example["document"])
                    translated.append(example)
                except ValueError as error:
                    finqa_drop(drops, error.args[0], f"{example['where']}: {error.args[1]}")
            examples = translated
        else:
            cache_path = args.teacher_cache or os.path.join(output_dir, "teacher_cache.jsonl")
            codes, responses, examples = finqa_teacher_examples(examples, args, cache_path, drops)
        verdicts = {}
        kept = finqa_clean(examples, codes, args, drops, verdicts)
        if args.source == "teacher":
            finqa_record_verdicts(cache_path, args.teacher_model, responses, verdicts)
        rows = [{
            "id": example["id"],
            "prompt": example["prompt"],
            "completion": codes[example["id"]],
            "gold_answer": example["gold_answer"],
            "question": example["question"],
            "program": example["program"],
            "source": example["source"],
        } for example in kept]
        path = os.path.join(output_dir, f"{split}.jsonl")
        write_jsonl(path, rows)
        dropped = ", ".join(f"{reason}={count}" for reason, count in drops.most_common()) or "none"
        logger.info("%s: kept %d of %d (dropped: %s) -> %s", split, len(kept), total, dropped, path)
    remove_stale_splits(output_dir, [os.path.join(output_dir, f"{split}.jsonl") for split in FINQA_SPLITS
                                     if present[split]], ".jsonl", [args.finqa_dir, args.convfinqa_dir])


# ---------------------------------------------------------------------------------------------------------------------
# Skill calling (issue 4)
# ---------------------------------------------------------------------------------------------------------------------

SKILL_HEADER = re.compile(r"^####\s*([^:#]+?)\s*:\s*$")
SKILL_TURN = re.compile(r"^###\s*(User|Assistant)\s*:(.*)$")
SKILL_SIGNATURE = re.compile(r"^([A-Za-z_]\w*)\s*\((.*)\)$")
SKILL_PARAMETER = re.compile(r'^([A-Za-z_]\w*)\s*(?::\s*(str|int|float|bool|"[^"]*"))?\s*(?:=\s*(.+))?$')
SKILL_TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}
SKILL_TYPE_NAMES = {kind: name for name, kind in SKILL_TYPES.items()}
SKILL_TOOL = "add_examples"
SKILL_FORMATS = ("prompt_completion", "openai")
# --format openai: a no-call example is an assistant reply in words, as in OpenAI's own tool-calling data; the app
# treats "no tool call" the way it treated other(). Short, so the loss is spent on the decision, not on the wording.
SKILL_TOOLS_SYSTEM = (
    "You are a voice assistant. Answer each request with a call of the one tool that serves it; when no tool fits, "
    "reply in words without a call."
)
SKILL_NO_CALL_REPLY = "No tool fits this request."
# Argument values a model has to compose (an expression) rather than copy from the request; every other value must
# appear in the request, so generated examples never teach the model to invent places, topics or programs.
COMPOSED_ARGUMENTS = {("math", "question")}
SKILL_REASONS = {
    "not_a_call": 'is not one call; write it as name(key="value", ...)',
    "positional_argument": 'uses a positional argument; write keyword arguments, e.g. weather(location="Berlin")',
    "repeated_argument": "names the same argument twice",
    "non_string_argument": 'has a value that is not a quoted string; quote it, e.g. timer(duration="five minutes")',
    "wrong_type": "has a value of another type than the signature gives (str, int, float or bool)",
    "missing_argument": "leaves out an argument that the signature requires (annotated and without a default)",
    "unknown_skill": "calls a skill that no '#### Prompt:' section defines",
    "wrong_skill": "calls another skill than this file's",
    "unknown_argument": "uses an argument name that the skill's signature does not have",
    "bad_choice": "gives a value outside the choices in the signature",
    "empty_argument": "has an empty argument; leave the argument out instead",
    "not_in_request": "has an argument value that does not appear in the request",
    "empty_request": "has an empty request",
    "duplicate": "repeats a request that is already there",
}


def skill_key(text):
    """Requests that differ only in case, spacing or end punctuation are the same request."""
    return " ".join(text.lower().split()).rstrip(" .!?")


def parse_skill_parameter(text, where):
    """One signature parameter -> (name, JSON schema property, required).

    `location` (an optional string) and `action="add|list"` (optional, one of the choices) are the original forms;
    annotations make a parameter typed and required as in Python (`question: str`, `action: "add|list"`,
    `count: int`), and a default makes it optional again (`count: int = 1`, `unit: str = None`)."""
    match = SKILL_PARAMETER.match(text)
    if not match:
        fail(f'{where}: bad parameter {text!r} in the signature; write name, name: int, name: str = "x" or name="a|b"')
    name, annotation, default = match.groups()
    if annotation is None and default is not None:
        if not re.fullmatch(r'"[^"]*"', default.strip()):
            fail(f"{where}: parameter {name} has a default but no type; write {name}: str = ..., int, float or bool "
                 f'({name}="a|b" without a type lists choices)')
        annotation, default = default.strip(), None  # name="a|b": optional choices, the original form
        required = False
    else:
        required = annotation is not None and default is None
    if annotation is None or annotation.startswith('"'):
        prop = {"type": "string"}
        if annotation:
            prop["enum"] = list(dict.fromkeys(annotation.strip('"').split("|")))
    else:
        prop = {"type": SKILL_TYPES[annotation]}
    if default is not None:
        try:
            value = ast.literal_eval(default.strip())
        except (ValueError, SyntaxError):
            fail(f"{where}: the default of {name} is not a Python literal; write e.g. 1, 2.5, True or \"text\"")
        if value is not None:
            if skill_value_reason(value, prop):
                fail(f"{where}: the default {default.strip()} of {name} does not fit its type {annotation}")
            prop["default"] = value
    return name, prop, required


def parse_skill_signature(text, where):
    """'notes(action: "add|list", note)' -> the skill's name and its JSON schema (an object of typed properties)."""
    match = SKILL_SIGNATURE.match(text.strip())
    if not match:
        fail(f"{where}: the first line of '#### Prompt:' must be the skill's signature, e.g. weather(location)")
    properties, required, part, quoted = {}, [], "", False
    # split on commas outside quotes: choices such as "add|list" may hold any text
    for char in match.group(2) + ",":
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            if part.strip():
                name, prop, needed = parse_skill_parameter(part.strip(), where)
                if name in properties:
                    fail(f"{where}: parameter {name} appears twice in the signature")
                properties[name] = prop
                required += [name] if needed else []
            part = ""
        else:
            part += char
    schema = {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
    return match.group(1), schema


def skill_short_signature(name, schema):
    """The signature as prompts show it: names, choices and non-string types; no defaults or required marks, so
    `math(question: str)` reads `math(question)` and prompts of untyped files stay as they always were."""
    shown = []
    for key, prop in schema["properties"].items():
        if "enum" in prop:
            shown.append(f'{key}="{"|".join(prop["enum"])}"')
        else:
            shown.append(key if prop["type"] == "string" else f"{key}: {SKILL_TYPE_NAMES[prop['type']]}")
    return f"{name}({', '.join(shown)})"


def skill_value_reason(value, prop):
    """Why a value does not fit a schema property (a SKILL_REASONS key), or None. bool is no number here: JSON
    Schema keeps true and 1 apart, and so does a tool-calling API."""
    kind = prop["type"]
    if kind == "string" and not isinstance(value, str):
        return "non_string_argument"
    if isinstance(value, bool) != (kind == "boolean"):
        return "wrong_type"
    if kind == "number" and not isinstance(value, (int, float)):
        return "wrong_type"
    if kind == "integer" and not (isinstance(value, int) or isinstance(value, float) and value.is_integer()):
        return "wrong_type"  # 5.0 is an integer to JSON Schema as well
    if "enum" in prop and value not in prop["enum"]:
        return "bad_choice"
    return None


def parse_skill_call(text):
    """Parse 'name(key="value", n=2)' with ast (never eval) -> (name, [(key, value), ...]); ValueError(reason).

    Values are literals only: strings, numbers (a leading minus too) and True/False; whether one fits its parameter
    is the schema's question (check_skill_example)."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # the last two: nested past the parser's limits
        raise ValueError("not_a_call") from None
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise ValueError("not_a_call")
    if node.args:
        raise ValueError("positional_argument")
    arguments = []
    for keyword in node.keywords:
        if keyword.arg is None:
            raise ValueError("not_a_call")
        value = keyword.value
        negative = isinstance(value, ast.UnaryOp) and isinstance(value.op, ast.USub)
        if negative and isinstance(value.operand, ast.Constant) and type(value.operand.value) in (int, float):
            value = ast.Constant(-value.operand.value)
        if not isinstance(value, ast.Constant) or type(value.value) not in (str, int, float, bool):
            raise ValueError("non_string_argument")
        if keyword.arg in dict(arguments):
            raise ValueError("repeated_argument")
        arguments.append((keyword.arg, value.value))
    return node.func.id, arguments


def format_skill_value(value):
    # strings in double quotes (JSON escapes are Python escapes too), True/False and numbers as Python writes them
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)


def format_skill_call(name, arguments):
    """One canonical spelling (keyword arguments, double quotes) so the model never sees two forms of a call."""
    return f"{name}(" + ", ".join(f"{key}={format_skill_value(value)}" for key, value in arguments) + ")"


def check_skill_example(request, name, arguments, skills, copy_check):
    """The reason an already parsed example is bad (a SKILL_REASONS key), or None."""
    if not request.strip():
        return "empty_request"
    if name not in skills:
        return "unknown_skill"
    # The skill's JSON schema is the one truth for names, types, choices and required arguments, so -c, -t and the
    # --format openai tools agree; it is a flat object of four types, which a few lines check without a library.
    schema = skills[name]["schema"]
    for key, value in arguments:
        if key not in schema["properties"]:
            return "unknown_argument"
        if isinstance(value, str) and not value.strip():
            return "empty_argument"
        reason = skill_value_reason(value, schema["properties"][key])
        if reason:
            return reason
        copied = isinstance(value, str) and "enum" not in schema["properties"][key]
        copied = copied and (name, key) not in COMPOSED_ARGUMENTS
        if copy_check and copied and " ".join(value.lower().split()) not in " ".join(request.lower().split()):
            return "not_in_request"
    if set(schema["required"]) - {key for key, _ in arguments}:
        return "missing_argument"
    return None


def parse_skill_file(path):
    """Read one examples file: its '#### Prompt:' section (signature, description) and its User/Assistant pairs."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        fail(f"cannot read skill file {path}: {error}")
    section, prompt_lines, examples, pending = None, [], [], None
    signature_line = None
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        header, turn = SKILL_HEADER.match(line), SKILL_TURN.match(line)
        if pending and not (turn and turn.group(1) == "Assistant"):
            fail(f"{path}:{pending[0]}: '### User:' has no '### Assistant:' answer on the next line; add one")
        if header:
            section = header.group(1).lower()
            continue
        if turn:
            if section is None:
                fail(f"{path}:{number}: no '#### Prompt:' section before the examples; start the file with it")
            if section == "prompt":
                fail(f"{path}:{number}: examples go after the '#### Prompt:' section, under '#### Prompt Examples:'")
            text = turn.group(2).strip()
            if turn.group(1) == "User":
                if not text:
                    fail(f"{path}:{number}: empty '### User:' request; write the request after the colon")
                pending = (number, text)
                continue
            if not pending:
                fail(f"{path}:{number}: '### Assistant:' without a '### User:' line right before it")
            try:
                name, arguments = parse_skill_call(text)
            except ValueError as error:
                fail(f"{path}:{number}: the answer {text!r} {SKILL_REASONS[str(error)]}")
            example = {"line": pending[0], "answer_line": number, "user": pending[1], "name": name}
            examples.append({**example, "arguments": arguments})
            pending = None
        elif section == "prompt":
            if line:
                signature_line = signature_line or number
                prompt_lines.append(line)
        elif line:
            fail(f"{path}:{number}: unexpected line {line[:40]!r}; write '### User: ...' then '### Assistant: ...'")
    if pending:
        fail(f"{path}:{pending[0]}: '### User:' has no '### Assistant:' answer; add one")
    if not prompt_lines:
        fail(f"{path}:1: no '#### Prompt:' section; start the file with it, the signature and a description")
    name, schema = parse_skill_signature(prompt_lines[0], f"{path}:{signature_line}")
    stem = Path(path).name
    if stem.endswith("_examples.txt") and stem[: -len("_examples.txt")] != name:
        fail(f"{path}:{signature_line}: the signature defines {name}() but the file is named {stem}; rename one")
    return {
        "path": str(path),
        "name": name,
        "signature": prompt_lines[0],
        "short_signature": skill_short_signature(name, schema),
        "description": " ".join(prompt_lines[1:]),
        "parameters": list(schema["properties"]),
        "choices": {key: set(prop["enum"]) for key, prop in schema["properties"].items() if "enum" in prop},
        "schema": schema,
        "examples": examples,
    }


def skill_prompt(skills, request):
    """Only the signatures: descriptions cost ~100 tokens per example and a small model learns them from the data."""
    listing = ", ".join(skills[name]["short_signature"] for name in sorted(skills))
    return f"Skills: {listing}\nUser: {request}\nCall:\n"


def split_skill_records(records, fraction, seed):
    """Stratified held-out split; each skill has its own seeded shuffle, so adding a skill keeps the others' split."""
    by_skill = {}
    for index, record in enumerate(records):
        by_skill.setdefault(record["skill"], []).append(index)
    held_out = set()
    for name, indices in sorted(by_skill.items()):
        count = round(len(indices) * fraction)
        if fraction > 0 and len(indices) > 1:
            count = min(max(count, 1), len(indices) - 1)
        held_out.update(random.Random(f"{seed}-{name}").sample(indices, count))
    train = [record for index, record in enumerate(records) if index not in held_out]
    test = [record for index, record in enumerate(records) if index in held_out]
    return train, test


def skill_completion_record(record, skills):
    return {"prompt": skill_prompt(skills, record["user"]),
            "completion": format_skill_call(record["skill"], record["arguments"]), "skill": record["skill"]}


def skill_tool(skill):
    """A skill as an OpenAI function tool: its description and the JSON schema read from its signature."""
    return {"type": "function",
            "function": {"name": skill["name"], "description": skill["description"], "parameters": skill["schema"]}}


def skill_openai_records(records, skills, args):
    """OpenAI chat fine-tuning records: system, user, and an assistant turn holding one tool call (arguments as a
    JSON string, as the API sends them) or, for the --no_call_skill, a reply in words and no call."""
    no_call = args.no_call_skill if args.no_call_skill in skills else None
    if args.no_call_skill and not no_call:
        logger.info("--no_call_skill %s: no such skill among the files, so every example is a tool call",
                    args.no_call_skill)
    if no_call and skills[no_call]["schema"]["properties"]:
        fail(f"{skills[no_call]['path']}: --no_call_skill {no_call} has parameters, so its examples are calls; name a "
             "skill without parameters, like other(), or pass --no_call_skill ''")
    tools = [skill_tool(skills[name]) for name in sorted(skills) if name != no_call]
    rows = []
    for record in records:
        messages = [{"role": "system", "content": SKILL_TOOLS_SYSTEM}, {"role": "user", "content": record["user"]}]
        if record["skill"] == no_call:
            messages.append({"role": "assistant", "content": args.no_call_reply})
        else:
            arguments = json.dumps(dict(record["arguments"]), ensure_ascii=False)
            call = {"id": "call_1", "type": "function", "function": {"name": record["skill"], "arguments": arguments}}
            messages.append({"role": "assistant", "tool_calls": [call]})
        rows.append({"messages": messages, "tools": tools})
    return rows


def write_json_atomic(path, data):
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def add_skills_arguments(parser):
    group = parser.add_argument_group("skill calling")
    group.add_argument("-c", "--create", action="store_true", help="Generate new examples for one skill file.")
    group.add_argument("-t", "--collect", action="store_true", help="Collect example files into a training JSON.")
    group.add_argument("--file", help="-c: the skill examples file, e.g. examples/skills/weather_examples.txt.")
    group.add_argument("--n_generations", type=int, default=5, help="-c: how many new valid examples to ask for.")
    group.add_argument("--append", action="store_true", help="-c: append valid examples to --file (else stdout).")
    group.add_argument("--model", default="gpt-4o-mini", help="-c: chat model name at the API.")
    group.add_argument("--base_url", default=None, help="-c: OpenAI-compatible API URL (default: the OpenAI API).")
    group.add_argument("--max_retries", type=int, default=5, help="-c: retries after errors or short answers.")
    group.add_argument("--retry_delay", type=float, default=1.0, help="-c: first backoff delay in seconds (doubles).")
    group.add_argument("--timeout", type=float, default=60.0, help="-c: seconds to wait for one API answer.")
    group.add_argument("--max_tokens", type=int, help="-c and the FinQA teacher: most tokens one answer may take "
                       "(default 256 + 64 per asked example for -c, 512 for the teacher).")
    group.add_argument("--files", nargs="+", help="-t: skill example files, e.g. examples/skills/*_examples.txt.")
    group.add_argument("--test_file", help="-t: where the held-out split goes (default data/skills/test.json, "
                       "test.jsonl with --format openai).")
    group.add_argument("--test_fraction", type=float, default=0.1, help="-t: held-out share per skill (0: none).")
    group.add_argument("--seed", type=int, default=42, help="-t: seed of the held-out split.")
    group.add_argument("--format", choices=SKILL_FORMATS, default="prompt_completion",
                       help="-t: prompt_completion (a JSON list of prompt/completion/skill records) or openai (JSONL "
                       "of OpenAI chat fine-tuning records: messages with tool_calls, and the skills as JSON schema "
                       "tools); both hold out the same requests.")
    group.add_argument("--no_call_skill", default="other", help="-t --format openai: the skill that means 'no skill "
                       "applies'; its examples become assistant replies without a tool call ('' keeps it a tool).")
    group.add_argument("--no_call_reply", default=SKILL_NO_CALL_REPLY,
                       help="-t --format openai: the assistant reply of a no-call example.")


def skill_generation_messages(skill, count):
    shown = skill["examples"][:40]
    examples = "\n".join(
        f"### User: {e['user']}\n### Assistant: {format_skill_call(e['name'], e['arguments'])}" for e in shown
    )
    system = (
        "You write training data for a small voice-assistant model that turns one transcribed spoken request into "
        "exactly one function call. Call the tool add_examples with your examples."
    )
    user = (
        f"The skill:\n{skill['signature']}\n{skill['description']}\n\nExisting examples:\n{examples}\n\n"
        f"Write {count} NEW examples for {skill['name']}(). Each `user` is one request as a speech recogniser would "
        "transcribe it: vary phrasing, length, politeness, casual speech and typos, and use new places, topics and "
        "values; never repeat an existing request. Each `assistant` is exactly one call like "
        f'{skill["name"]}(key="value") with keyword arguments (text in double quotes, numbers and True/False bare), '
        "only the argument names in the signature, and values copied from the request as written (leave an optional "
        "argument out when the request does not give it)."
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def skill_generation_tool():
    pair = {
        "type": "object",
        "properties": {"user": {"type": "string"}, "assistant": {"type": "string"}},
        "required": ["user", "assistant"],
        "additionalProperties": False,
    }
    return {
        "type": "function",
        "function": {
            "name": SKILL_TOOL,
            "description": "Add new request -> function call training examples.",
            "parameters": {
                "type": "object",
                "properties": {"examples": {"type": "array", "items": pair}},
                "required": ["examples"],
                "additionalProperties": False,
            },
            "strict": True,
        },
    }


def extract_generated_pairs(response):
    """The list of {user, assistant} from a tool call (or, from servers that ignore tools, the message content)."""
    message = response.choices[0].message
    calls = [c for c in (message.tool_calls or []) if c.function.name == SKILL_TOOL]
    text = calls[0].function.arguments if calls else message.content
    if not text:
        raise ValueError("no tool call in the answer")
    answer = json.loads(text)
    if not isinstance(answer, dict) or not isinstance(answer.get("examples"), list):
        raise ValueError("the tool arguments have no 'examples' list")
    return answer["examples"]


def validate_generated_pair(pair, skill, seen):
    """(example, None) for a good pair, else (None, reason); `seen` holds the keys of every request so far."""
    if not isinstance(pair, dict) or not all(isinstance(pair.get(key), str) for key in ("user", "assistant")):
        return None, "malformed_example"
    user = re.sub(r"^###\s*User\s*:", "", pair["user"]).strip()
    answer = re.sub(r"^###\s*Assistant\s*:", "", pair["assistant"]).strip()
    if "\n" in user or "\n" in answer:
        return None, "multiline"
    try:
        name, arguments = parse_skill_call(answer)
    except ValueError as error:
        return None, str(error)
    if name != skill["name"]:
        return None, "wrong_skill"
    reason = check_skill_example(user, name, arguments, {name: skill}, copy_check=True)
    if reason:
        return None, reason
    if skill_key(user) in seen:
        return None, "duplicate"
    seen.add(skill_key(user))
    return {"user": user, "call": format_skill_call(name, arguments)}, None


def request_generated_pairs(client, args, skill, count):
    """One API request -> pairs; raises RuntimeError(reason) for anything worth retrying."""
    import openai

    try:
        response = client.chat.completions.create(
            model=args.model,
            messages=skill_generation_messages(skill, count),
            tools=[skill_generation_tool()],
            tool_choice={"type": "function", "function": {"name": SKILL_TOOL}},
            temperature=1.0,
            # an example is about 30 tokens of JSON; the bound keeps a server that never stops (a small local model,
            # which transformers serve lets write 1,024 tokens by default) from running on
            max_tokens=args.max_tokens or 256 + 64 * count,
        )
    except openai.RateLimitError:
        raise RuntimeError("rate_limit") from None
    except openai.APITimeoutError:
        raise RuntimeError("timeout") from None
    except openai.APIConnectionError:
        raise RuntimeError("connection_error") from None
    except openai.InternalServerError:
        raise RuntimeError("server_error") from None
    except openai.APIStatusError as error:
        fail(
            f"the API at {args.base_url or 'api.openai.com'} answered HTTP {error.status_code} "
            f"({str(error)[:120]}); check --model, --base_url and OPENAI_API_KEY"
        )
    except openai.APIResponseValidationError:
        raise RuntimeError("malformed_answer") from None
    try:
        return extract_generated_pairs(response)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError, RecursionError):
        raise RuntimeError("malformed_answer") from None


def create_skill_examples(args):
    from openai import OpenAI  # imported here so the other modes start without loading the API client

    if not args.file:
        fail("-c needs --file examples/skills/<skill>_examples.txt")
    if args.n_generations < 1 or args.max_retries < 0:
        fail("--n_generations must be at least 1 and --max_retries at least 0")
    api_key = os.environ.get("OPENAI_API_KEY")
    if not api_key:
        fail("-c needs the API key in OPENAI_API_KEY (any non-empty value for a local server)")
    skill = parse_skill_file(args.file)
    # the client's own retries are off: ours count every failure by reason and back off exponentially
    client = OpenAI(api_key=api_key, base_url=args.base_url, max_retries=0, timeout=args.timeout)
    seen = {skill_key(example["user"]) for example in skill["examples"]}
    valid, rejected, failures = [], Counter(), 0
    for attempt in range(args.max_retries + 1):
        if len(valid) >= args.n_generations:
            break
        try:
            pairs = request_generated_pairs(client, args, skill, args.n_generations - len(valid))
        except RuntimeError as error:
            rejected[str(error)] += 1
            failures += 1
            if attempt < args.max_retries:
                time.sleep(min(args.retry_delay * 2 ** (failures - 1), 60))
            continue
        for pair in pairs:
            example, reason = validate_generated_pair(pair, skill, seen)
            if reason:
                rejected[reason] += 1
            elif len(valid) < args.n_generations:
                valid.append(example)
    blocks = "".join(f"### User: {e['user']}\n### Assistant: {e['call']}\n\n" for e in valid)
    if args.append and valid:
        # re-read right before writing: whatever the file holds now is kept, the new examples only go after it
        current = Path(args.file).read_text(encoding="utf-8").rstrip("\n") + "\n\n"
        if not any(SKILL_HEADER.match(line.strip()) and "generated" in line.lower() for line in current.splitlines()):
            current += "#### Generated Examples:\n\n"
        write_text_atomic(args.file, current + blocks.rstrip("\n") + "\n")
    elif valid:
        sys.stdout.write(blocks)
    reasons = ", ".join(f"{reason}={count}" for reason, count in sorted(rejected.items())) or "none"
    where = f" (appended to {args.file})" if args.append and valid else ""
    print(f"generated {len(valid)} valid{where}, rejected: {reasons}", file=sys.stderr)
    if not valid:
        fail(f"no valid examples for {skill['name']}() after {args.max_retries + 1} requests; see the reasons above")


def collect_skill_examples(args):
    if not args.files:
        fail("-t needs --files examples/skills/*_examples.txt")
    if not 0 <= args.test_fraction < 1:
        fail(f"--test_fraction must be in [0, 1), got {args.test_fraction}")
    skills = {}
    for path in args.files:
        skill = parse_skill_file(path)
        if skill["name"] in skills:
            fail(f"{path}: skill {skill['name']}() is defined again (first in {skills[skill['name']]['path']})")
        skills[skill["name"]] = skill
    records, first_seen = [], {}
    for skill in skills.values():
        for example in skill["examples"]:
            where = f"{skill['path']}:{example['line']}"
            reason = check_skill_example(example["user"], example["name"], example["arguments"], skills, False)
            if reason:
                fail(f"{skill['path']}:{example['answer_line']}: the answer {SKILL_REASONS[reason]}")
            call = format_skill_call(example["name"], example["arguments"])
            key = skill_key(example["user"])
            if key in first_seen:
                if first_seen[key][1] != call:
                    fail(f"{where}: the same request has another answer at {first_seen[key][0]}; keep one")
                logger.warning("%s: skipping a repeated request (first at %s)", where, first_seen[key][0])
                continue
            first_seen[key] = (where, call)
            records.append({"skill": example["name"], "user": example["user"], "arguments": example["arguments"]})
    if not records:
        fail("no examples in " + ", ".join(args.files))
    # one split for both formats: it depends only on each record's skill and position
    train, test = split_skill_records(records, args.test_fraction, args.seed)
    test_file = args.test_file or ("data/skills/test.jsonl" if args.format == "openai" else "data/skills/test.json")
    if args.format == "openai":
        train, test = (skill_openai_records(part, skills, args) for part in (train, test))
        if args.test_fraction > 0:
            write_text_atomic(test_file, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in test))
        sys.stdout.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in train)
    else:
        train, test = ([skill_completion_record(r, skills) for r in part] for part in (train, test))
        if args.test_fraction > 0:
            write_json_atomic(test_file, test)
        json.dump(train, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    held = f", {len(test)} held out in {test_file}" if args.test_fraction > 0 else ""
    logger.info("collected %d examples of %d skills (%s): %d to stdout%s", len(records), len(skills), args.format,
                len(train), held)


# ---------------------------------------------------------------------------------------------------------------------
# Text-to-SQL (issue 6)
# ---------------------------------------------------------------------------------------------------------------------


SQL_INSTRUCTION = "Write an SQLite query that answers the question, using the tables below."
SQL_TEST_SPLITS = ("test", "eval", "validation", "valid", "dev")
SQL_FILE_SUFFIXES = (".json", ".jsonl", ".parquet", ".csv")


def add_text2sql_arguments(parser):
    group = parser.add_argument_group("text-to-SQL")
    group.add_argument("--sql_data", help="question/context/answer (sql-create-context) or input/output "
                       "(Llama-2-SQL-Dataset) records: a .json/.jsonl/.parquet/.csv file or a hub dataset name.")
    group.add_argument("--sql_split", default="train", help="--sql_data: hub split to train on.")
    group.add_argument("--sql_test_data", help="--sql_data: test file (default: the sibling file with 'train' "
                       "replaced by 'test' in its name, e.g. stage2_train.json -> stage2_test.json).")
    group.add_argument("--sql_test_split", help="--sql_data: hub test split (default: the first of "
                       + ", ".join(SQL_TEST_SPLITS) + " that exists).")
    group.add_argument("--sql_test_fraction", type=float, default=0.1,
                       help="--sql_data: share held out as test when there is no test file or split.")
    group.add_argument("--sql_group_by", metavar="FIELD", help="--sql_data: hold out whole groups of records that "
                       "share this field (e.g. db_id: no test database is seen in training) when there is no test "
                       "file or split.")
    group.add_argument("--sql_max_records", type=int, help="--sql_data: keep at most this many train records.")
    group.add_argument("--sql_max_test_records", type=int, help="--sql_data: keep at most this many test records.")
    group.add_argument("--sql_seed", type=int, default=42, help="--sql_data: seed for the held-out split and caps.")
    group.add_argument("--sql_held_out_split", default="test", metavar="NAME",
                       help="--sql_data: name of the split held out of the training records (e.g. validation: "
                       "tuning and the loss curve read it, while a test file or split, such as Spider's dev.json, "
                       "is still written as test).")
    group.add_argument("--sql_database_dir", metavar="DIR",
                       help="--sql_data: real SQLite databases, DIR/<db_id>/<db_id>.sqlite (default: a Spider "
                       "folder's database/): every record's db_id must have one (see --sql_missing_databases).")
    group.add_argument("--sql_missing_databases", choices=["fail", "drop"], default="fail",
                       help="--sql_data with --sql_database_dir: a record whose db_id has no database there fails "
                       "the run (fail) or is left out with a count (drop).")
    group.add_argument("--sql_sample_values", type=int, default=0, metavar="N",
                       help="--sql_data with --sql_database_dir: schema linking: add the N most frequent values of "
                       "every text column to the prompt (a 'Values:' line after the tables, still part of the "
                       "prefix shared by a database's questions).")


def sql_prompt(context, question, values=""):
    # kept short: every prompt token costs CPU time during training and evaluation. The schema (and its values) come
    # first, so that a database's questions share one token prefix, computed once per batch (sft.py's prefix packing)
    values = f"\nValues: {values}" if values else ""
    return f"{SQL_INSTRUCTION}\nTables: {context.strip()}{values}\nQuestion: {question.strip()}\nSQL:"


def sql_sections(text):
    """'### Header:' sections of an already built prompt, e.g. {'instruction': ..., 'input': ..., 'response': ''}."""
    parts = re.split(r"^\s*###\s*([A-Za-z ]+?)\s*:\s*", text, flags=re.MULTILINE)
    return {header.strip().lower(): body.strip() for header, body in zip(parts[1::2], parts[2::2])}


def sql_create_statements(text):
    return "; ".join(m.strip() for m in re.findall(r"CREATE\s+TABLE\s+[^;()]+\([^()]*\)", text, flags=re.IGNORECASE))


def read_sql_file(path):
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SQL_FILE_SUFFIXES:
        fail(f"{path}: unsupported file type '{suffix}'; use one of {', '.join(SQL_FILE_SUFFIXES)}")
    if suffix in (".parquet", ".csv"):
        import pandas

        try:
            frame = pandas.read_parquet(path) if suffix == ".parquet" else pandas.read_csv(path, keep_default_na=False)
        except Exception as error:  # pandas raises many types for unreadable files
            fail(f"{path}: cannot read {suffix[1:]} file: {error}")
        return frame.to_dict("records")
    return [record for _, _, record in read_json_rows(path, json_list=suffix == ".json")]


def load_sql_hub(name, split, test_split):
    """(train records, test records or None) from a hub dataset; offline runs need it in the local cache."""
    dataset = load_hub_dataset(name, "--sql_data")
    if split not in dataset:
        fail(f"hub dataset '{name}' has no split '{split}'; splits: {', '.join(dataset)} (use --sql_split)")
    if test_split and test_split not in dataset:
        fail(f"hub dataset '{name}' has no split '{test_split}'; splits: {', '.join(dataset)} (use --sql_test_split)")
    test_split = test_split or next((s for s in SQL_TEST_SPLITS if s in dataset and s != split), None)
    return list(dataset[split]), (list(dataset[test_split]) if test_split else None)


def sql_record(record, where):
    """One prompt/completion record from question/context/answer or input/output columns; a db_id (Spider) is kept,
    so that eval.py --sql_database_dir can also run the queries on the real database."""
    if not isinstance(record, dict):
        fail(f"{where}: expected an object with question/context/answer fields, found {type(record).__name__}")
    converted = sql_fields(record, where)
    if record.get("db_id") is not None:
        converted["db_id"] = str(record["db_id"])
    return converted


def sql_single_spaces(sql):
    """Runs of white space outside quoted strings and names as one space. Spider's queries are written with two spaces
    around operators ("age  >  56"), and Spider's questions reach sets without a db_id (sql-create-context): tokens a
    model would learn and generate for nothing."""
    parts = re.split(r"""('(?:[^']|'')*'|"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\])""", sql)
    return "".join(part if i % 2 else re.sub(r"\s+", " ", part) for i, part in enumerate(parts)).strip()


def sql_fields(record, where):
    if all(isinstance(record.get(key), str) for key in ("question", "context", "answer")):
        context, question, answer = record["context"], record["question"], sql_single_spaces(record["answer"])
        return {"prompt": sql_prompt(context, question), "completion": answer, "context": context,
                "question": question}
    if all(isinstance(record.get(key), str) for key in ("input", "output")):
        text, answer = record["input"], sql_single_spaces(record["output"])
        sections = sql_sections(text)
        context = sql_create_statements(text)
        # rebuild our own short prompt when the built one can be taken apart, so both training stages see one format
        if "context" in sections and "input" in sections:
            question = sections["input"]
        elif "input" in sections and "instruction" in sections and sql_create_statements(sections["input"]):
            question = sections["instruction"]
        else:
            question = None
        if context and question:
            return {"prompt": sql_prompt(context, question), "completion": answer, "context": context,
                    "question": question}
        return {"prompt": text.rstrip(), "completion": answer, "context": context}
    found = ", ".join(sorted(map(str, record))) or "none"
    fail(f"{where}: needs string fields question, context, answer (sql-create-context) or input, output "
         f"(Llama-2-SQL-Dataset); found: {found}")


def held_out_indices(count, share, rng):
    """A seeded share of range(count), the indices held out of training: the first of a shuffled order."""
    order = list(range(count))
    rng.shuffle(order)
    return set(order[:round(count * share)])


def sql_sample(records, limit, rng):
    if limit is None or len(records) <= limit:
        return records
    return [records[i] for i in sorted(rng.sample(range(len(records)), limit))]


def sql_held_out(records, name, args, rng):
    """Indices of the records held out of training (--sql_held_out_split): a deterministic share, so that held-out
    questions are never trained on; with --sql_group_by whole groups (Spider's practice: dev databases are not train
    databases), picked in a seeded order until the share is reached."""
    n_test = round(len(records) * args.sql_test_fraction)
    field, split = args.sql_group_by, args.sql_held_out_split
    if not field:
        logger.info("held out %d of %d records as %s (--sql_test_fraction)", n_test, len(records), split)
        return held_out_indices(len(records), args.sql_test_fraction, rng)
    groups = {}
    for i, record in enumerate(records):
        if record.get(field) is None:
            fail(f"{name} record {i}: no field '{field}' for --sql_group_by (add it to every record, or drop "
                 "--sql_group_by)")
        groups.setdefault(str(record[field]), []).append(i)
    if n_test and len(groups) < 2:
        fail(f"{name}: all {len(records)} records share {field} '{next(iter(groups), '')}': cannot hold out a group "
             "(give --sql_test_data, or drop --sql_group_by)")
    order = sorted(groups)  # sorted first: the seed alone decides the order, not the order of the records
    rng.shuffle(order)
    held, n_groups = set(), 0
    # the last group always stays in train, even when it alone is bigger than the share
    while len(held) < n_test and n_groups < len(order) - 1:
        held.update(groups[order[n_groups]])
        n_groups += 1
    logger.info("held out %d of %d %s groups, %d of %d records as %s (--sql_group_by, --sql_test_fraction %g)",
                n_groups, len(groups), field, len(held), len(records), split, args.sql_test_fraction)
    return held


# Spider's own layout (issue 29): train_spider.json (db_id, question, query), tables.json (each database's tables and
# columns) and database/<db_id>/<db_id>.sqlite; dev.json, where present, is its test split (databases of its own).
SPIDER_TRAIN_FILE = "train_spider.json"
SPIDER_TEST_FILE = "dev.json"
SPIDER_TABLES_KEYS = ("db_id", "table_names_original", "column_names_original", "column_types")


def is_spider_folder(folder):
    return (folder / "tables.json").is_file() or (folder / SPIDER_TRAIN_FILE).is_file()


def spider_name(name):
    return name if re.fullmatch(r"[A-Za-z_]\w*", name) else '"' + name.replace('"', '""') + '"'


def spider_schemas(path):
    """{db_id: "CREATE TABLE t (column TYPE, ...); ..."} from Spider's tables.json, typed as sql-create-context
    writes Spider's schemas (number -> INTEGER, everything else VARCHAR)."""
    schemas = {}
    for i, entry in enumerate(read_sql_file(path)):
        if not isinstance(entry, dict) or any(key not in entry for key in SPIDER_TABLES_KEYS):
            fail(f"{path} entry {i}: needs fields {', '.join(SPIDER_TABLES_KEYS)} (Spider's tables.json)")
        columns = {t: [] for t in range(len(entry["table_names_original"]))}
        try:
            for (table, column), kind in zip(entry["column_names_original"], entry["column_types"]):
                if table >= 0:  # column 0 is Spider's "*"
                    columns[table].append(f"{spider_name(column)} {'INTEGER' if kind == 'number' else 'VARCHAR'}")
        except (KeyError, TypeError, ValueError):
            fail(f"{path} entry {i} ({entry['db_id']}): column_names_original must be [table index, name] pairs "
                 "of its tables")
        schemas[str(entry["db_id"])] = "; ".join(
            f"CREATE TABLE {spider_name(name)} ({', '.join(columns[t])})"
            for t, name in enumerate(entry["table_names_original"]))
    return schemas


def spider_records(path, schemas):
    """question/context/answer/db_id records from a Spider question file (train_spider.json, dev.json)."""
    records = []
    for i, record in enumerate(read_sql_file(path)):
        where = f"{path} record {i}"
        if not isinstance(record, dict) or not all(isinstance(record.get(k), str) for k in ("db_id", "question",
                                                                                               "query")):
            fail(f"{where}: needs string fields db_id, question, query (Spider layout)")
        if record["db_id"] not in schemas:
            fail(f"{where}: db_id '{record['db_id']}' has no schema in tables.json (add its entry, or remove the "
                 "question)")
        records.append({"question": record["question"], "context": schemas[record["db_id"]],
                        "answer": record["query"], "db_id": record["db_id"]})
    return records


def read_spider_folder(folder):
    """(train records, name, test records or None, name) of a Spider-layout folder."""
    tables = folder / "tables.json"
    if not tables.is_file():
        fail(f"--sql_data {folder}: no tables.json (Spider's layout: {SPIDER_TRAIN_FILE}, tables.json and "
             "database/<db_id>/<db_id>.sqlite); add it, or give a sql-create-context file")
    train_path, test_path = folder / SPIDER_TRAIN_FILE, folder / SPIDER_TEST_FILE
    if not train_path.is_file():
        fail(f"--sql_data {folder}: tables.json without {SPIDER_TRAIN_FILE} (the training questions)")
    schemas = spider_schemas(tables)
    test = spider_records(test_path, schemas) if test_path.is_file() else None
    return spider_records(train_path, schemas), str(train_path), test, str(test_path)


def sql_sources(args):
    """(train raw records, their name, test raw records or None, their name) from --sql_data: a Spider-layout folder,
    a file (with a sibling test file), a folder of split files or a hub dataset."""
    source = Path(args.sql_data)
    if source.is_dir() and is_spider_folder(source):
        return read_spider_folder(source)
    if source.is_dir():
        source = next((source / n for n in ("train.json", "train.jsonl", "train.parquet") if (source / n).is_file()),
                      source)
    if source.is_file():
        sibling = source.with_name(source.name.replace("train", "test"))
        test_path = Path(args.sql_test_data) if args.sql_test_data else sibling
        if args.sql_test_data and not test_path.is_file():
            fail(f"--sql_test_data {test_path}: file not found")
        if test_path.is_file() and test_path != source:
            logger.info("test split: %s", test_path)
            return read_sql_file(source), str(source), read_sql_file(test_path), str(test_path)
        return read_sql_file(source), str(source), None, None
    if source.is_dir():
        fail(f"--sql_data {source}: folder without train.json, train.jsonl or train.parquet (or Spider's "
             f"{SPIDER_TRAIN_FILE} and tables.json)")
    if source.suffix.lower() in SQL_FILE_SUFFIXES or args.sql_data.count("/") != 1:
        fail(f"--sql_data {args.sql_data}: file not found (or give a hub name like b-mc2/sql-create-context)")
    train_raw, test_raw = load_sql_hub(args.sql_data, args.sql_split, args.sql_test_split)
    return train_raw, f"{args.sql_data}[{args.sql_split}]", test_raw, f"{args.sql_data}[test]"


def sql_database_dir(args):
    """--sql_database_dir, or a Spider folder's database/, or None."""
    if args.sql_database_dir:
        if not Path(args.sql_database_dir).is_dir():
            fail(f"--sql_database_dir {args.sql_database_dir}: no such folder (expected <db_id>/<db_id>.sqlite inside)")
        return Path(args.sql_database_dir)
    default = Path(args.sql_data) / "database"
    return default if default.is_dir() else None


def sql_with_databases(records, name, database_dir, policy):
    """Indices of the records whose db_id has DIR/<db_id>/<db_id>.sqlite: the first without one fails the run (policy
    fail) or all such are left out, counted (drop)."""
    kept, dropped = [], Counter()
    for i, record in enumerate(records):
        db_id = record.get("db_id")
        if db_id is None:
            fail(f"{name} record {i}: no db_id, so no database in {database_dir} (drop --sql_database_dir)")
        if re.fullmatch(r"[\w.-]+", db_id) and db_id not in (".", "..") and (
                database_dir / db_id / f"{db_id}.sqlite").is_file():
            kept.append(i)
        elif policy == "fail":
            fail(f"{name} record {i}: db_id '{db_id}' has no database {database_dir}/{db_id}/{db_id}.sqlite (add "
                 "it, or --sql_missing_databases drop to leave its questions out)")
        else:
            dropped[db_id] += 1
    if dropped:
        logger.warning("%s: left out %d questions of %d databases without a database in %s (%s)", name,
                       sum(dropped.values()), len(dropped), database_dir, ", ".join(sorted(dropped)))
    return kept


def sql_column_values(path, limit):
    """'table.column: 'a', 'b'; ...': the `limit` most frequent short text values of every column of a database
    (schema linking: they show which column holds a value the question names, and how it is spelled)."""
    import sqlite3

    conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    parts = []
    try:
        tables = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT "
                                                   "LIKE 'sqlite_%' ORDER BY rowid")]
        for table in tables:
            quoted = '"' + table.replace('"', '""') + '"'
            for column in [row[1] for row in conn.execute(f"PRAGMA table_info({quoted})")]:
                name = '"' + column.replace('"', '""') + '"'
                values = [value for (value,) in conn.execute(
                    f"SELECT {name} FROM {quoted} WHERE typeof({name}) = 'text' AND length(trim({name})) BETWEEN 1 "
                    f"AND 40 GROUP BY {name} ORDER BY COUNT(*) DESC, {name} LIMIT ?", (limit,))]
                if values:
                    parts.append(f"{table}.{column}: " + ", ".join("'" + v.replace("'", "''") + "'" for v in values))
    except sqlite3.Error as error:
        fail(f"{path}: cannot read the database ({error})")
    finally:
        conn.close()
    return "; ".join(parts)


def sql_add_values(splits, database_dir, limit):
    """Rebuild the prompts of records with a question and a db_id with their database's column values."""
    values = {}
    for records in splits.values():
        for record in records:
            if "question" in record and record.get("db_id") is not None:
                db_id = record["db_id"]
                if db_id not in values:
                    values[db_id] = sql_column_values(database_dir / db_id / f"{db_id}.sqlite", limit)
                record["prompt"] = sql_prompt(record["context"], record["question"], values[db_id])
    logger.info("added up to %d column values of %d databases to the prompts (--sql_sample_values)", limit,
                len(values))


def sql_splits(args, rng):
    """{split name: records}: train, the held-out split (--sql_held_out_split) unless a test source fills it, and
    test from a test source."""
    train_raw, train_name, test_raw, test_name = sql_sources(args)
    train = [sql_record(r, f"{train_name} record {i}") for i, r in enumerate(train_raw)]
    test = None if test_raw is None else [sql_record(r, f"{test_name} record {i}") for i, r in enumerate(test_raw)]
    database_dir = sql_database_dir(args)
    if args.sql_sample_values and database_dir is None:
        fail("--sql_sample_values reads the values from the databases: give --sql_database_dir")
    if database_dir is not None:
        keep = sql_with_databases(train, train_name, database_dir, args.sql_missing_databases)
        train_raw, train = [train_raw[i] for i in keep], [train[i] for i in keep]
        if test is not None:
            test = [test[i] for i in sql_with_databases(test, test_name, database_dir, args.sql_missing_databases)]
    held_name = args.sql_held_out_split
    splits = {"train": train}
    if test_raw is None or held_name != "test":
        held = sql_held_out(train_raw, train_name, args, rng)
        splits = {"train": [r for i, r in enumerate(train) if i not in held],
                  held_name: [r for i, r in enumerate(train) if i in held]}
    elif args.sql_group_by:
        logger.info("--sql_group_by %s unused: the test split comes from %s", args.sql_group_by, test_name)
    if test is not None:
        splits["test"] = test
    if not train:
        fail(f"{train_name}: no records")
    if args.sql_sample_values:
        sql_add_values(splits, database_dir, args.sql_sample_values)
    return splits


def prepare_text2sql(args):
    if not args.output_dir:
        fail("--sql_data needs --output_dir, e.g. --output_dir data/text2sql")
    if not 0 <= args.sql_test_fraction < 1:
        fail(f"--sql_test_fraction must be in [0, 1), got {args.sql_test_fraction}")
    if not re.fullmatch(r"[A-Za-z]\w*", args.sql_held_out_split) or args.sql_held_out_split == "train":
        fail(f"--sql_held_out_split {args.sql_held_out_split}: give a split name such as test or validation")
    rng = random.Random(args.sql_seed)
    splits = sql_splits(args, rng)
    for split, records in splits.items():
        splits[split] = sql_sample(records, args.sql_max_records if split == "train" else args.sql_max_test_records,
                                   rng)
        for i, record in enumerate(splits[split]):
            record["id"] = f"sql-{split}-{i}"
    if args.sql_group_by:  # a held-out database is never trained on: checked, not only assumed
        trained = {str(r.get(args.sql_group_by)) for r in splits["train"]}
        for split, records in splits.items():
            shared = split != "train" and trained & {str(r.get(args.sql_group_by)) for r in records}
            if shared:
                logger.warning("%s shares %d %s values with train (e.g. %s): it does not measure unseen groups",
                               split, len(shared), args.sql_group_by, sorted(shared)[0])
    output_dir = Path(args.output_dir)
    for split, records in splits.items():
        write_text_atomic(output_dir / f"{split}.json", json.dumps(records, indent=1, ensure_ascii=False) + "\n")
    remove_stale_splits(output_dir, [output_dir / f"{split}.json" for split in splits], ".json",
                        [args.sql_data, args.sql_test_data])
    everything = [r for records in splits.values() for r in records]
    rebuilt = sum("question" in r for r in everything)
    logger.info("wrote %s to %s (%d with our prompt, %d with the source's prompt)",
                ", ".join(f"{len(records)} {split}" for split, records in splits.items()), output_dir, rebuilt,
                len(everything) - rebuilt)


# ---------------------------------------------------------------------------------------------------------------------
# Tool calling: public layouts -> OpenAI tools/tool_calls records (issue 30)
# ---------------------------------------------------------------------------------------------------------------------

# copy of sft.py:SHAREGPT_ROLES — keep identical (tests/test_copies.py)
# ShareGPT speakers -> chat roles; function_call turns are the assistant's calls, observation turns their results.
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "function_call": "assistant", "observation": "tool", "tool": "tool"}


# copies of sft.py:without_nulls..chat_messages — keep identical (tests/test_copies.py)
def without_nulls(value):
    """Drop the null fields Arrow adds when it merges differently shaped objects into one struct column."""
    if isinstance(value, dict):
        return {key: without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [without_nulls(item) for item in value]
    return value


def json_value(value, error, hint=""):
    """A field written as a JSON string or as the value itself (OpenAI and ShareGPT files use both) -> the value.
    Raises ValueError(error (reason)hint) for a string that is not JSON."""
    if not isinstance(value, str):
        return without_nulls(value)
    try:
        return json.loads(value)
    except json.JSONDecodeError as reason:
        raise ValueError(f"{error} ({reason.msg}){hint}") from None


def parse_tools(value):
    """A record's `tools` (a list, or its JSON string) -> [{"type": "function", "function": {name, description,
    parameters}}]; plain schemas (ShareGPT/Glaive) are wrapped. Raises ValueError naming what is wrong."""
    if value is None or value == "" or value == []:
        return []
    value = json_value(value, "tools is not valid JSON", "; write it as a JSON list of function schemas")
    if not isinstance(value, list):
        raise ValueError(f"tools is a {type(value).__name__}; expected a list of function schemas")
    tools, names = [], set()
    for index, tool in enumerate(value):
        function = tool.get("function", tool) if isinstance(tool, dict) else tool
        if not isinstance(function, dict):
            raise ValueError(f"tools[{index}] is a {type(function).__name__}; expected a function schema object "
                             '{"name": ..., "description": ..., "parameters": {"type": "object", ...}}')
        name = function.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"tools[{index}] has no function name")
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        if isinstance(parameters, str):
            try:
                parameters = json.loads(parameters)
            except json.JSONDecodeError:
                parameters = None
        if (not isinstance(parameters, dict) or parameters.get("type", "object") != "object"
                or not isinstance(parameters.get("properties", {}), dict)):
            raise ValueError(f"tools[{index}] ({name}): parameters is not a JSON schema object; expected "
                             '{"type": "object", "properties": {...}, "required": [...]}')
        if name in names:
            raise ValueError(f"tools[{index}]: the function {name} is listed twice")
        names.add(name)
        tools.append({"type": "function", "function": {"name": name, "description": function.get("description") or "",
                                                       "parameters": parameters}})
    return tools


def parse_tool_call(call, where, tool_names):
    """One call (OpenAI {"function": {"name", "arguments"}} or plain {"name", "arguments"}) -> OpenAI form with the
    arguments as an object. Raises ValueError naming the call."""
    function = call.get("function", call) if isinstance(call, dict) else None
    if not isinstance(function, dict):
        raise ValueError(f"{where} is not a call object; expected " + '{"type": "function", "function": '
                         '{"name": ..., "arguments": "{...}"}}')
    name = function.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{where} has no function name")
    arguments = function.get("arguments")
    if arguments is None or arguments == "":
        arguments = {}
    else:
        arguments = json_value(arguments, f"{where} ({name}): arguments are not valid JSON")
    if not isinstance(arguments, dict):
        raise ValueError(f"{where} ({name}): arguments must be a JSON object of named values")
    if name not in tool_names:
        raise ValueError(f"{where} calls {name}, which is not in the record's tools "
                         f"({', '.join(sorted(tool_names)) or 'none given'}); add its schema to tools or fix the name")
    parsed = {"id": str(call["id"])} if isinstance(call, dict) and call.get("id") else {}
    return {**parsed, "type": "function", "function": {"name": name, "arguments": arguments}}


def sharegpt_calls(value, where):
    """A ShareGPT function_call turn's value: one {"name", "arguments"} object or a list of them, as JSON."""
    try:
        calls = json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError as error:
        raise ValueError(f"{where}: the function_call is not valid JSON ({error.msg})")
    return calls if isinstance(calls, list) else [calls]


def chat_messages(record):
    """A `messages` or ShareGPT `conversations` record (with optional `tools`) -> (messages, tools) in OpenAI form.

    Assistant calls keep `tool_calls` with arguments as objects (what chat templates expect); tool results are `tool`
    turns. Raises ValueError naming the turn when a call or schema is malformed."""
    tools = parse_tools(record.get("tools"))
    names = {tool["function"]["name"] for tool in tools}
    if record.get("messages") is not None:
        turns = [(turn.get("role"), turn, f"messages[{index}]") for index, turn in enumerate(record["messages"])]
    else:
        turns = [(SHAREGPT_ROLES.get(turn.get("from"), turn.get("from")), turn, f"conversations[{index}]")
                 for index, turn in enumerate(record["conversations"])]
    messages = []
    for role, turn, where in turns:
        if "from" in turn:  # ShareGPT
            content = turn.get("value")
            if turn.get("from") == "function_call":
                calls = [parse_tool_call(call, f"{where}[{n}]", names)
                         for n, call in enumerate(sharegpt_calls(content, where))]
                messages.append({"role": "assistant", "content": "", "tool_calls": calls})
                continue
        else:
            content = turn.get("content")
        if content is not None and not isinstance(content, str):
            content = json.dumps(content, ensure_ascii=False)  # a tool result given as an object
        message = {"role": role, "content": content or ""}
        if role == "assistant" and turn.get("tool_calls"):
            message["tool_calls"] = [parse_tool_call(call, f"{where}.tool_calls[{n}]", names)
                                     for n, call in enumerate(turn["tool_calls"])]
        elif role == "tool" and turn.get("tool_call_id"):
            message["tool_call_id"] = str(turn["tool_call_id"])
        messages.append(message)
    if messages and messages[-1]["role"] == "tool":
        raise ValueError("the conversation ends on a tool result; end it with the assistant's answer or drop that turn")
    return messages, tools



# Python-style parameter types (xLAM, Seal-Tools) -> JSON Schema types; JSON Schema's own names map to themselves.
# Parsed by hand (python_type_schema), not evaluated into typing objects for pydantic: the strings are public data.
TOOLS_TYPE_NAMES = {
    "str": "string", "string": "string", "text": "string", "date": "string", "datetime": "string", "time": "string",
    "int": "integer", "integer": "integer", "long": "integer",
    "float": "number", "double": "number", "decimal": "number", "number": "number",
    "bool": "boolean", "boolean": "boolean",
    "list": "array", "array": "array", "tuple": "array", "set": "array", "sequence": "array", "iterable": "array",
    "dict": "object", "object": "object", "mapping": "object",
    "none": "null", "nonetype": "null", "null": "null",
}
TOOLS_FORMATS = ("auto", "openai", "sharegpt", "xlam", "sealtools")
TOOLS_FILE_SUFFIXES = (".json", ".jsonl")
# Seal-Tools names an earlier call's response in an argument: "API_call_1", "API_call_0 response".
SEALTOOLS_RESPONSE = re.compile(r"\bAPI_call_\d+\b")
TOOLS_DROP_EXAMPLES = 3


class ToolsRowDropped(Exception):
    """A row of a public set that we do not train on, for a counted reason; not an error in the file."""


def add_tools_arguments(parser):
    group = parser.add_argument_group("tool calling")
    group.add_argument("--tools_data", nargs="+", metavar="SOURCE", help="Tool-calling records in any layout "
                       "below, converted to OpenAI messages/tools/tool_calls JSONL in --output_dir; one or more of: a "
                       ".json/.jsonl file (train, with a held-out test share), a folder whose .json/.jsonl files are "
                       "the splits (named by file), a hub name; SOURCE=SPLIT puts a whole source in SPLIT. Splits of "
                       "the same name from several sources are joined.")
    group.add_argument("--tools_splits", default="", metavar="OLD=NEW,...", help="--tools_data: rename the splits "
                       "of folders and hub sets; several may become one, e.g. for Seal-Tools "
                       "dev=train,test_in_domain=train,test_out_domain=test_unseen_functions. A "
                       "test_unseen_functions split keeps only rows whose calls use no function that a split not "
                       "named test* offers.")
    group.add_argument("--tools_format", choices=TOOLS_FORMATS, default="auto", help="--tools_data layout: openai "
                       "(messages + tools), sharegpt (conversations with function_call turns, Glaive), xlam (query, "
                       "tools, answers as JSON strings), sealtools (query, calling + a tool.jsonl of schemas); auto "
                       "tells them apart by their fields.")
    group.add_argument("--tools_schemas", help="--tools_format sealtools: the tool.jsonl of api_name/parameters "
                       "schemas (default: tool.jsonl in or beside --tools_data).")
    group.add_argument("--tools_no_call_answer", default="None of the functions offered can do that.",
                       help="--tools_data: the assistant's text for xLAM/Seal-Tools rows that call nothing (answers "
                       "[]); empty drops those rows.")
    group.add_argument("--tools_test_fraction", type=float, default=0.1,
                       help="--tools_data file: share held out as test.jsonl (seeded by --tools_seed).")
    group.add_argument("--tools_distractors", type=int, default=0, metavar="N", help="--tools_data: offer N other "
                       "functions of the same split beside each row's own (seeded), so that a request has to choose.")
    group.add_argument("--tools_no_call_share", type=float, default=0.0, help="--tools_data: add a copy of this share "
                       "of the single-request rows (seeded) that offers only --tools_distractors other functions and "
                       "answers with --tools_no_call_answer: requests the tools offered cannot serve.")
    group.add_argument("--tools_seed", type=int, default=42, help="--tools_data: seed for the held-out share, the "
                       "distractors and the no-call copies.")


def type_arguments(text):
    """'str, Any' -> ['str', 'Any'], keeping commas inside brackets ('Dict[str, int], optional' has two parts)."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    return [part.strip() for part in parts + [text[start:]]]


def python_type_schema(text):
    """A Python-style type -> (JSON Schema, optional): 'int', 'List[str]', 'Optional[float]', 'str, optional',
    'int, default=5', 'Union[int, str]', 'str | None'. None for a type JSON Schema has no word for (Callable...)."""
    text = str(text or "").strip()
    if "|" in text and "[" not in text:
        text = f"Union[{text.replace('|', ',')}]"
    head, *rest = type_arguments(text)
    optional = any(part.lower() == "optional" or part.lower().startswith("default") for part in rest)
    match = re.fullmatch(r"(\w*)\s*(?:\[(.*)\])?", head, flags=re.DOTALL)
    if not match or (rest and not optional):
        return None
    name, inner = match.group(1).lower(), match.group(2)
    if name in ("optional", "union") and inner:
        members = [python_type_schema(part) for part in type_arguments(inner)]
        if None in members:
            return None
        schemas = [schema for schema, _ in members if schema != {"type": "null"}]
        optional = optional or name == "optional" or len(schemas) < len(members)
        if len(schemas) == 1 or not all(set(schema) == {"type"} for schema in schemas):
            return (schemas[0] if len(schemas) == 1 else {"anyOf": schemas}), optional
        return {"type": [schema["type"] for schema in schemas]}, optional
    if name in ("", "any"):
        return {}, optional
    if name not in TOOLS_TYPE_NAMES:
        return None
    schema = {"type": TOOLS_TYPE_NAMES[name]}
    items = type_arguments(inner) if inner and schema["type"] == "array" else []
    if items and len(set(items)) == 1:  # List[str], Tuple[int, int]; mixed tuples stay untyped
        item = python_type_schema(items[0])
        if item is None:
            return None
        if item[0]:
            schema["items"] = item[0]
    return schema, optional


def tools_parameters_schema(parameters, required, where):
    """A tool's parameters as a JSON Schema object: {name: {type, description, default}} (xLAM, Seal-Tools) is
    converted, a JSON Schema object is kept. Without `required` (xLAM) a parameter is required unless its type says
    optional or it has a default ("" is xLAM's "no default")."""
    if parameters in (None, "", [], {}):
        return {"type": "object", "properties": {}}
    if isinstance(parameters, dict) and parameters.get("type") == "object" and "properties" in parameters:
        return parameters
    if not isinstance(parameters, dict):
        raise ValueError(f"{where}: parameters is a {type(parameters).__name__}; expected "
                         '{"name": {"type": ..., "description": ...}} or a JSON Schema object')
    properties, needed = {}, []
    for name, field in parameters.items():
        if not isinstance(field, dict):
            raise ValueError(f"{where}: parameter {name} is a {type(field).__name__}; expected "
                             '{"type": ..., "description": ...}')
        mapped = python_type_schema(field.get("type"))
        if mapped is None:
            raise ToolsRowDropped(f"a parameter type JSON Schema has no word for ({field.get('type')!r})")
        schema, optional = mapped
        if field.get("description"):
            schema["description"] = str(field["description"])
        has_default = field.get("default") not in (None, "")
        if has_default:
            schema["default"] = field["default"]
        if "enum" in field:
            schema["enum"] = field["enum"]
        properties[name] = schema
        if required is None and not optional and not has_default:
            needed.append(name)
    required = needed if required is None else required
    if not isinstance(required, list) or not set(required) <= set(properties):
        raise ValueError(f"{where}: required must list parameter names; {required!r} names others")
    return {"type": "object", "properties": properties, "required": list(required)}


def value_fits(value, schema):
    """Whether a value can be of its parameter's JSON Schema type. A number written as text ("5") fits a numeric
    type: eval.py's tool_call_match counts it equal, and Seal-Tools holds 131 such values in its three splits."""
    kind = schema.get("type") if isinstance(schema, dict) else None
    if value is None or not isinstance(kind, str):
        return True
    if kind in ("integer", "number") and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return False
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool) or isinstance(value, float) and value.is_integer()
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool) or str(value).lower() in ("true", "false")
    expected = {"string": str, "array": list, "object": dict}.get(kind)
    return expected is None or isinstance(value, expected)


def check_call_arguments(messages, tools):
    """Drop (not stop on) calls that teach a wrong habit and can never be matched: an argument the function does not
    declare, a required one left out, a value that cannot be of its declared type. Public sets hold a few of each."""
    schemas = {tool["function"]["name"]: tool["function"]["parameters"] for tool in tools}
    for message in messages:
        for call in message.get("tool_calls") or []:
            function = call["function"]
            schema = schemas[function["name"]]
            properties = schema.get("properties") or {}
            if set(function["arguments"]) - set(properties):
                raise ToolsRowDropped("a call passes an argument its function does not declare")
            if set(schema.get("required") or []) - set(function["arguments"]):
                raise ToolsRowDropped("a call leaves out a required argument")
            if not all(value_fits(value, properties[key]) for key, value in function["arguments"].items()):
                raise ToolsRowDropped("an argument's value cannot be of its declared type")


def request_record(query, tools, calls, where, no_call_answer):
    """One request and its calls (in order, one assistant turn) as an OpenAI record; raises ValueError for a call to
    a function the row does not offer or arguments that are not a JSON object."""
    if not isinstance(query, str) or not query.strip():
        raise ValueError("query is missing or empty")
    tools = parse_tools(tools)
    names = {tool["function"]["name"] for tool in tools}
    if calls and not names:
        raise ValueError("the row calls functions but gives no tool schema; add the functions' schemas to its tools")
    calls = [parse_tool_call(call, f"{where}[{n}]", names) for n, call in enumerate(calls)]
    if calls:
        answer = {"role": "assistant", "content": "", "tool_calls": calls}
    elif no_call_answer:
        answer = {"role": "assistant", "content": no_call_answer}
    else:
        raise ToolsRowDropped("calls nothing and --tools_no_call_answer is empty")
    messages = [{"role": "user", "content": query.strip()}, answer]
    check_call_arguments(messages, tools)
    return messages, tools


def xlam_record(record, args):
    """xLAM: query, tools (JSON string of {name, description, parameters}), answers (JSON string of [{name,
    arguments}]; [] asks for no call, as in xlam-irrelevance)."""
    tools = json_value(record.get("tools"), "tools is not valid JSON")
    answers = json_value(record.get("answers"), "answers is not valid JSON")
    if not isinstance(tools, list):
        raise ValueError("tools must be a JSON list of function schemas")
    if not isinstance(answers, list):
        raise ValueError('answers must be a JSON list of {"name": ..., "arguments": {...}}')
    tools = [{**tool, "parameters": tools_parameters_schema(tool.get("parameters"), None, f"tools[{n}]")}
             if isinstance(tool, dict) else tool for n, tool in enumerate(tools)]
    return request_record(record.get("query"), tools, answers, "answers", args.tools_no_call_answer)


def sealtools_record(record, args, schemas):
    """Seal-Tools: query and calling [{api, parameters, responses}]; each called api's schema comes from tool.jsonl.
    A call whose argument names an earlier call's response is dropped: without that response it teaches a guess."""
    calling = record.get("calling")
    if not isinstance(calling, list):
        raise ValueError('calling must be a list of {"api": ..., "parameters": {...}}')
    tools, calls = {}, []
    for n, call in enumerate(calling):
        api = call.get("api") if isinstance(call, dict) else None
        if not isinstance(api, str) or api not in schemas:
            raise ValueError(f"calling[{n}] calls {api!r}, which has no schema in {args.tools_schemas}; add it "
                             "there or fix the name")
        if isinstance(schemas[api], str):
            raise ToolsRowDropped(schemas[api])
        arguments = call.get("parameters")
        if SEALTOOLS_RESPONSE.search(json.dumps(arguments)):
            raise ToolsRowDropped("a call uses an earlier call's response (nested)")
        tools.setdefault(api, schemas[api])
        calls.append({"name": api, "arguments": arguments})
    return request_record(record.get("query"), list(tools.values()), calls, "calling", args.tools_no_call_answer)


def read_sealtools_schemas(path):
    """tool.jsonl -> {api_name: function schema, or the drop reason of the rows that call it}."""
    schemas = {}
    for _, where, record in read_tools_file(path):
        name = record.get("api_name")
        if not isinstance(name, str) or not name.strip():
            fail(f"{where}: no api_name; every line of the tool file names its function")
        try:
            parameters = tools_parameters_schema(record.get("parameters"), record.get("required") or [], name)
            schemas[name] = {"name": name, "description": str(record.get("api_description") or ""),
                             "parameters": parameters}
        except ToolsRowDropped as reason:
            schemas[name] = str(reason)
        except ValueError as error:
            fail(f"{where}: {error}")
    return schemas


def read_tools_file(path):
    """read_json_rows of a .json list or a .jsonl file (told apart by the first character), every record an object."""
    rows = read_json_rows(path)
    for _, where, record in rows:
        if not isinstance(record, dict):
            fail(f"{where}: a JSON {type(record).__name__}, not an object with named fields")
    return rows


def tools_layout(record, path, wanted):
    if wanted != "auto":
        return wanted
    if "messages" in record:
        return "openai"
    if "conversations" in record:
        return "sharegpt"
    if "query" in record and "answers" in record:
        return "xlam"
    if "query" in record and "calling" in record:
        return "sealtools"
    fail(f"{path}: cannot tell the layout from the fields {sorted(record)}; expected messages (OpenAI), conversations "
         "(ShareGPT), query+answers (xLAM) or query+calling (Seal-Tools), or give --tools_format")


def convert_tools_record(record, layout, args, schemas):
    """(messages, tools) of one row in any layout; raises ToolsRowDropped or ValueError."""
    if layout in ("openai", "sharegpt"):
        if record.get("messages" if layout == "openai" else "conversations") is None:
            raise ValueError(f"no {'messages' if layout == 'openai' else 'conversations'} field")
        messages, tools = chat_messages(record)
        if not any(message["role"] == "assistant" for message in messages):
            raise ToolsRowDropped("no assistant turn to train on")
        check_call_arguments(messages, tools)
        return messages, tools
    if layout == "xlam":
        return xlam_record(record, args)
    return sealtools_record(record, args, schemas)


def convert_tools_rows(label, rows, args, schemas, drops):
    """The rows of one split as OpenAI records (call arguments as JSON strings, OpenAI's own form) with their ids."""
    layout = tools_layout(rows[0][2], label, args.tools_format) if rows else args.tools_format
    if layout == "sealtools" and schemas is None:
        fail(f"{label}: Seal-Tools rows need their tool.jsonl: put it beside the file or give --tools_schemas")
    converted = []
    for number, where, record in rows:
        try:
            messages, tools = convert_tools_record(record, layout, args, schemas)
        except ToolsRowDropped as reason:
            drops.setdefault(str(reason), []).append(where)
            continue
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            fail(f"{where}: {error}")
        for message in messages:
            for call in message.get("tool_calls", []):
                call["function"]["arguments"] = json.dumps(call["function"]["arguments"], ensure_ascii=False)
        record_id = record.get("id")
        converted.append({"id": str(f"{Path(label).stem}-{number}" if record_id is None else record_id),
                          "messages": messages, "tools": tools})
    logger.info("%s: %d of %d rows kept (%s layout)", label, len(converted), len(rows), layout)
    return converted


def tools_pick(pool, count, exclude, rng):
    """`count` tools of the pool whose names are not in `exclude`, in a seeded order (sampled, not filtered: a pool
    of thousands of functions and a hundred thousand rows)."""
    names = rng.sample(pool, min(len(pool), count + len(exclude)))
    return [tool for tool in names if tool["function"]["name"] not in exclude][:count]


def mix_tools_rows(rows, split, args):
    """Distractors beside each row's functions, and no-call copies of a share of the single-request rows; both drawn
    from the split's own functions, so no held-out function reaches training."""
    if not args.tools_distractors:
        return rows
    rng = random.Random(f"{args.tools_seed}-{split}")
    pool = list({tool["function"]["name"]: tool for row in rows for tool in row["tools"]}.values())
    single = [row for row in rows if row["messages"][-1].get("tool_calls")
              and [m["role"] for m in row["messages"] if m["role"] != "system"] == ["user", "assistant"]]
    no_calls = []
    for row in rng.sample(single, round(len(single) * args.tools_no_call_share)):
        own = {tool["function"]["name"] for tool in row["tools"]}
        answer = {"role": "assistant", "content": args.tools_no_call_answer}
        no_calls.append({"id": f"{row['id']}-no-call", "messages": row["messages"][:-1] + [answer],
                         "tools": tools_pick(pool, args.tools_distractors, own, rng)})
    for row in rows:
        own = {tool["function"]["name"] for tool in row["tools"]}
        tools = row["tools"] + tools_pick(pool, args.tools_distractors, own, rng)
        row["tools"] = rng.sample(tools, len(tools))  # the function to call is not always first
    logger.info("%s: up to %d distractors per row, %d no-call copies added", split, args.tools_distractors,
                len(no_calls))
    return rows + no_calls


def tools_split_names(text):
    """'dev=train,test_out_domain=test_unseen_functions' -> {old: new}; a one-line error for anything else."""
    renames = {}
    for pair in filter(None, (part.strip() for part in text.split(","))):
        old, _, new = pair.partition("=")
        if not (old.strip() and re.fullmatch(r"[\w.-]+", new.strip())):
            fail(f"--tools_splits {text}: {pair!r} is not OLD=NEW (split names: letters, digits, _ . -)")
        renames[old.strip()] = new.strip()
    return renames


def tools_source_split(source):
    """'path=split' -> ('path', 'split'); a source without a split name after its last '=' -> (source, None)."""
    name, _, split = source.rpartition("=")
    return (name, split) if name and re.fullmatch(r"[\w.-]+", split) else (source, None)


def drop_seen_functions(splits, drops):
    """test_unseen_functions keeps rows whose calls use only functions no training split (not named test*) offers:
    public sets' "unseen" splits share functions with the rest (590 of Seal-Tools' 1,034 out-of-domain functions are
    in its dev or in-domain test), and a score on them would not be on functions never trained."""
    seen = {tool["function"]["name"] for split, rows in splits.items() if not split.startswith("test")
            for row in rows for tool in row["tools"]}
    kept = []
    for row in splits["test_unseen_functions"]:
        called = {call["function"]["name"] for message in row["messages"] for call in message.get("tool_calls", [])}
        if called & seen:
            drops.setdefault("test_unseen_functions: calls a function a training split offers", []).append(row["id"])
        else:
            kept.append(row)
    splits["test_unseen_functions"] = kept


def tools_sources(name, schemas_path):
    """{split: (label, [(row number, where, record)])}: a folder's .json/.jsonl files by name (not the schema file),
    one file as train, or a hub dataset's splits (offline runs need it in the local cache)."""
    source = Path(name)
    if source.is_file():
        return {"train": (str(source), read_tools_file(source))}
    if source.is_dir():
        files = [p for p in sorted(source.iterdir()) if p.suffix in TOOLS_FILE_SUFFIXES and p.resolve() != schemas_path]
        if not files:
            fail(f"--tools_data {source}: the folder has no .json or .jsonl files")
        return {p.stem: (str(p), read_tools_file(p)) for p in files}
    if source.suffix in TOOLS_FILE_SUFFIXES or name.startswith((".", "/")) or name.count("/") != 1:
        fail(f"--tools_data {name}: no such file or folder (or give a hub name like "
             "Salesforce/xlam-function-calling-60k)")
    dataset = load_hub_dataset(name, "--tools_data")
    return {split: (f"{name}[{split}]", [(number, f"{name}[{split}] record {number}", record)
                                        for number, record in enumerate(dataset[split], 1)]) for split in dataset}


def prepare_tools(args):
    if not args.output_dir:
        fail("--tools_data needs --output_dir, e.g. --output_dir data/tools")
    if not 0 <= args.tools_test_fraction < 1:
        fail(f"--tools_test_fraction must be in [0, 1), got {args.tools_test_fraction}")
    if args.tools_distractors < 0 or not 0 <= args.tools_no_call_share <= 1:
        fail("--tools_distractors must be >= 0 and --tools_no_call_share in [0, 1]")
    if args.tools_no_call_share and not (args.tools_distractors and args.tools_no_call_answer):
        fail("--tools_no_call_share needs --tools_distractors N >= 1 (the functions its copies offer) and a "
             "--tools_no_call_answer")
    sources = [tools_source_split(source) for source in args.tools_data]
    renames = tools_split_names(args.tools_splits)
    folders = [Path(name) if Path(name).is_dir() else Path(name).parent for name, _ in sources]
    beside = [folder / "tool.jsonl" for folder in folders if (folder / "tool.jsonl").is_file()]
    args.tools_schemas = args.tools_schemas or (beside[0] if beside else None)
    if args.tools_schemas and not Path(args.tools_schemas).is_file():
        fail(f"--tools_schemas {args.tools_schemas}: file not found")
    schemas = read_sealtools_schemas(args.tools_schemas) if args.tools_schemas else None
    schemas_path = Path(args.tools_schemas).resolve() if args.tools_schemas else None
    drops, splits = {}, {}
    for name, whole in sources:
        found = {split: convert_tools_rows(label, rows, args, schemas, drops)
                 for split, (label, rows) in tools_sources(name, schemas_path).items()}
        if whole:
            found = {whole: [row for rows in found.values() for row in rows]}
        elif set(found) == {"train"} and args.tools_test_fraction:  # a file, or a hub set with a train split alone
            rows = found.pop("train")
            held = held_out_indices(len(rows), args.tools_test_fraction, random.Random(args.tools_seed))
            found = {"train": [r for i, r in enumerate(rows) if i not in held],
                     "test": [r for i, r in enumerate(rows) if i in held]}
        for split, rows in found.items():
            splits.setdefault(renames.get(split, split), []).extend(rows)
    if "test_unseen_functions" in splits:
        drop_seen_functions(splits, drops)
    splits = {split: mix_tools_rows(rows, split, args) for split, rows in splits.items()}
    if not any(splits.values()):
        fail(f"--tools_data {' '.join(args.tools_data)}: no row left to write ({sum(map(len, drops.values()))} "
             "dropped)")
    for split, rows in splits.items():
        path = Path(args.output_dir) / f"{split}.jsonl"
        write_jsonl(path, rows)
        logger.info("%s: %d records -> %s", split, len(rows), path)
    remove_stale_splits(args.output_dir, [Path(args.output_dir) / f"{split}.jsonl" for split in splits], ".jsonl",
                        [*(name for name, _ in sources), args.tools_schemas])
    for reason, places in sorted(drops.items(), key=lambda item: -len(item[1])):
        logger.info("dropped %d rows: %s (e.g. %s)", len(places), reason, ", ".join(places[:TOOLS_DROP_EXAMPLES]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", help="Folder for the prepared splits: FinQA's train/dev/test.jsonl (default "
                        "data/finqa), --sql_data's <split>.json and --tools_data's <split>.jsonl (both need it).")
    add_finqa_arguments(parser)
    add_skills_arguments(parser)
    add_text2sql_arguments(parser)
    add_tools_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.create:
        create_skill_examples(args)
    elif args.collect:
        collect_skill_examples(args)
    elif args.finqa_dir or getattr(args, "convfinqa_dir", None):
        prepare_finqa(args)
    elif args.sql_data:
        prepare_text2sql(args)
    elif args.tools_data:
        prepare_tools(args)
    else:
        parser.error("choose a mode: --finqa_dir/--convfinqa_dir, -c, -t, --sql_data or --tools_data")


if __name__ == "__main__":
    main()
