"""Code rewards: take the program from a response, run it against tests in the sandbox, score it.

    >>> from verifiers.code import code_reward
    >>> code_reward("```python\\ndef add(a, b):\\n    return a + b\\n```", tests=["assert add(1, 2) == 3"]).reward
    1.0

Test formats (exactly one per call):
- `tests`: assert-style test code (HumanEval's `check(candidate)` with `entry_point`, or MBPP's
  list of `assert` lines, one test each);
- `io`: stdin/stdout cases `[{"input": ..., "output": ...}]`, compared line by line (or by
  whitespace tokens with `compare="tokens"`);
- `call`: call-based cases `[{"func": name, "args": [...], "expected": value, "method": bool}]`
  (LiveCodeBench functional: `method=True` calls `Solution().func(*args)`).
The reward is binary (every test passed) or, with `partial=True`, the fraction passed (open-r1).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from sandbox.types import PASSED, SANDBOX_ERROR, AssertTests, CallTest, IOTest, Job, Limits, RunResult

from .extract import _strip_think

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+#.-]*)[^\n]*\n(.*?)```", re.S)
_LANG_TAGS = {"python": {"python", "py", "python3"}, "cpp": {"cpp", "c++", "cc", "cxx"}}


def extract_code(response: str, language: str = "python") -> str | None:
    """The last fenced code block of the response (preferring blocks tagged with `language`),
    or None. Code inside an unclosed <think> block does not count."""
    if not isinstance(response, str):
        raise TypeError(f"response must be a str, got {type(response).__name__}")
    text = _strip_think(response)
    if text is None:
        return None
    blocks = _FENCE.findall(text)
    tagged = [code for tag, code in blocks if tag.lower() in _LANG_TAGS.get(language, ())]
    untagged = [code for tag, code in blocks if not tag]
    chosen = tagged or untagged
    return chosen[-1] if chosen else None


@dataclass
class CodeVerdict:
    reward: float
    passed: int
    total: int
    status: str                       # passed, or the first failing test's status, or no_code
    verdicts: list[str] = field(default_factory=list)
    detail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _call_case(c: dict) -> CallTest:
    if not isinstance(c, dict):
        raise ValueError(f"a call case must be an object, got {type(c).__name__}")
    func = c.get("func", c.get("fn_name"))
    missing = [k for k, v in (("func", func), ("args", c.get("args")), ("expected", "expected" in c or None))
               if v is None]
    if missing:
        raise ValueError(f"call case lacks {', '.join(missing)}: {c!r:.120}")
    if not isinstance(c["args"], list):
        raise ValueError(f"call case args must be a list, got {type(c['args']).__name__}")
    return CallTest(func=func, args=c["args"], expected=c["expected"], method=bool(c.get("method", False)))


def _io_case(c: dict) -> IOTest:
    if not isinstance(c, dict) or not isinstance(c.get("input"), str) or not isinstance(c.get("output"), str):
        raise ValueError(f"an io case must be {{'input': str, 'output': str}}, got {c!r:.120}")
    return IOTest(input=c["input"], output=c["output"])


def make_job(code: str, *, tests=None, io=None, call=None, language: str = "python",
             entry_point: str | None = None, compare: str = "lines") -> Job:
    """A sandbox Job for `code` and exactly one of the test formats."""
    given = [name for name, v in (("tests", tests), ("io", io), ("call", call)) if v is not None]
    if len(given) != 1:
        raise ValueError(f"give exactly one of tests, io or call (got {', '.join(given) or 'none'})")
    if tests is not None:
        if isinstance(tests, (list, tuple)):
            if not all(isinstance(t, str) for t in tests):
                raise ValueError("tests must be a str of test code or a list of str assert lines")
            tests = "\n".join(tests)
        if not isinstance(tests, str) or not tests.strip():
            raise ValueError("tests must be non-empty test code")
        return Job(code=code, language=language, asserts=AssertTests(tests, entry_point), compare=compare)
    cases = io if io is not None else call
    if not isinstance(cases, (list, tuple)) or not cases:
        raise ValueError(f"{given[0]} must be a non-empty list of cases")
    if io is not None:
        return Job(code=code, language=language, io=tuple(_io_case(c) for c in io), compare=compare)
    return Job(code=code, language=language, calls=tuple(_call_case(c) for c in call), compare=compare)


def score(result: RunResult, partial: bool = False) -> CodeVerdict:
    """Reward for a sandbox result: binary, or the fraction of tests passed."""
    total = max(result.total, 1)
    passed = result.passed if result.status != SANDBOX_ERROR else 0
    reward = passed / total if partial else float(passed == result.total and result.total > 0)
    detail = next((t.detail for t in result.tests if t.status != PASSED and t.detail), result.compile_output[:500])
    return CodeVerdict(reward, passed, result.total, result.status, [t.status for t in result.tests], detail)


def code_reward(response: str, *, tests=None, io=None, call=None, language: str = "python",
                entry_point: str | None = None, compare: str = "lines", partial: bool = False,
                limits: Limits | None = None, backend=None) -> CodeVerdict:
    """Run the last fenced code block of `response` against the tests; see the module docstring."""
    code = extract_code(response, language)
    job_for = make_job("" if code is None else code, tests=tests, io=io, call=call, language=language,
                       entry_point=entry_point, compare=compare)     # validates the tests even without code
    if code is None:
        return CodeVerdict(0.0, 0, 0, "no_code", detail="no fenced code block in the response")
    import sandbox                                                    # lazy: `import verifiers` stays light
    return score(sandbox.run(job_for, limits or Limits(), backend=backend), partial)
