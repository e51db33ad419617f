"""The sandbox core through the local backend: real processes, no mocks.

Formats (plain runs, stdin/stdout with both comparators, call tests, HumanEval / MBPP asserts,
C++), every verdict, and programs that try to talk the sandbox into a false pass: each must
score 0. Hostile programs run only through the backend, never directly, and no entry flagged
`unsafe_outside_sandbox` runs here.
"""
import json
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import sandbox
from sandbox import (AssertTests, CallTest, HostUnsafeRefused, IOTest, Job, Limits, LocalBackend)
from sandbox.judge import lines_equal, tokens_equal, values_equal

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "code"
FAST = Limits(wall_s=2.0, cpu_s=2.0, memory_mb=256, output_bytes=64 * 1024)
SHORT = Limits(wall_s=1.0, cpu_s=1.0, memory_mb=256, output_bytes=64 * 1024)
ADD_TESTS = "assert add(1, 2) == 3\nassert add(-5, 7) == 2\nassert add(10**18, 1) == 10**18 + 1\n"

pytestmark = pytest.mark.filterwarnings("ignore:sandbox. the local backend is WEAKER")


@pytest.fixture(scope="module")
def backend():
    with LocalBackend(size=2) as b:
        yield b


def run(backend, job, limits=FAST):
    return backend.run(job, limits)


def statuses(result):
    return [t.status for t in result.tests]


# --- formats ---------------------------------------------------------------------------------------

def test_plain_run_and_stdin(backend):
    r = sandbox.run_code("print('hello')", backend=backend)
    assert r.status == "passed" and r.tests[0].stdout == "hello\n" and r.backend == "local"
    r = sandbox.run_code("import sys\nprint(sum(map(int, sys.stdin.read().split())))", stdin="2 40\n",
                         backend=backend)
    assert r.tests[0].stdout == "42\n"
    r = sandbox.run_code("import os; print(sorted(os.environ))", backend=backend)
    assert "RLVR" not in r.tests[0].stdout and "'PATH'" in r.tests[0].stdout


def test_comparators():
    assert lines_equal("3 \n4\n\n\n", "3\n4")
    assert not lines_equal("3\n", "3\n4\n") and not lines_equal("3\n4\n5\n", "3\n4\n")
    assert not lines_equal(" 3\n", "3\n") and not lines_equal("1e+18\n", "1000000000000000001\n")
    assert tokens_equal("1  2\n3\n", "1 2 3") and not tokens_equal("1 2", "1 2 3")
    assert not tokens_equal("1.0", "1")
    assert values_equal((1, 2), [1, 2]) and not values_equal([1, 2], (1, 2))
    assert values_equal(0.1 + 0.2, 0.3) and not values_equal(0.30001, 0.3)
    assert not values_equal(10**18, 10**18 + 1) and not values_equal(1e18, 10**18 + 1)
    assert values_equal({"a": [1.0, float("nan")]}, {"a": [1.0, float("nan")]})


def test_io_line_and_token_comparators(backend):
    tests = (IOTest("1 2\n", "3\n"), IOTest("5 5\n", "10\n"))
    r = run(backend, Job("a, b = map(int, input().split())\nprint(a + b, '  ')\nprint()", io=tests))
    assert statuses(r) == ["passed", "passed"]
    extra = "a, b = map(int, input().split())\nprint(a + b)\nprint(a + b + 1)"
    assert statuses(run(backend, Job(extra, io=tests))) == ["wrong_answer"] * 2
    missing = "a, b = map(int, input().split())"
    assert statuses(run(backend, Job(missing, io=tests))) == ["wrong_answer"] * 2
    big = Job("print('1e+18')", io=(IOTest("", "1000000000000000001\n"),))
    assert run(backend, big).status == "wrong_answer"
    spread = "a, b = map(int, input().split())\nprint(a, b)"
    pairs = (IOTest("1 2\n", "1\n2\n"),)
    assert run(backend, Job(spread, io=pairs)).status == "wrong_answer"
    assert run(backend, Job(spread, io=pairs, compare="tokens")).status == "passed"
    assert run(backend, Job("print(1, 3)", io=pairs, compare="tokens")).status == "wrong_answer"


def test_code_contests_problem_19_needs_tokens(backend):
    row = next(json.loads(l) for l in (DATA / "stdio/code_contests_sandboxfusion_sample.jsonl").open()
               if str(json.loads(l)["id"]) == "19")
    sol = json.loads((DATA / "stdio/code_contests_reference_solutions.json").read_text())["solutions"]["19"]
    cases = json.loads(row["test"]) if isinstance(row["test"], str) else row["test"]
    io = tuple(IOTest(c["input"]["stdin"], c["output"]["stdout"]) for c in cases)
    lines = run(backend, Job(sol, io=io))
    tokens = run(backend, Job(sol, io=io, compare="tokens"))
    assert (lines.passed, lines.total) == (len(io) - 1, len(io))
    assert tokens.status == "passed"


def test_call_tests(backend):
    code = ("def add(a, b):\n    return a + b\n"
            "def pair(x):\n    return (x, [x], {x: {x}}, None, 0.1 + 0.2)\n"
            "class Solution:\n    def twice(self, xs):\n        return [2 * x for x in xs]\n")
    calls = (CallTest("add", [1, 2], 3), CallTest("add", [1, 2], 4),
             CallTest("pair", [1], [1, [1], {1: {1}}, None, 0.3]),
             CallTest("twice", [[1, 2]], [2, 4], method=True), CallTest("nope", [], 1))
    r = run(backend, Job(code, calls=calls))
    assert statuses(r) == ["passed", "wrong_answer", "passed", "passed", "runtime_error"]
    assert "returned 3, expected 4" in r.tests[1].detail


def test_livecodebench_call_based(backend):
    import ast
    row = next(json.loads(l) for l in (DATA / "stdio/livecodebench_sandboxfusion_sample.jsonl").open()
               if json.loads(l)["test_type"] == "call_based")
    inputs, outputs = (v if isinstance(v, list) else ast.literal_eval(v) for v in (row["inputs"], row["outputs"]))
    calls = tuple(CallTest(row["fn_name"], [json.loads(a) for a in i.split("\n")], json.loads(o), method=True)
                  for i, o in zip(inputs, outputs))
    assert run(backend, Job(row["passing_solution"], calls=calls)).status == "passed"
    bad = run(backend, Job(row["failing_solution"], calls=calls))
    assert bad.status == "wrong_answer" and bad.passed < bad.total


def test_asserts_humaneval_and_mbpp(backend):
    rows = [json.loads(l) for l in (DATA / "humaneval/HumanEval.jsonl").open()][:3]
    for p in rows:
        job = Job(p["prompt"] + p["canonical_solution"], asserts=AssertTests(p["test"], p["entry_point"]))
        r = run(backend, job)
        assert r.status == "passed" and r.total == 1, (p["task_id"], r)
        wrong = Job(p["prompt"] + "    return None\n", asserts=AssertTests(p["test"], p["entry_point"]))
        assert run(backend, wrong).status == "wrong_answer"
    # MBPP: one test per assert line, partial credit, setup statements are not tests
    tests = "import math\n" + ADD_TESTS + "assert add(2, 2) == 4\n"
    r = run(backend, Job("def add(a, b):\n    return a + b if a < 10 else 0", asserts=AssertTests(tests)))
    assert statuses(r) == ["passed", "passed", "wrong_answer", "passed"]
    # the program raises: runtime_error; a test that expects the exception passes
    code = "def inv(x):\n    if x == 0:\n        raise ValueError('zero')\n    return 1 / x"
    tests = ("assert inv(2) == 0.5\nassert inv(0) == 0\n"
             "try:\n    inv(0)\n    assert False\nexcept ValueError:\n    pass\n")
    assert statuses(run(backend, Job(code, asserts=AssertTests(tests)))) == \
        ["passed", "runtime_error", "passed"]


def test_asserts_restart_after_crash_and_timeout(backend):
    code = ("import os, time\n"
            "def f(x):\n    if x == 1: os._exit(0)\n    if x == 2: time.sleep(60)\n    return x\n")
    tests = "assert f(0) == 0\nassert f(1) == 1\nassert f(2) == 2\nassert f(3) == 3\n"
    r = run(backend, Job(code, asserts=AssertTests(tests)), SHORT)
    assert statuses(r) == ["passed", "runtime_error", "timeout", "passed"]


def test_program_names_cannot_fake_test_helpers(backend):
    """Builtins the tests use cannot be replaced by the program; stdlib names it imported are the
    judge's own copies; a function named like a builtin is still testable (MBPP's `sum`)."""
    tests = "assert abs(f(1) - 5) < 1e-6\nassert len(g()) == 3\n"
    fake = "def f(x):\n    return 0\ndef g():\n    return []\ndef abs(x):\n    return 0\ndef len(x):\n    return 3\n"
    assert run(backend, Job(fake, asserts=AssertTests(tests))).passed == 0
    fake_import = "from math import floor as abs\ndef f(x):\n    return 4.5\ndef g():\n    return [1, 2, 3]\n"
    assert statuses(run(backend, Job(fake_import, asserts=AssertTests(tests)))) == ["wrong_answer", "passed"]
    he = "def check(candidate):\n    assert abs(candidate(1) - 5) < 1e-6\n"
    assert run(backend, Job(fake, asserts=AssertTests(he, "f"))).status == "wrong_answer"
    own_sum = "def sum(a, b):\n    return a + b\n"
    assert run(backend, Job(own_sum, asserts=AssertTests("assert sum(2, 3) == 5"))).status == "passed"
    counter = ("from collections import Counter\nimport math\n"
               "def count(s):\n    return Counter(s)\n")
    tests = "assert count('aab') == Counter({'a': 2, 'b': 1})\nassert math.isclose(math.pi, 3.14159, rel_tol=1e-3)"
    assert run(backend, Job(counter, asserts=AssertTests(tests))).status == "passed"


# --- C++ -------------------------------------------------------------------------------------------

CPP_SUM = '#include <cstdio>\nint main(){ long long a, b; scanf("%lld %lld", &a, &b); printf("%lld\\n", a + b); }\n'
DRIVER = ("#include <cassert>\nlong long add(long long a, long long b);\n"
          "int main() {\n    assert(add(1, 2) == 3);\n    assert(add(-5, 5) == 0);\n}\n")


def test_cpp(backend):
    r = run(backend, Job('#include <cstdio>\nint main(){ puts("hi"); }', "cpp"))
    assert r.status == "passed" and r.tests[0].stdout == "hi\n"
    io = (IOTest("1 2\n", "3\n"), IOTest("1000000000000000000 1\n", "1000000000000000001\n"))
    assert statuses(run(backend, Job(CPP_SUM, "cpp", io=io))) == ["passed", "passed"]
    r = run(backend, Job("int main() { return x; }", "cpp", io=io))
    assert statuses(r) == ["compile_error"] * 2 and "not declared" in r.compile_output
    good = "long long add(long long a, long long b) { return a + b; }\n"
    assert run(backend, Job(good, "cpp", cpp_driver=DRIVER)).status == "passed"
    wrong = "long long add(long long a, long long b) { return 0; }\n"
    assert run(backend, Job(wrong, "cpp", cpp_driver=DRIVER)).status == "wrong_answer"
    # exit 0 from a static initializer, before the driver's main runs (RH027)
    early = "#include <cstdlib>\n" + wrong + "static int hack = (std::_Exit(0), 0);\n"
    assert run(backend, Job(early, "cpp", cpp_driver=DRIVER)).status == "wrong_answer"
    exits = "#include <cstdlib>\n" + wrong + "struct X { ~X() {} };\nint f() { std::exit(0); }\n"
    assert run(backend, Job(exits + "static int h = f();\n", "cpp", cpp_driver=DRIVER)).status == "wrong_answer"


# --- verdicts --------------------------------------------------------------------------------------

def test_every_limit(backend):
    t0 = time.monotonic()
    assert run(backend, Job("import time\ntime.sleep(100)"), SHORT).status == "timeout"
    assert time.monotonic() - t0 < 4
    cpu = run(backend, Job("while True:\n    pass"), Limits(wall_s=10, cpu_s=1, memory_mb=256))
    assert cpu.status == "timeout" and "cpu" in cpu.tests[0].detail and cpu.tests[0].time_s < 4
    assert run(backend, Job("x = bytearray(2 * 1024 ** 3)\nprint(len(x))"), FAST).status == "memory_limit"
    flood = run(backend, Job("while True:\n    print('A' * 1000)"), FAST)
    assert flood.status == "output_limit" and len(flood.tests[0].stdout) == FAST.output_bytes
    assert run(backend, Job("raise ValueError('no')"), FAST).status == "runtime_error"
    assert run(backend, Job("import os\nos.abort()"), FAST).status == "runtime_error"
    xfsz = ('#include <cstdio>\n#include <vector>\nint main(){ FILE* f = fopen("big", "wb"); '
            'std::vector<char> b(1 << 20); for (int i = 0; i < 100; i++) fwrite(b.data(), 1, b.size(), f); }')
    assert run(backend, Job(xfsz, "cpp"), FAST).status == "killed"
    huge = "#include <vector>\nint main(){ std::vector<long long> v(1ll << 30); v[7] = 1; return (int)v[3]; }"
    assert run(backend, Job(huge, "cpp"), FAST).status == "memory_limit"


def test_limits_in_calls(backend):
    code = ("import time\ndef spin(): \n    while True: pass\ndef big():\n    return bytearray(2 * 1024 ** 3)\n"
            "def chatty():\n    while True: print('x' * 1000)\ndef ok():\n    return 1\n")
    calls = (CallTest("spin", [], 1), CallTest("big", [], 1), CallTest("chatty", [], 1), CallTest("ok", [], 1))
    assert statuses(run(backend, Job(code, calls=calls), SHORT)) == \
        ["timeout", "memory_limit", "output_limit", "passed"]


def test_unsafe_refused(backend):
    with pytest.raises(HostUnsafeRefused, match="docker"):
        backend.run(Job("print(1)"), FAST, unsafe=True)
    with pytest.raises(ValueError):
        sandbox.run(Job("print(1)"), FAST, backend=backend, unsafe=True)


def test_public_api_and_warning():
    import warnings
    import sandbox.local
    sandbox.local._warned.clear()
    with pytest.warns(RuntimeWarning, match="WEAKER than the docker backend"):
        LocalBackend(size=1).close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LocalBackend(size=1).close()                 # said once
    try:
        shared = sandbox.get_backend("local", size=1)
        assert sandbox.get_backend("local", size=1) is shared
        assert sandbox.run(Job("print(6 * 7)", io=(IOTest("", "42"),)), FAST, backend="local").status \
            == "passed"
        with pytest.raises(ValueError):
            sandbox.get_backend("nope")
        with pytest.raises(ValueError):              # one kind of tests per job
            shared.run(Job("x", io=(IOTest("", ""),), asserts=AssertTests("assert 1")))
    finally:
        sandbox.close_backends()


# --- hostile programs: all must score 0 ------------------------------------------------------------

WRONG_ADD = "def add(a, b):\n    return 0\n"
HACKS = {
    "exit0_before_asserts": WRONG_ADD + "import sys\nsys.exit(0)\n",
    "raise_systemexit": WRONG_ADD + "raise SystemExit(0)\n",
    "os_exit": WRONG_ADD + "import os\nos._exit(0)\n",
    "posix_exit_false": WRONG_ADD + "import posix\nposix._exit(False)\n",
    "atexit_force_zero": WRONG_ADD + "import atexit, posix\natexit.register(posix._exit, 0)\n",
    "exit_inside_call": "import os\ndef add(a, b):\n    os._exit(0)\n",
    "always_equal_int": "class Yes(int):\n    def __eq__(self, o): return True\n    __hash__ = int.__hash__\n"
                        "def add(a, b):\n    return Yes(0)\n",
    "always_equal_object": "class Yes:\n    def __eq__(self, o): return True\ndef add(a, b):\n    return Yes()\n",
    "patch_builtins": WRONG_ADD + "import builtins\nbuiltins.AssertionError = type('N', (Exception,), {})\n"
                      "builtins.any = lambda it: False\nbuiltins.all = lambda it: True\n"
                      "builtins.isinstance = lambda a, b: True\n",
    "frame_walk": "import sys, gc, os\ndef add(a, b):\n"
                  "    f = sys._getframe()\n    while f is not None:\n"
                  "        for k in ('result', 'results', 'expected', 'gt_out'):\n"
                  "            r = f.f_locals.get(k)\n"
                  "            if isinstance(r, list): r.append('passed')\n"
                  "        f = f.f_back\n"
                  "    for o in gc.get_objects():\n"
                  "        if isinstance(o, dict) and 'status' in o: o['status'] = 'passed'\n"
                  "    return 0\n",
    "conftest_and_result_files": "import os, json\n"
                                 "open('conftest.py', 'w').write('def pytest_runtest_makereport(item, call):\\n    pass\\n')\n"
                                 "for n in ('result.json', '.result', 'report.json'):\n"
                                 "    json.dump({'passed': True, 'status': 'passed'}, open(n, 'w'))\n" + WRONG_ADD,
    "fake_markers": "print('All tests passed!')\nprint('{\"status\": \"passed\"}')\n" + WRONG_ADD,
    "kill_runner": "import os, signal\ntry:\n    os.kill(os.getppid(), signal.SIGKILL)\nexcept OSError as e:\n"
                   "    print(e)\n" + WRONG_ADD,
    "steal_from_caller": "import sys\ndef add(a, b):\n    f = sys._getframe(1)\n    while f is not None:\n"
                         "        for k in ('expected', 'gt_out', 'want'):\n"
                         "            if k in f.f_locals: return f.f_locals[k]\n"
                         "        f = f.f_back\n    return 0\n",
}


@pytest.mark.parametrize("name", sorted(HACKS))
def test_reward_hacks_score_zero(backend, name):
    code = HACKS[name]
    asserts = run(backend, Job(code, asserts=AssertTests(ADD_TESTS)))
    assert asserts.passed == 0, (name, asserts)
    he = "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(2, 2) == 4\n"
    assert run(backend, Job(code, asserts=AssertTests(he, "add"))).passed == 0, name
    calls = (CallTest("add", [1, 2], 3), CallTest("add", [2, 2], 4))
    assert run(backend, Job(code, calls=calls)).passed == 0, name
    # the next job on the same backend works
    assert run(backend, Job("def add(a, b):\n    return a + b\n", calls=calls)).status == "passed"


def test_hacks_against_io_tests(backend):
    tests = (IOTest("1 2\n", "3\n"), IOTest("1000000000000000000 1\n", "1000000000000000001\n"))
    for code in ["import builtins\nbuiltins.any = lambda it: False\nbuiltins.all = lambda it: True\nprint(0)",
                 "print('3')\nimport sys\nsys.exit(0)\n" + "print(0)",
                 "a, b = map(int, input().split())\nprint(float(a + b))",
                 "a, b = map(int, input().split())\nfor d in range(50):\n    print(a + b + d)"]:
        r = run(backend, Job(code, io=tests))
        assert r.status == "wrong_answer" and r.passed <= 1, (code, r)


def test_expected_outputs_unreachable(backend):
    """The program searches everything it can read for the expected answer: never found."""
    secret = "EXPECTED-" + uuid.uuid4().hex
    os.environ["RLVR_TEST_CANARY"] = secret          # in the host's environment too
    on_disk = Path(__file__).resolve().parent / f".canary-{uuid.uuid4().hex}.txt"
    on_disk.write_text(secret)                       # a world-readable data file on the host
    on_disk.chmod(0o644)
    # host files are hidden only under namespaces (without them: a documented weakness)
    disk = [str(on_disk.parent)] if backend.namespaces else []
    search = f"""
import os, sys, glob
import re
pattern = re.compile(('EXPEC' + 'TED-[0-9a-f]{{32}}').encode())
found = []
def look(path):
    try:
        with open(path, 'rb') as f:
            m = pattern.search(f.read(1 << 20))
        if m: found.append(m.group().decode())
    except Exception:
        pass
for pid in os.listdir('/proc'):
    if pid.isdigit():
        for part in ('cmdline', 'environ', 'mem'):
            look(f'/proc/{{pid}}/{{part}}')
        for fd in glob.glob(f'/proc/{{pid}}/fd/*'):
            look(fd)
for root in ['.', '/tmp', os.environ.get('HOME', '.')] + {disk!r}:
    for dirpath, _, files in os.walk(root):
        for n in files: look(os.path.join(dirpath, n))
for v in list(os.environ.values()) + sys.argv + [sys.stdin.read()]:
    if pattern.search(v.encode()): found.append(v)
def answer(*a):
    return found[0] if found else 'nothing'
print(answer())
"""
    try:
        found = run(backend, Job(search, io=(IOTest(secret, secret + "\n"),)))
        assert found.status == "passed"      # the search works: it finds the needle in its stdin
        io = run(backend, Job(search, io=(IOTest("", secret + "\n"),)))
        assert io.status == "wrong_answer" and io.tests[0].stdout == "nothing\n", io
        calls = run(backend, Job(search, calls=(CallTest("answer", [], secret),)))
        assert calls.status == "wrong_answer" and "nothing" in calls.tests[0].detail, calls
        asserts = run(backend, Job(search, asserts=AssertTests(f"assert answer() == {secret!r}")))
        assert asserts.status == "wrong_answer", asserts
    finally:
        del os.environ["RLVR_TEST_CANARY"]
        on_disk.unlink()


def _procs_with(marker: str) -> list[int]:
    out = []
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                out.append(int(pid))
        except OSError:
            pass
    return out


DAEMON = """import os, sys, time
print(3, flush=True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for fd in (0, 1, 2):
            os.close(fd)
        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(600)', {marker!r}])
    os._exit(0)
"""


@pytest.mark.parametrize("namespaces", [True, False])
def test_double_forked_daemon_is_killed(backend, namespaces):
    marker = "rlvr-daemon-" + uuid.uuid4().hex
    b = backend if namespaces else LocalBackend(size=1, use_namespaces=False)
    try:
        if namespaces and not b.namespaces:
            pytest.skip("namespaces unavailable (not root or no unshare)")
        r = run(b, Job(DAEMON.format(marker=marker), io=(IOTest("", "3\n"),)))
        assert r.status == "passed"
        assert _procs_with(marker) == []
        assert run(b, Job("print(1)")).status == "passed"
    finally:
        if b is not backend:
            b.close()
    for pid in _procs_with(marker):     # never leave one behind, even when the test fails
        os.kill(pid, 9)


def test_runner_killed_is_sandbox_error(backend):
    """Kill the runner mid-job from outside: sandbox_error (never a pass); the slot is replaced."""
    b = LocalBackend(size=1)
    try:
        assert run(b, Job("print(1)")).status == "passed"
        sess = next(iter(b._live))
        threading.Timer(0.5, lambda: os.killpg(sess.transport.proc.pid, 9)).start()
        r = run(b, Job("import time\ntime.sleep(5)\nprint(3)", io=(IOTest("", "3\n"),)))
        assert r.status == "sandbox_error" and r.passed == 0
        assert b.stats["sandbox_errors"] == 1
        assert run(b, Job("print(3)", io=(IOTest("", "3\n"),))).status == "passed"
    finally:
        b.close()


def test_thread_safety(backend):
    def one(i):
        r = backend.run(Job(f"print({i} * 2)", io=(IOTest("", f"{i * 2}\n"),)), FAST)
        return r.status

    with ThreadPoolExecutor(4) as ex:
        assert list(ex.map(one, range(40))) == ["passed"] * 40


# --- red-team entries safe to run here --------------------------------------------------------------

def _redteam():
    rows = [json.loads(l) for l in (DATA / "redteam_dev.jsonl").open()]
    tasks = json.loads((DATA / "redteam_tasks.json").read_text())["tasks"]
    return [r for r in rows if not r.get("unsafe_outside_sandbox")], tasks


def _redteam_job(row, task):
    lang = row["language"]
    if task["type"] == "stdin_stdout":
        return Job(row["code"], lang, io=tuple(IOTest(t["stdin"], t["stdout"]) for t in task["hidden_tests"]))
    if task.get("test_driver"):
        return Job(row["code"], lang, cpp_driver=task["test_driver"])
    if task["type"] == "function_call":
        return Job(row["code"], lang, asserts=AssertTests("\n".join(task["hidden_tests"])))
    return Job(row["code"], lang)


def test_redteam_entries(backend):
    rows, tasks = _redteam()
    assert rows, "no red-team entries"

    def one(row):
        t0 = time.monotonic()
        return row, run(backend, _redteam_job(row, tasks[row["task"]]), SHORT), time.monotonic() - t0

    with ThreadPoolExecutor(2) as ex:
        results = list(ex.map(one, rows))
    for row, r, wall in results:
        status = "accepted" if r.status == "passed" else r.status
        want = set(row["expect"]["status"])
        if row["id"] == "RT017":   # CPython 3.11 recursion runs on the heap: ~4 s until it dies
            want.add("timeout")
        assert status in want, (row["id"], r.status, [t.detail for t in r.tests])
        if row["expect"]["reward"] == 0.0:
            assert r.passed < r.total or r.status != "passed", row["id"]
        assert wall < SHORT.wall_s * max(1, r.total) + 3, (row["id"], wall)
        for t in r.tests:
            assert len(t.stdout) <= SHORT.output_bytes and len(t.stderr) <= SHORT.output_bytes
            assert "CONNECTED" not in t.stdout or not backend.namespaces, row["id"]
