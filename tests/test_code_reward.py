"""Code rewards: extraction, job building, scoring, the CLI, and the public coding samples.

Unit tests run on the local backend (fast, no Docker needed); the data sets run through the
Docker backend, the one a training run uses.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from verifiers.code import code_reward, extract_code, make_job

from _docker import docker_backend_or_skip

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "code"


def fenced(code: str, tag: str = "python") -> str:
    return f"Here is my solution.\n```{tag}\n{code}\n```\nDone."


# ---------------------------------------------------------------- extraction and jobs

def test_extract_code_takes_the_last_block_of_the_language():
    r = "```python\nprint(1)\n```\ntext\n```cpp\nint main(){}\n```\n```python\nprint(2)\n```"
    assert extract_code(r).strip() == "print(2)"
    assert extract_code(r, "cpp").strip() == "int main(){}"
    assert extract_code("```\nprint(3)\n```").strip() == "print(3)"       # untagged counts
    assert extract_code("no code here") is None
    assert extract_code("<think>```python\nprint(1)\n```") is None          # unclosed think
    assert extract_code("<think>x</think>```python\nprint(4)\n```").strip() == "print(4)"


@pytest.mark.parametrize("kwargs, message", [
    ({}, "exactly one of tests, io or call"),
    ({"tests": "assert f() == 1", "io": [{"input": "", "output": ""}]}, "exactly one"),
    ({"io": []}, "non-empty list"),
    ({"io": [{"input": 1, "output": "2"}]}, "io case"),
    ({"call": [{"func": "f", "args": [1]}]}, "lacks expected"),
    ({"call": [{"func": "f", "args": 1, "expected": 2}]}, "args must be a list"),
    ({"tests": ["assert f() == 1", 3]}, "list of str"),
    ({"tests": "   "}, "non-empty"),
])
def test_make_job_rejects_bad_tests(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_job("print(1)", **kwargs)


def test_no_code_scores_zero_without_running():
    v = code_reward("I think the answer is 3.", io=[{"input": "", "output": "3\n"}], backend="local")
    assert (v.reward, v.status) == (0.0, "no_code")


# ---------------------------------------------------------------- the three test formats (local backend)

def test_assert_tests_binary_and_partial():
    r = fenced("def add(a, b):\n    return a + b")
    tests = ["assert add(1, 2) == 3", "assert add(2, 2) == 5"]
    assert code_reward(r, tests=tests, backend="local").reward == 0.0
    v = code_reward(r, tests=tests, backend="local", partial=True)
    assert (v.reward, v.passed, v.total, v.verdicts) == (0.5, 1, 2, ["passed", "wrong_answer"])


def test_humaneval_style_check():
    r = fenced("def double(x):\n    return 2 * x")
    test = "def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(-1) == -2\n"
    assert code_reward(r, tests=test, entry_point="double", backend="local").reward == 1.0
    bad = fenced("def double(x):\n    return x + 2")
    assert code_reward(bad, tests=test, entry_point="double", backend="local").reward == 0.0


def test_io_tests_lines_and_tokens():
    io = [{"input": "1 2\n", "output": "3\n"}, {"input": "5 5\n", "output": "10\n"}]
    assert code_reward(fenced("print(sum(map(int, input().split())))"), io=io, backend="local").reward == 1.0
    spaced = fenced("a, b = map(int, input().split())\nprint(a + b, end='  \\n\\n')")
    assert code_reward(spaced, io=io, backend="local").reward == 1.0            # trailing blanks ignored
    two_lines = [{"input": "", "output": "1\n2\n"}]
    one_line = fenced("print(1, 2)")
    assert code_reward(one_line, io=two_lines, backend="local").reward == 0.0
    assert code_reward(one_line, io=two_lines, compare="tokens", backend="local").reward == 1.0
    assert code_reward(fenced("print(1)"), io=two_lines, backend="local").reward == 0.0   # missing line
    assert code_reward(fenced("print(1e18)"), io=[{"input": "", "output": "1000000000000000000\n"}],
                       backend="local").reward == 0.0


def test_call_tests_function_and_method():
    call = [{"func": "f", "args": [3], "expected": 6}, {"func": "f", "args": [0], "expected": 0}]
    assert code_reward(fenced("def f(x):\n    return 2 * x"), call=call, backend="local").reward == 1.0
    method = [dict(c, method=True) for c in call]
    sol = fenced("class Solution:\n    def f(self, x):\n        return 2 * x")
    assert code_reward(sol, call=method, backend="local").reward == 1.0
    lying = fenced("class Yes(int):\n    def __eq__(self, o):\n        return True\n"
                   "def f(x):\n    return Yes(1)")
    assert code_reward(lying, call=call, backend="local").reward == 0.0


def test_cpp_io():
    prog = "#include <iostream>\nint main(){long long a,b;std::cin>>a>>b;std::cout<<a+b<<\"\\n\";}"
    io = [{"input": "1000000000000000000 1\n", "output": "1000000000000000001\n"}]
    assert code_reward(fenced(prog, "cpp"), io=io, language="cpp", backend="local").reward == 1.0
    v = code_reward(fenced("int main( {", "cpp"), io=io, language="cpp", backend="local")
    assert (v.reward, v.status) == (0.0, "compile_error")


# ---------------------------------------------------------------- CLI

def test_cli_code_good_and_malformed(tmp_path):
    rows = [
        {"response": fenced("def add(a, b):\n    return a + b"), "tests": ["assert add(1, 2) == 3"]},
        {"response": fenced("print(int(input()) * 2)"), "io": [{"input": "4\n", "output": "8\n"}]},
        {"response": fenced("def f(x):\n    return x"), "call": [{"func": "f", "args": [1], "expected": 2}]},
        {"response": "no code", "tests": "assert True"},
        {"response": fenced("print(1)")},                                  # no tests: malformed
        {"tests": "assert True"},                                          # no response: malformed
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n{not json\n")
    out = tmp_path / "out.jsonl"
    p = subprocess.run([sys.executable, "-m", "verifiers", "code", str(src), "-o", str(out), "--backend", "local"],
                       capture_output=True, text=True, cwd=REPO, timeout=120)
    assert p.returncode == 0, p.stderr
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [g["reward"] for g in got] == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert got[0]["passed"] == got[0]["total"] == 1 and got[0]["verdicts"] == ["passed"]
    assert got[2]["verdicts"] == ["wrong_answer"] and got[3]["status"] == "no_code"
    assert [g["reason"].startswith("malformed") for g in got] == [False] * 4 + [True] * 3
    assert ":5: malformed line: give exactly one of tests, io or call" in p.stderr
    assert ":6: malformed line: missing response" in p.stderr and ":7: malformed line: not JSON" in p.stderr
    assert json.loads(p.stderr.strip().splitlines()[-1])["count"] == 7


# ---------------------------------------------------------------- the public samples, through Docker

@pytest.fixture(scope="module")
def docker_backend():
    b = docker_backend_or_skip(size=2)
    yield b
    b.close()


def _jsonl(path: Path):
    if not path.exists():
        pytest.skip(f"{path} missing (../shared/data is expected beside the checkout)")
    return [json.loads(line) for line in path.open()]


@pytest.mark.slow
def test_mbpp_sample_canonical_solutions_pass(docker_backend):
    rows = _jsonl(DATA / "mbpp" / "sandboxfusion_mbpp_sample.jsonl")
    for d in rows:
        setup = d["labels"].get("test_setup_code") or ""
        v = code_reward(fenced(d["canonical_solution"]), tests=[setup] * bool(setup) + d["test_list"],
                        backend=docker_backend)
        assert v.reward == 1.0, (d["id"], v)


@pytest.mark.slow
def test_livecodebench_sample_passing_and_failing(docker_backend):
    for d in _jsonl(DATA / "stdio" / "livecodebench_sandboxfusion_sample.jsonl"):
        if d["test_type"] == "stdin_stdout":
            kw = {"io": [{"input": i, "output": o} for i, o in zip(d["inputs"], d["outputs"])]}
        else:
            kw = {"call": [{"func": d["fn_name"], "args": [json.loads(a) for a in i.split("\n")],
                            "expected": json.loads(o), "method": True} for i, o in zip(d["inputs"], d["outputs"])]}
        assert code_reward(fenced(d["passing_solution"]), backend=docker_backend, **kw).reward == 1.0, d["task_id"]
        assert code_reward(fenced(d["failing_solution"]), backend=docker_backend, **kw).reward == 0.0, d["task_id"]


@pytest.mark.slow
def test_code_contests_reference_solutions(docker_backend):
    rows = {d["id"]: d for d in _jsonl(DATA / "stdio" / "code_contests_sandboxfusion_sample.jsonl")}
    ref = json.loads((DATA / "stdio" / "code_contests_reference_solutions.json").read_text())

    def io(pid):
        return [{"input": t["input"]["stdin"], "output": t["output"]["stdout"]} for t in json.loads(rows[pid]["test"])]

    for pid in (3, 14, 17):                                   # pass with line comparison (README)
        v = code_reward(fenced(ref["solutions"][str(pid)]), io=io(pid), backend=docker_backend, partial=True)
        assert v.reward == 1.0, (pid, v.status, v.detail)
    lines = code_reward(fenced(ref["solutions"]["19"]), io=io(19), backend=docker_backend, partial=True)
    tokens = code_reward(fenced(ref["solutions"]["19"]), io=io(19), compare="tokens", backend=docker_backend,
                         partial=True)
    assert (lines.passed, lines.total) == (100, 101) and tokens.reward == 1.0
    wrong = ref["known_wrong"]["17"]
    wrong_code = wrong if isinstance(wrong, str) else wrong["code"]
    assert code_reward(fenced(wrong_code), io=io(17), backend=docker_backend).reward == 0.0
