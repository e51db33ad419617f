"""Pre-warmed worker processes that run a named function under a hard deadline.

Some inputs make sympy spin inside C code (``5**5**5**5**5``, ``factorial(10**6)``) where
``signal.alarm`` cannot interrupt (and it only works in the main thread).  The only reliable
bound is to run the work in a child process and SIGKILL it when time is up.

Guarantees of :meth:`WorkerPool.call` (from any thread, many threads at once):

* it returns the result, or raises :class:`DeadlineExceeded` about ``timeout`` s after the
  call started (waiting for or starting a worker counts) even if the child is stuck in C
  code: the child's process group is SIGKILLed at once, then reaped and replaced in the
  background;
* :class:`WorkerError` (``"ExcType: message"``) if the function raised; the worker is kept;
* :class:`WorkerCrashed` if the child died (segfault, OOM killer, ``os._exit``); it is replaced.

Workers are ``subprocess.Popen`` children (not multiprocessing ones), so a pool also works
inside daemonic multiprocessing workers.  They never outlive the pool: ``close()`` (also run
by ``with`` and at exit) kills and reaps them all, and they die with their parent
(PR_SET_PDEATHSIG) and exit on EOF of stdin.  Frames are an 8-byte length + pickle (we trust
our own child) over the child's stdin/stdout; the child's fd 1 is pointed at stderr so
prints cannot corrupt them.  A pool belongs to its process: a forked child needs its own.
"""
from __future__ import annotations

import atexit
import importlib
import os
import pickle
import queue
import select
import signal
import struct
import subprocess
import sys
import threading
import time

__all__ = ["WorkerPool", "WorkerError", "WorkerCrashed", "DeadlineExceeded"]
_HEADER = struct.Struct("!Q")


class WorkerError(RuntimeError):
    """The function raised in the worker; the message is ``"ExcType: message"``."""


class WorkerCrashed(WorkerError):
    """The worker process died (or failed to start) instead of answering."""


class DeadlineExceeded(TimeoutError):
    """No result within the call's timeout; the worker running it was killed."""


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _frame(obj) -> bytes:
    data = pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


def _wait(fd: int, events: int, deadline: float) -> None:
    """Block until ``fd`` is ready for ``events``; DeadlineExceeded once ``deadline`` passes."""
    poller = select.poll()
    poller.register(fd, events)
    while not poller.poll(max(0.0, deadline - time.monotonic()) * 1000):
        if time.monotonic() >= deadline:
            raise DeadlineExceeded


def _write_all(fd: int, data: bytes, deadline: float = float("inf")) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:  # only on the parent's non-blocking end
            _wait(fd, select.POLLOUT, deadline)


def _recv(fd: int, deadline: float):
    """Read one frame, no read waiting past ``deadline``; WorkerCrashed on EOF."""
    buf, need = bytearray(), 0
    while not need or len(buf) < need:
        _wait(fd, select.POLLIN, deadline)
        # Over-reading is safe: the child sends exactly one frame per request.
        chunk = os.read(fd, max(need - len(buf), 1 << 16))
        if not chunk:
            raise WorkerCrashed("worker closed its pipe")
        buf += chunk
        if not need and len(buf) >= _HEADER.size:
            need = _HEADER.size + _HEADER.unpack_from(buf)[0]
    return pickle.loads(memoryview(buf)[_HEADER.size:])


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # start_new_session=True: pgid == pid
    except OSError:
        pass


def _close_pipes(proc: subprocess.Popen) -> None:
    proc.stdin.close()
    proc.stdout.close()


def _exit_reason(proc: subprocess.Popen) -> str:
    try:
        rc = proc.wait(timeout=1.0)
    except subprocess.TimeoutExpired:
        return "worker stopped answering"
    if rc >= 0:
        return f"worker exited with code {rc}"
    hint = "; out of memory?" if rc == -signal.SIGKILL else ""
    return f"worker killed by signal {-rc} ({signal.strsignal(-rc)}{hint})"


class WorkerPool:
    """Run ``getattr(importlib.import_module(module), func)(*args, **kwargs)`` in workers.

    ``size`` workers (default ``os.cpu_count()``) are started up front when ``warm``; more
    start on demand up to ``max_size`` (default ``max(2 * size, 8)``).  A child imports
    ``module`` and calls its ``warmup_func`` (if the module has one) before it is ready.
    ``memory_mb`` caps each child's address space (RLIMIT_AS, set after import and warm-up),
    so runaway allocations raise MemoryError there.  ``env``: the children's environment
    (default inherited); their stderr is inherited.
    """

    def __init__(self, module: str, size: int | None = None, max_size: int | None = None,
                 warm: bool = True, env=None, memory_mb: int | None = None,
                 warmup_func: str | None = "warmup", start_timeout: float = 60.0):
        self.module, self.env, self.start_timeout = module, env, start_timeout
        self.size = max(1, size if size is not None else os.cpu_count() or 1)
        self.max_size = max(self.size, max_size if max_size is not None else max(2 * self.size, 8))
        # (-W: runpy warns if verifiers/__init__.py already imported this module.)
        self._argv = [sys.executable, "-W", "ignore::RuntimeWarning:runpy", "-m",
                      "verifiers.workers", module, str(os.getpid()), str(memory_mb or 0),
                      warmup_func or ""]
        self._cond = threading.Condition()
        self._procs: set[subprocess.Popen] = set()  # live children: whoever removes one kills it
        self._dying: set[subprocess.Popen] = set()  # killed, being reaped in the background
        self._idle: list[subprocess.Popen] = []
        self._count = 0  # workers alive or starting, at most max_size
        self._pending = 0  # starts not yet ready or failed
        self._waiting = 0  # callers waiting for a worker
        self._start_error: str | None = None
        self._closed, self._owner = False, os.getpid()
        self._starts: queue.SimpleQueue = queue.SimpleQueue()
        self._spawner = threading.Thread(target=self._spawn_loop, name="WorkerPool", daemon=True)
        self._spawner.start()
        atexit.register(self.close)
        if warm:
            try:
                self.warmup()
            except BaseException:
                self.close()
                raise

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def pids(self) -> list[int]:
        """Pids of the live workers (idle, busy or starting)."""
        with self._cond:
            return sorted(p.pid for p in self._procs)

    def warmup(self, n: int | None = None) -> None:
        """Start workers until ``n`` (default ``size``) exist and wait until none is starting.

        Raises WorkerCrashed if one failed to start (e.g. the module does not import).
        """
        deadline = time.monotonic() + self.start_timeout
        with self._cond:
            for _ in range(min(self.size if n is None else n, self.max_size) - self._count):
                self._start_locked()
            while self._pending and not self._closed:
                if not self._cond.wait(deadline - time.monotonic()):
                    raise DeadlineExceeded(f"workers not ready within {self.start_timeout:g} s")
            self._raise_start_error_locked()

    def call(self, func: str, /, *args, timeout: float, **kwargs):
        """Return ``module.func(*args, **kwargs)``, computed in a worker within ``timeout`` s."""
        deadline = time.monotonic() + timeout
        request = _frame((func, args, kwargs))
        proc = self._acquire(deadline, f"{self.module}.{func}", timeout)
        try:
            _write_all(proc.stdin.fileno(), request, deadline)
            status, value = _recv(proc.stdout.fileno(), deadline)
        except DeadlineExceeded:
            self._discard(proc)
            raise DeadlineExceeded(f"{self.module}.{func} took over {timeout:g} s") from None
        except (WorkerCrashed, BrokenPipeError):
            self._discard(proc)
            raise WorkerCrashed(f"{self.module}.{func}: {_exit_reason(proc)}") from None
        except BaseException:  # e.g. KeyboardInterrupt: the worker's state is unknown
            self._discard(proc)
            raise
        with self._cond:
            closed = proc not in self._procs  # the pool was closed meanwhile
            if not closed:
                self._idle.append(proc)
                self._cond.notify_all()
        if closed:
            _close_pipes(proc)
        if status != "ok":
            raise WorkerError(value)
        return value

    def close(self) -> None:
        """Kill every worker and reap it (no zombies); later calls raise WorkerError."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._starts.put(None)
        if self._spawner is not threading.current_thread():
            self._spawner.join(5.0)  # so that no Popen is under way
        with self._cond:
            procs, idle, self._procs, self._idle = self._procs, self._idle, set(), []
            for proc in procs:
                _kill(proc)
            procs |= self._dying
        for proc in idle:  # busy or starting ones: the thread holding one closes it
            _close_pipes(proc)
        for proc in procs:
            try:
                proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                pass
        atexit.unregister(self.close)

    def _acquire(self, deadline: float, what: str, timeout: float) -> subprocess.Popen:
        if os.getpid() != self._owner:
            raise RuntimeError("WorkerPool used in a forked child; create a new pool there")
        started = False
        with self._cond:
            while True:
                if self._closed:
                    raise WorkerError("WorkerPool is closed")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DeadlineExceeded(f"{what}: no free worker within {timeout:g} s")
                if self._idle:
                    return self._idle.pop()  # LIFO: the most recently used worker
                self._raise_start_error_locked()
                # Start a worker unless the pool is full or pending starts cover all waiters.
                if not started and self._count < self.max_size and self._pending <= self._waiting:
                    self._start_locked()
                    started = True
                self._waiting += 1
                self._cond.wait(remaining)
                self._waiting -= 1

    def _raise_start_error_locked(self) -> None:
        if self._start_error is not None:
            error, self._start_error = self._start_error, None
            raise WorkerCrashed(error)

    def _start_locked(self) -> None:
        self._count += 1
        self._pending += 1
        self._starts.put(True)

    def _discard(self, proc: subprocess.Popen, replace: bool = True) -> None:
        """Kill a worker this thread holds, reap it in the background, start a replacement."""
        with self._cond:
            if proc in self._procs:  # else close() took it and kills and reaps it
                _kill(proc)  # under the lock, so it cannot have been reaped (pid reuse)
                self._procs.remove(proc)
                self._dying.add(proc)
                self._count -= 1
                threading.Thread(target=self._reap, args=(proc,), daemon=True).start()
                if replace and not self._closed:
                    self._start_locked()
        _close_pipes(proc)

    def _reap(self, proc: subprocess.Popen) -> None:
        proc.wait()
        with self._cond:
            self._dying.discard(proc)

    def _spawn_loop(self) -> None:
        # All Popens run in this one long-lived thread: PR_SET_PDEATHSIG fires when the
        # *thread* that forked a child exits, so short-lived threads must not fork workers.
        while self._starts.get() and not self._closed:
            try:
                proc = subprocess.Popen(self._argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        env=self.env, start_new_session=True)
            except Exception as exc:  # e.g. OSError: too many processes or open files
                with self._cond:
                    self._count -= 1
                self._started(None, _describe(exc))
                continue
            os.set_blocking(proc.stdin.fileno(), False)
            with self._cond:
                self._procs.add(proc)
            threading.Thread(target=self._handshake, args=(proc,), daemon=True).start()

    def _handshake(self, proc: subprocess.Popen) -> None:
        try:
            status, value = _recv(proc.stdout.fileno(), time.monotonic() + self.start_timeout)
            error = None if status == "ready" else value
        except Exception as exc:  # DeadlineExceeded, WorkerCrashed
            error = _describe(exc)
        if error is not None:
            self._discard(proc, replace=False)
        self._started(proc, error)

    def _started(self, proc: subprocess.Popen | None, error: str | None) -> None:
        with self._cond:
            self._pending -= 1
            if error is not None:
                self._start_error = f"worker for {self.module} failed to start: {error}"
            elif proc in self._procs:
                self._idle.append(proc)
                self._start_error = None
            self._cond.notify_all()


def _child_main(module_name: str, parent_pid: str, memory_mb: str, warmup_func: str) -> int:
    """The worker: import, warm up, report ready, then serve requests until EOF."""
    try:  # die with the parent; Linux only
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except Exception:
        pass
    if os.getppid() != int(parent_pid):  # the parent died before prctl
        return 0
    out_fd, inp = os.dup(1), os.fdopen(os.dup(0), "rb")
    os.dup2(2, 1)  # print() in targets goes to stderr, not into the protocol
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    try:
        module = importlib.import_module(module_name)
        if warmup_func and callable(getattr(module, warmup_func, None)):
            getattr(module, warmup_func)()
        if int(memory_mb) > 0:
            import resource
            _, hard = resource.getrlimit(resource.RLIMIT_AS)
            soft = int(memory_mb) << 20
            if hard != resource.RLIM_INFINITY:
                soft = min(soft, hard)
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    except BaseException as exc:
        _write_all(out_fd, _frame(("err", _describe(exc))))
        return 1
    _write_all(out_fd, _frame(("ready", os.getpid())))
    while len(header := inp.read(_HEADER.size)) == _HEADER.size:
        try:
            func, args, kwargs = pickle.loads(inp.read(_HEADER.unpack(header)[0]))
            reply = _frame(("ok", getattr(module, func)(*args, **kwargs)))
        except BaseException as exc:
            reply = _frame(("err", _describe(exc)))
        _write_all(out_fd, reply)
    return 0  # EOF: the pool is gone


if __name__ == "__main__":
    sys.exit(_child_main(*sys.argv[1:]))
