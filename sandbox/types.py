"""What a sandbox run is asked to do and what it answers: plain dataclasses shared by every backend.

A Job is one program and the tests it must pass, judged in one round trip to the sandbox. The
expected answers of stdin/stdout and call tests never enter the sandbox: the sandbox returns what
the program printed or returned, and the host compares. Assert-style test code (HumanEval, MBPP)
does enter it, but runs in a judge process the program cannot reach, talking to the program only
through plain-data calls.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

# Verdict of one test. PASSED is the only one that scores.
PASSED = "passed"
WRONG_ANSWER = "wrong_answer"
RUNTIME_ERROR = "runtime_error"
TIMEOUT = "timeout"
MEMORY_LIMIT = "memory_limit"
OUTPUT_LIMIT = "output_limit"
COMPILE_ERROR = "compile_error"
KILLED = "killed"                # killed by the sandbox for another limit (pids, file size)
SANDBOX_ERROR = "sandbox_error"  # infrastructure failure: never a pass, counted, slot recycled
STATUSES = (PASSED, WRONG_ANSWER, RUNTIME_ERROR, TIMEOUT, MEMORY_LIMIT, OUTPUT_LIMIT, COMPILE_ERROR,
            KILLED, SANDBOX_ERROR)

LANGUAGES = ("python", "cpp", "c", "bash")   # calls and assert tests: python only


@dataclass(frozen=True)
class Limits:
    wall_s: float = 10.0          # per test (and per plain run), wall clock
    cpu_s: float = 10.0           # per test, CPU time (RLIMIT_CPU)
    memory_mb: int = 512          # per program (address space / container memory)
    output_bytes: int = 1 << 20   # stdout + stderr kept per test; more is truncated and flagged
    compile_s: float = 30.0       # C++ compile wall clock

    def __post_init__(self):
        for name in ("wall_s", "cpu_s", "compile_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"Limits.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("memory_mb", "output_bytes"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) > 0):
                raise ValueError(f"Limits.{name} must be a positive int, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class IOTest:
    """Feed `input` on stdin; the output must match `output` (compared on the host)."""
    input: str
    output: str


@dataclass(frozen=True)
class CallTest:
    """Call `func(*args)` (or `Solution().func(*args)` when `method=True`); the return value,
    serialised as plain JSON data inside the sandbox, must equal `expected` (compared on the host)."""
    func: str
    args: list
    expected: object
    method: bool = False


@dataclass(frozen=True)
class AssertTests:
    """Test code with asserts (HumanEval `check(candidate)` / MBPP assert lines). It runs in the
    sandbox's judge process, where the program's top-level names (and `candidate`, bound to
    `entry_point`) are proxies that call into the program's own process."""
    code: str
    entry_point: str | None = None


@dataclass(frozen=True)
class Job:
    code: str
    language: str = "python"
    io: tuple[IOTest, ...] = ()
    calls: tuple[CallTest, ...] = ()
    asserts: AssertTests | None = None
    stdin: str | None = None      # a plain run (no tests): run once with this input
    cpp_driver: str | None = None  # C++ test driver compiled with the program (its exit code judges)
    compare: str = "lines"        # io tests: "lines" (exact lines) or "tokens" (whitespace-separated tokens)

    def __post_init__(self):
        if self.compare not in ("lines", "tokens"):
            raise ValueError(f"compare must be 'lines' or 'tokens', got {self.compare!r}")
        if self.language not in LANGUAGES:
            raise ValueError(f"language must be one of {LANGUAGES}, got {self.language!r}")
        if not isinstance(self.code, str):
            raise TypeError(f"code must be a str, got {type(self.code).__name__}")
        if (self.calls or self.asserts is not None) and self.language != "python":
            raise ValueError(f"call and assert tests need python, got language {self.language!r}")
        if self.cpp_driver is not None and self.language != "cpp":
            raise ValueError(f"a cpp_driver needs language 'cpp', got {self.language!r}")


@dataclass
class TestResult:
    status: str
    time_s: float = 0.0
    stdout: str = ""              # truncated to the output cap
    stderr: str = ""
    exit_code: int | None = None
    detail: str = ""              # why it failed, short


@dataclass
class RunResult:
    status: str                   # PASSED when every test passed, else the first failing test's status
    tests: list[TestResult] = field(default_factory=list)
    compile_output: str = ""
    time_s: float = 0.0
    backend: str = ""

    @property
    def passed(self) -> int:
        return sum(t.status == PASSED for t in self.tests)

    @property
    def total(self) -> int:
        return len(self.tests)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(passed=self.passed, total=self.total)
        return d
