"""Host side of one runner: start it over a transport, then one round trip per program.

Any backend (local subprocess, `docker exec`, ...) provides a Transport to a fresh
`python3 -I -S -c BOOTSTRAP` process inside its sandbox. RunnerSession sends the runner's source
and the config frame, checks the hello, and then turns each Job into a job frame and the runner's
answer into a RunResult. Expected outputs and expected values never leave the host; the answer
must carry a valid HMAC made with the job's fresh secret. Any failure of the round trip (closed
transport, host-side deadline, malformed frame, bad MAC, runner error) raises SessionBroken: the
backend recycles the slot and reports sandbox_error, never a pass.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from . import judge
from .codec import canonical, encode_value, pack_frame, unpack_body
from .types import Job, Limits, RunResult

# Reads a 4-byte big-endian length and that many bytes of runner source from stdin, exec()s it.
BOOTSTRAP = (
    "import os\n"
    "def r(n):\n"
    " b=b''\n"
    " while len(b)<n:\n"
    "  c=os.read(0,n-len(b))\n"
    "  if not c: raise SystemExit(3)\n"
    "  b+=c\n"
    " return b\n"
    "exec(compile(r(int.from_bytes(r(4),'big')).decode(),'<rlvr-runner>','exec'),"
    "{'__name__':'__rlvr_runner__'})\n"
)
_PARTS = ("codec.py", "procs.py", "calls.py")
HELLO_TIMEOUT_S = 30.0


class TransportClosed(ConnectionError):
    """The runner's end is gone (EOF, broken pipe, container removed)."""


class SessionBroken(RuntimeError):
    """The round trip failed; the slot must be recycled and the job reported as sandbox_error."""


class Transport(Protocol):
    def send(self, data: bytes) -> None:
        """Write all of `data` to the runner's stdin. Raises TransportClosed (or TimeoutError
        when the runner does not read for a long time)."""

    def recv(self, n: int, deadline: float) -> bytes:
        """Exactly n bytes of the runner's stdout by time.monotonic() `deadline`; raises
        TransportClosed at EOF and TimeoutError at the deadline (bytes already read stay
        buffered for the next call)."""

    def close(self) -> None:
        """Kill the runner and everything it started, for good. Idempotent."""


@lru_cache(maxsize=1)
def runner_source() -> str:
    """The whole runner script: codec + process control + call/assert tests + SHIM_SRC + main."""
    here = Path(__file__).resolve().parent
    read = lambda name: (here / name).read_text()
    shim = read("codec.py") + "\n" + read("shim.py")
    parts = [read(name) for name in _PARTS]
    return "\n".join(parts + [f"SHIM_SRC = {shim!r}\n", read("runner.py")])


def host_deadline(job: Job, limits: Limits) -> float:
    """A generous bound (seconds) on one round trip; the runner enforces the real limits."""
    n = max(1, len(job.io) or len(job.calls) or
            (judge.count_assert_tests(job.asserts.code) if job.asserts else 1))
    compile_s = 2 * limits.compile_s if job.language == "cpp" else 0.0
    return 15.0 + compile_s + n * (1.5 * limits.wall_s + 2.0)


class RunnerSession:
    """One runner behind a transport. Not thread-safe: a backend gives each slot to one caller
    at a time. `run` raises SessionBroken when the round trip fails; afterwards `broken` is True.
    After a run with `needs_recycle` set the runner could not kill everything: replace the slot.

    `config` (all optional) overlays the runner defaults: python ("python3"), python_flags
    (["-I"] for programs; the runner itself runs -I -S), cxx ("g++"), uid/gid (the programs' uid
    when the runner is root; default 65534), nproc (RLIMIT_NPROC; default 128 when root, else
    unset), fsize_mb (64), nofile (256), stack_mb (64), wipe (dirs emptied after each job),
    and, for root in a private mount namespace only, hide (dirs covered by an empty read-only
    tmpfs) and tmpfs (dirs given a fresh tmpfs of tmpfs_mb, 512). `info` is the runner's hello:
    pid, uid, candidate_uid, nondumpable, subreaper, python."""

    def __init__(self, transport: Transport, workdir: str, backend_name: str,
                 config: dict | None = None, hello_timeout: float = HELLO_TIMEOUT_S):
        self.transport, self.backend_name = transport, backend_name
        self.broken = False
        self.needs_recycle = False      # the runner reported processes it could not kill
        payload = runner_source().encode()
        cfg = {"workdir": workdir, "python": "python3", "cxx": "g++", **(config or {})}
        try:
            transport.send(len(payload).to_bytes(4, "big") + payload + pack_frame(cfg))
            hello = self._recv_frame(time.monotonic() + hello_timeout)
        except (OSError, TimeoutError, ValueError) as e:
            self.broken = True
            raise SessionBroken(f"runner did not start: {e.__class__.__name__}: {e}") from e
        if hello.get("hello") != 1:
            self.broken = True
            raise SessionBroken(f"runner refused the config: {hello.get('error', hello)}")
        self.info = hello

    def _recv_frame(self, deadline: float) -> dict:
        n = int.from_bytes(self.transport.recv(4, deadline), "big")
        if n > (1 << 31):
            raise ValueError(f"frame of {n} bytes")
        obj = unpack_body(self.transport.recv(n, deadline))
        if not isinstance(obj, dict):
            raise ValueError("frame is not an object")
        return obj

    def run(self, job: Job, limits: Limits) -> RunResult:
        if self.broken:
            raise SessionBroken("session already broken")
        judge.validate(job)
        secret = secrets.token_hex(32)
        frame = job_frame(job, limits, secret)
        started = time.monotonic()
        try:
            self.transport.send(pack_frame(frame))
            answer = self._recv_frame(started + host_deadline(job, limits))
        except (OSError, TimeoutError, ValueError) as e:
            self.broken = True
            raise SessionBroken(f"{e.__class__.__name__}: {e}") from e
        mac = answer.pop("mac", None)
        expect = hmac.new(bytes.fromhex(secret), canonical(answer), hashlib.sha256).hexdigest()
        if not isinstance(mac, str) or not hmac.compare_digest(mac, expect):
            self.broken = True
            raise SessionBroken("result frame failed authentication (bad or missing MAC)")
        if "error" in answer:
            self.broken = True
            raise SessionBroken(f"runner error: {str(answer['error'])[-1500:]}")
        self.needs_recycle = bool(answer.get("dirty"))
        try:
            return judge.build_result(job, answer, self.backend_name, time.monotonic() - started)
        except (ValueError, TypeError, KeyError) as e:
            self.broken = True
            raise SessionBroken(f"malformed result frame: {e}") from e

    def close(self) -> None:
        self.broken = True
        self.transport.close()


def job_frame(job: Job, limits: Limits, secret: str) -> dict:
    """The job as sent into the sandbox: program, limits and test INPUTS only."""
    frame = {"secret": secret, "language": job.language, "code": job.code,
             "limits": {"wall_s": limits.wall_s, "cpu_s": limits.cpu_s, "memory_mb": limits.memory_mb,
                        "output_bytes": limits.output_bytes, "compile_s": limits.compile_s}}
    if job.io:
        frame["io_inputs"] = [t.input for t in job.io]
    elif job.calls:
        frame["calls"] = [{"func": c.func, "args": [encode_value(a) for a in c.args],
                           "method": bool(c.method)} for c in job.calls]
    elif job.asserts is not None:
        frame["asserts"] = {"code": job.asserts.code, "entry_point": job.asserts.entry_point}
    elif job.cpp_driver is not None:
        frame["cpp_driver"] = job.cpp_driver
    else:
        frame["stdin"] = job.stdin or ""
    return frame
