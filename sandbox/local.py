"""Local backend: warm runner subprocesses on this machine. WEAKER than Docker.

Each slot is one runner (`python3 -I -S -c BOOTSTRAP`) started as a local subprocess. Programs get
rlimits (CPU, address space, file size, open files, processes), a fresh job dir, an empty
environment, capped output, a wall deadline, and their whole process tree is killed after each
job. As root, programs run as uid 65534, and when `unshare` works the runner also lives in new
pid, network and mount namespaces: no network, every process dies with the namespace, private
tmpfs on /tmp, /var/tmp, /dev/shm and /run/lock, and every top-level directory but the system
ones (/usr, /etc, ...) covered by an empty tmpfs, so datasets with expected outputs, homes and
credentials are out of sight.

What it does NOT give, unlike Docker: its own kernel-enforced root filesystem (programs read the
host's /usr and /etc), cgroup limits on memory and pids (RLIMIT_AS and a per-uid RLIMIT_NPROC
instead), seccomp, and, without namespaces (not root, or no `unshare`), any network or filesystem
isolation at all. Programs flagged as host-unsafe (fork/memory/disk bombs, escapes:
`unsafe=True`) are refused.
"""
from __future__ import annotations

import atexit
import itertools
import os
import queue
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import warnings

from . import judge
from .session import BOOTSTRAP, RunnerSession, SessionBroken, TransportClosed
from .types import SANDBOX_ERROR, Job, Limits, RunResult, TestResult

WEAKER_THAN_DOCKER = (
    "sandbox: the local backend is WEAKER than the docker backend: programs share this machine's "
    "kernel and its /usr and /etc, and memory and processes are bounded by rlimits, not cgroups. "
    "Use get_backend('docker') for untrusted code at scale.")
NO_NAMESPACES = (
    " This one runs WITHOUT namespaces (needs root and `unshare`): programs can read this "
    "machine's files (datasets with expected outputs included) and reach its network.")
PRIVATE_TMPFS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
# Top-level dirs programs still see under namespaces; every other one (/home, /root, /work, /mnt,
# /opt, /var, /srv, ...: datasets with expected outputs, credentials) is covered by an empty tmpfs.
VISIBLE = {"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "dev", "proc", "sys", "tmp"}
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
_warned: set[str] = set()


class HostUnsafeRefused(ValueError):
    """The local backend does not run programs flagged as unsafe outside a sandbox."""


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


class PipeTransport:
    """A runner's stdin/stdout over pipes of a local subprocess (its own session)."""

    def __init__(self, argv: list[str], env: dict, send_timeout: float = 60.0):
        debug = os.environ.get("RLVR_SANDBOX_DEBUG")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=None if debug else subprocess.DEVNULL, env=env,
                                     cwd="/", start_new_session=True, bufsize=0)
        self._w, self._r = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        self._buf = bytearray()
        self._send_timeout = send_timeout
        self._closed = False

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        poller = select.poll()
        poller.register(self._w, select.POLLOUT)
        while view:
            if self._closed:
                raise TransportClosed("transport closed")
            if not poller.poll(self._send_timeout * 1000):
                raise TimeoutError(f"runner did not read its input for {self._send_timeout} s")
            try:
                view = view[os.write(self._w, view[:1 << 16]):]
            except (BrokenPipeError, ValueError, OSError) as e:
                raise TransportClosed(f"runner input closed: {e}") from e

    def recv(self, n: int, deadline: float) -> bytes:
        poller = select.poll()
        poller.register(self._r, select.POLLIN)
        while len(self._buf) < n:
            if self._closed:
                raise TransportClosed("transport closed")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from the runner before the deadline")
            if not poller.poll(min(left, 3600.0) * 1000):
                continue
            try:
                chunk = os.read(self._r, max(n - len(self._buf), 1 << 16))
            except OSError as e:
                raise TransportClosed(f"runner output failed: {e}") from e
            if not chunk:
                raise TransportClosed(f"runner exited (status {self.proc.poll()})")
            self._buf += chunk
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def namespaces_available() -> bool:
    """Root, and `unshare --pid --fork --net --mount-proc --kill-child` works here."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    try:
        r = subprocess.run(["unshare", "--pid", "--fork", "--net", "--mount-proc", "--kill-child",
                            "true"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def hidden_dirs(needed: list[str]) -> list[str]:
    """Top-level dirs to cover: all real dirs but VISIBLE and those holding `needed` files."""
    keep = set(VISIBLE) | {os.path.realpath(p).split("/")[1] for p in needed}
    out = []
    for name in sorted(os.listdir("/")):
        path = "/" + name
        if name not in keep and os.path.isdir(path) and not os.path.islink(path):
            out.append(path)
    return out


def _world_executable(path: str) -> bool:
    """Every directory on the way is searchable and the file executable by any uid."""
    path = os.path.realpath(path)
    try:
        if not os.stat(path).st_mode & stat.S_IXOTH:
            return False
        d = os.path.dirname(path)
        while True:
            if not os.stat(d).st_mode & stat.S_IXOTH:
                return False
            if d == "/":
                return True
            d = os.path.dirname(d)
    except OSError:
        return False


def find_python(for_other_uid: bool) -> str:
    """A python3 for the runner and the programs; one uid 65534 can run when we drop to it."""
    found = [os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable),
             shutil.which("python3", path=SAFE_PATH)]
    for p in found:
        if p and (not for_other_uid or _world_executable(p)):
            return p
    raise RuntimeError("no python3 that uid 65534 can execute (looked at %s)" % ", ".join(map(str, found)))


class LocalBackend:
    """`size` warm runner subprocesses (default: one per CPU); `run` is thread-safe and blocks
    while every slot is busy. A slot whose round trip fails is replaced; the caller gets
    sandbox_error, never a pass. `use_namespaces`: "auto" (when root and unshare works), True
    (require), False."""

    name = "local"

    def __init__(self, size: int | None = None, workdir_root: str | None = None,
                 use_namespaces: bool | str = "auto", uid: int = 65534, python: str | None = None):
        self.size = size or os.cpu_count() or 1
        root = os.geteuid() == 0
        self.namespaces = bool(use_namespaces) and namespaces_available()
        if use_namespaces is True and not self.namespaces:
            raise RuntimeError("use_namespaces=True needs root and a working `unshare` "
                               "(--pid --fork --net --mount-proc --kill-child)")
        _warn_once(WEAKER_THAN_DOCKER + ("" if self.namespaces else NO_NAMESPACES))
        self.python = python or find_python(for_other_uid=root)
        self.config = {"python": self.python, "python_flags": ["-I"], "cxx": "g++"}
        if root:
            self.config.update(uid=uid, gid=uid)
        self._tmp = None
        if self.namespaces:       # the job dirs live in the runner's private tmpfs
            self.config.update(hide=hidden_dirs([self.python, shutil.which("g++") or "/usr"]),
                               tmpfs=list(PRIVATE_TMPFS), wipe=["/tmp", "/var/tmp", "/dev/shm"])
        else:
            self._tmp = tempfile.mkdtemp(prefix="rlvr-local-", dir=workdir_root)
            os.chmod(self._tmp, 0o711)
        self.stats = {"runs": 0, "sandbox_errors": 0, "recycled": 0, "start_failures": 0}
        self._free: queue.Queue[RunnerSession] = queue.Queue()
        self._lock = threading.Lock()
        self._live: set[RunnerSession] = set()
        self._ids = itertools.count(1)
        self._closed = False
        atexit.register(self.close)

    # --- slots -----------------------------------------------------------------------------------
    def _argv(self) -> list[str]:
        runner = [self.python, "-I", "-S", "-c", BOOTSTRAP]
        if self.namespaces:
            return ["unshare", "--pid", "--fork", "--net", "--mount-proc", "--kill-child", *runner]
        return runner

    def _new_session(self) -> RunnerSession:
        workdir = "/tmp/rlvr-work" if self.namespaces else os.path.join(self._tmp, f"slot-{next(self._ids)}")
        transport = PipeTransport(self._argv(), {"PATH": SAFE_PATH, "LANG": "C.UTF-8"})
        try:
            return RunnerSession(transport, workdir, self.name, config=self.config)
        except BaseException:
            transport.close()
            raise

    def _acquire(self) -> RunnerSession:
        while True:
            with self._lock:
                if self._closed:
                    raise RuntimeError("LocalBackend is closed")
                try:
                    return self._free.get_nowait()
                except queue.Empty:
                    pass
                grow = len(self._live) < self.size
                if grow:
                    placeholder = object()
                    self._live.add(placeholder)
            if grow:
                try:
                    sess = self._new_session()
                except BaseException:
                    with self._lock:
                        self._live.discard(placeholder)
                    raise
                with self._lock:
                    self._live.discard(placeholder)
                    self._live.add(sess)
                return sess
            try:
                return self._free.get(timeout=0.5)
            except queue.Empty:
                continue

    def _discard(self, sess: RunnerSession) -> None:
        with self._lock:
            self._live.discard(sess)
            self.stats["recycled"] += 1
        try:
            sess.close()
        except Exception:
            pass

    # --- public ----------------------------------------------------------------------------------
    def run(self, job: Job, limits: Limits | None = None, unsafe: bool = False) -> RunResult:
        """Run `job` in a warm slot. Refuses (HostUnsafeRefused) when `unsafe` is set."""
        if unsafe:
            raise HostUnsafeRefused(
                "the local backend refuses programs flagged as unsafe outside a sandbox (fork, "
                "memory or disk bombs, escapes): run them with the docker backend "
                "(sandbox.get_backend('docker'))")
        limits = limits or Limits()
        judge.validate(job)
        started = time.monotonic()
        try:
            sess = self._acquire()
        except SessionBroken as e:
            with self._lock:
                self.stats["start_failures"] += 1
                self.stats["sandbox_errors"] += 1
            return error_result(job, f"local runner did not start: {e}", started, self.name)
        try:
            result = sess.run(job, limits)
        except SessionBroken as e:
            self._discard(sess)
            with self._lock:
                self.stats["sandbox_errors"] += 1
            return error_result(job, f"sandbox round trip failed, slot recycled: {e}", started, self.name)
        except BaseException:
            self._discard(sess)
            raise
        with self._lock:
            self.stats["runs"] += 1
        if sess.needs_recycle:
            self._discard(sess)
        else:
            self._free.put(sess)
        return result

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            live, self._live = [s for s in self._live if isinstance(s, RunnerSession)], set()
        atexit.unregister(self.close)
        for sess in live:
            try:
                sess.close()
            except Exception:
                pass
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def error_result(job: Job, detail: str, started: float, backend: str) -> RunResult:
    """sandbox_error for every test of `job` (never a pass)."""
    n = max(1, len(job.io) or len(job.calls))
    t = time.monotonic() - started
    return RunResult(status=SANDBOX_ERROR, time_s=t, backend=backend,
                     tests=[TestResult(status=SANDBOX_ERROR, time_s=t, detail=detail) for _ in range(n)])
