"""Host-side judging: comparators, job validation, and runner records -> TestResults / RunResult.

The sandbox never sees an expected output or value: the runner returns what each program printed
or returned (as plain data) and the comparison happens here, in the trainer's process.
"""
from __future__ import annotations

import ast
import math
import re

from .codec import Unserialisable, decode_value, encode_value
from .types import PASSED, RUNTIME_ERROR, STATUSES, WRONG_ANSWER, Job, RunResult, TestResult

_WS = " \t\r\f\v"
_TOKEN = re.compile(r"[^ \t\n\r\f\v]+")
FLOAT_REL_TOL = 1e-9


def _lines(text: str) -> list[str]:
    lines = [line.rstrip(_WS) for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def lines_equal(got: str, expected: str) -> bool:
    """Exact line comparison. Only trailing whitespace on each line and trailing blank lines are
    ignored: a missing or extra line fails, and numbers compare as text (1e+18 is not
    1000000000000000001)."""
    return _lines(got) == _lines(expected)


def tokens_equal(got: str, expected: str) -> bool:
    """The same sequence of whitespace-separated (ASCII whitespace) tokens, compared as text."""
    return _TOKEN.findall(got) == _TOKEN.findall(expected)


def output_diff(got: str, expected: str, compare: str = "lines") -> str:
    """A short explanation of the first difference."""
    a, b = (_lines(got), _lines(expected)) if compare == "lines" else \
        (_TOKEN.findall(got), _TOKEN.findall(expected))
    unit = "line" if compare == "lines" else "token"
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"{unit} {i + 1}: expected {y[:80]!r}, got {x[:80]!r}"
    return f"expected {len(b)} {unit}s, got {len(a)}"


def values_equal(actual, expected) -> bool:
    """Python equality on plain data, except: a float expected value accepts relative error
    1e-9 (NaN equals NaN); a list accepts a tuple (JSON has no tuples) but a tuple needs a
    tuple. `actual` must be plain data decoded on the host (no program objects reach here)."""
    te = type(expected)
    if te is float:
        if type(actual) is float or type(actual) is int:
            if math.isnan(expected) or (type(actual) is float and math.isnan(actual)):
                return type(actual) is float and math.isnan(actual) and math.isnan(expected)
            return math.isclose(actual, expected, rel_tol=FLOAT_REL_TOL)
        return False
    if te is list or te is tuple:
        ok_types = (list, tuple) if te is list else (tuple,)
        return (type(actual) in ok_types and len(actual) == len(expected)
                and all(values_equal(a, e) for a, e in zip(actual, expected)))
    if te is dict:
        return (type(actual) is dict and actual.keys() == expected.keys()
                and all(values_equal(actual[k], expected[k]) for k in expected))
    if te is complex:
        return type(actual) in (complex, float, int) and values_equal(
            complex(actual).real, expected.real) and values_equal(complex(actual).imag, expected.imag)
    return actual == expected


def count_assert_tests(code: str) -> int:
    """Upper bound on the tests of assert-style test code (its top-level statements)."""
    try:
        return max(1, len(ast.parse(code).body))
    except SyntaxError:
        return 1


def validate(job: Job) -> None:
    """Refuse a malformed job before it reaches a sandbox (ValueError / TypeError)."""
    kinds = [name for name, on in (("io", bool(job.io)), ("calls", bool(job.calls)),
                                   ("asserts", job.asserts is not None),
                                   ("cpp_driver", job.cpp_driver is not None)) if on]
    if len(kinds) > 1:
        raise ValueError(f"a job has one kind of tests, got {', '.join(kinds)}")
    if kinds and job.stdin is not None:
        raise ValueError("stdin is for plain runs; io tests carry their own inputs")
    if job.language == "cpp" and kinds and kinds[0] in ("calls", "asserts"):
        raise ValueError(f"{kinds[0]} tests need language='python' (C++: io tests or cpp_driver)")
    if job.language == "python" and job.cpp_driver is not None:
        raise ValueError("cpp_driver needs language='cpp'")
    for t in job.io:
        if not (isinstance(t.input, str) and isinstance(t.output, str)):
            raise TypeError("IOTest input and output must be str")
    for c in job.calls:
        if not (isinstance(c.func, str) and c.func.isidentifier()):
            raise ValueError(f"CallTest.func must be an identifier, got {c.func!r}")
        if not isinstance(c.args, (list, tuple)):
            raise TypeError(f"CallTest.args must be a list, got {type(c.args).__name__}")
        try:
            [encode_value(a) for a in c.args]
        except Unserialisable as e:
            raise TypeError(f"CallTest.args must be plain data: {e}") from None
    if job.asserts is not None:
        if not isinstance(job.asserts.code, str) or not job.asserts.code.strip():
            raise ValueError("AssertTests.code must be non-empty test code")
        try:
            ast.parse(job.asserts.code)
        except SyntaxError as e:
            raise ValueError(f"AssertTests.code does not parse: {e}") from None


_RUNNER_FINAL = set(STATUSES) - {PASSED}


def build_result(job: Job, answer: dict, backend: str, time_s: float) -> RunResult:
    """Runner records + the expected values (host only) -> RunResult. Raises ValueError (or
    KeyError/TypeError) on a record that does not fit the job: the caller treats that as a
    broken session, never as a pass."""
    recs = answer["results"]
    expected_n = len(job.io) or len(job.calls) or (None if job.asserts is not None else 1)
    if not isinstance(recs, list) or not recs or (expected_n is not None and len(recs) != expected_n):
        raise ValueError(f"expected {expected_n or 'some'} records, got {len(recs)}")
    self_judged = job.asserts is not None or job.cpp_driver is not None
    tests = []
    for i, r in enumerate(recs):
        status = r["status"]
        allowed = _RUNNER_FINAL | ({PASSED} if self_judged else {"ok"})
        if status not in allowed:
            raise ValueError(f"record {i}: status {status!r} not allowed here")
        exit_code = r.get("exit_code")
        t = TestResult(status=status, time_s=float(r.get("time_s", 0.0)), stdout=str(r.get("stdout", "")),
                       stderr=str(r.get("stderr", "")), exit_code=exit_code if type(exit_code) is int else None,
                       detail=str(r.get("detail", "")))
        if status == "ok":
            _judge_ok(job, i, r, t)
        tests.append(t)
    first_bad = next((t.status for t in tests if t.status != PASSED), PASSED)
    return RunResult(status=first_bad, tests=tests, compile_output=str(answer.get("compile_output", "")),
                     time_s=time_s, backend=backend)


def _judge_ok(job: Job, i: int, r: dict, t: TestResult) -> None:
    """A program that ran to completion (exit 0 / returned): compare on the host."""
    if job.io:
        exp = job.io[i].output
        same = lines_equal(t.stdout, exp) if job.compare == "lines" else tokens_equal(t.stdout, exp)
        t.status, t.detail = (PASSED, "") if same else (WRONG_ANSWER, output_diff(t.stdout, exp, job.compare))
    elif job.calls:
        try:
            actual = decode_value(r["value"])
        except (KeyError, ValueError) as e:
            t.status, t.detail = RUNTIME_ERROR, f"no usable return value: {e}"
            return
        exp = job.calls[i].expected
        if values_equal(actual, exp):
            t.status, t.detail = PASSED, ""
        else:
            t.status, t.detail = WRONG_ANSWER, f"returned {_short(actual)}, expected {_short(exp)}"
    else:
        t.status = PASSED            # a plain run that exited 0


def _short(v) -> str:
    s = repr(v)
    return s if len(s) <= 120 else s[:117] + "..."
