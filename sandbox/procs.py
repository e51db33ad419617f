"""Process control for the runner (part of the runner payload: runs inside the sandbox).

Not imported on the host: session.runner_source() concatenates codec.py, this file, calls.py and
runner.py into the one script the runner is. Stdlib only, no `from __future__`.

A program under test runs as a fresh exec'd process (never a fork of the runner, which holds the
job's secret and tests) in its own session, with rlimits, as the candidate uid when the runner is
root, its stdin fed and its stdout/stderr read concurrently into capped buffers; the runner's
wall deadline kills the whole group, and `cleanup()` kills every process left below the runner.
"""
import resource
import selectors
import signal
import subprocess
import time

ENV_PATH = "/usr/local/bin:/usr/bin:/bin"
# Runner settings; runner.configure() overlays the host's config frame.
C = {"python": "python3", "python_flags": ["-I"], "cxx": "g++", "cc": "gcc", "bash": "bash", "fsize_mb": 64, "nofile": 256,
     "stack_mb": 64, "wipe": [], "uid": None, "gid": None}
LIBC = None
HAVE_PIDFD = hasattr(os, "pidfd_open")


def prctl(op, arg):
    return LIBC is not None and LIBC.prctl(op, arg, 0, 0, 0) == 0


class Loop:
    """select() over pipes with callbacks; run() until done() or a deadline."""

    def __init__(self):
        self.sel = selectors.DefaultSelector()

    def add(self, fd, cb, ev=selectors.EVENT_READ):
        self.sel.register(fd, ev, cb)

    def drop(self, fd):
        try:
            self.sel.unregister(fd)
        except (KeyError, ValueError):
            pass

    def send(self, fd, data):
        """Write `data` to pipe `fd` without blocking, then close it. Returns abort()."""
        view, state = memoryview(data), [True]
        os.set_blocking(fd, False)

        def abort():
            if state[0]:
                state[0] = False
                self.drop(fd)
                os.close(fd)

        def cb(_fd):
            nonlocal view
            try:
                view = view[os.write(fd, view[:1 << 16]):]
            except BlockingIOError:
                return
            except OSError:
                view = view[:0]
            if not view:
                abort()
        if view:
            self.add(fd, cb, selectors.EVENT_WRITE)
        else:
            abort()
        return abort

    def run(self, deadline, done):
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            for key, _ in self.sel.select(min(left, 0.5 if HAVE_PIDFD else 0.01)):
                key.data(key.fd)
        return True

    def close(self):
        self.sel.close()


def _rlimits(cpu_s, mem_mb):
    cpu = max(1, int(cpu_s + 0.999))
    want = [(resource.RLIMIT_CPU, cpu, cpu + 1), (resource.RLIMIT_CORE, 0, 0),
            (resource.RLIMIT_FSIZE, C["fsize_mb"] << 20, C["fsize_mb"] << 20),
            (resource.RLIMIT_NOFILE, C["nofile"], C["nofile"]),
            (resource.RLIMIT_STACK, C["stack_mb"] << 20, C["stack_mb"] << 20)]
    if mem_mb:
        want.append((resource.RLIMIT_AS, mem_mb << 20, mem_mb << 20))
    if C.get("nproc"):
        want.append((resource.RLIMIT_NPROC, C["nproc"], C["nproc"]))
    out = []
    for res, soft, hard in want:
        cur = resource.getrlimit(res)[1]
        if cur != resource.RLIM_INFINITY:
            soft, hard = min(soft, cur), min(hard, cur)
        out.append((res, (soft, hard)))
    return out


class Proc:
    """One untrusted process: own session (group), rlimits, stdin fed, stdout/stderr capped."""

    def __init__(self, loop, argv, jd, cpu_s, mem_mb, cap, stdin=b"", pass_fds=()):
        self.loop, self.cap, self.cpu_s = loop, cap, cpu_s
        self.out, self.err = bytearray(), bytearray()
        self.over, self.reason, self.status, self.ru = False, None, None, None
        self.t0 = time.monotonic()
        self.t1 = None
        limits = _rlimits(cpu_s, mem_mb)

        def pre():
            for res, val in limits:
                resource.setrlimit(res, val)
            prctl(1, signal.SIGKILL)                  # PR_SET_PDEATHSIG
        r0, w0 = os.pipe()
        r1, w1 = os.pipe()
        r2, w2 = os.pipe()
        ids = {}
        if C["uid"] is not None:
            ids = dict(user=C["uid"], group=C["gid"], extra_groups=[])
        env = {"PATH": ENV_PATH, "LANG": "C.UTF-8", "HOME": jd, "TMPDIR": jd}
        try:
            p = subprocess.Popen(argv, stdin=r0, stdout=w1, stderr=w2, cwd=jd, env=env,
                                 start_new_session=True, preexec_fn=pre, pass_fds=pass_fds, **ids)
        except BaseException:
            for fd in (w0, r1, r2):
                os.close(fd)
            raise
        finally:
            for fd in (r0, w1, w2):
                os.close(fd)
        p.returncode = 0          # this class reaps the process itself (os.wait4)
        self.pid = p.pid
        self.fds = {r1: "out", r2: "err"}
        for fd in self.fds:
            loop.add(fd, self._read)
        self.abort_stdin = loop.send(w0, stdin)
        self.pidfd = None
        if HAVE_PIDFD:
            self.pidfd = os.pidfd_open(self.pid)
            loop.add(self.pidfd, lambda fd: loop.drop(fd))   # wakes select once, at exit

    def _read(self, fd):
        try:
            data = os.read(fd, 1 << 16)
        except OSError:
            data = b""
        if not data:
            self.loop.drop(fd)
            del self.fds[fd]
            os.close(fd)
            return
        buf = self.out if self.fds[fd] == "out" else self.err
        room = self.cap - len(buf)
        buf += data[:max(room, 0)]
        if len(data) > room:
            self.over = True
            self.kill("output")

    def reset_output(self):
        self.out, self.err = bytearray(), bytearray()
        self.t0 = time.monotonic()

    def exited(self):
        """True once the process has exited (not reaped: its pid and group stay reserved)."""
        if self.t1 is None and self.status is None:
            if os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
                return False
            self.t1 = time.monotonic()
        return True

    def kill(self, reason):
        if self.reason is None and not self.exited():
            self.reason = reason
            self.t1 = time.monotonic()
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except OSError:
            pass

    def finish(self, grace=0.05):
        """Drain what is left to read, kill the group, reap the leader, close the pipes."""
        if self.status is not None:
            return self
        if self.fds:
            self.loop.run(time.monotonic() + grace, lambda: not self.fds or self.over)
        self.kill("timeout")
        self.abort_stdin()
        _, self.status, self.ru = os.wait4(self.pid, 0)
        for fd in list(self.fds) + ([self.pidfd] if self.pidfd is not None else []):
            self.loop.drop(fd)
            os.close(fd)
        self.fds = {}
        return self

    def record(self, status=None, detail=None):
        """The per-test record; status "ok" means exit 0 (the host judges the output)."""
        st, code, why = self._classify()
        return {"status": status or st, "time_s": round((self.t1 or time.monotonic()) - self.t0, 4),
                "stdout": self.out.decode("utf-8", "replace"),
                "stderr": self.err.decode("utf-8", "replace"),
                "exit_code": code, "detail": detail if detail is not None else why}

    def _classify(self):
        st = self.status
        code = os.waitstatus_to_exitcode(st) if st is not None else None
        if self.over:
            return "output_limit", code, "output exceeded %d bytes" % self.cap
        if self.reason == "timeout":
            return "timeout", code, "wall time limit"
        if os.WIFSIGNALED(st):
            sig = os.WTERMSIG(st)
            try:
                name = signal.Signals(sig).name
            except ValueError:
                name = str(sig)
            if sig == signal.SIGXCPU or (sig == signal.SIGKILL and
                                         self.ru.ru_utime + self.ru.ru_stime >= self.cpu_s - 0.05):
                return "timeout", code, "cpu time limit"
            if sig == signal.SIGKILL or (sig == signal.SIGABRT and b"bad_alloc" in self.err):
                return "memory_limit", code, "killed (%s): out of memory" % name
            if sig == signal.SIGXFSZ:
                return "killed", code, "file size limit (SIGXFSZ)"
            return "runtime_error", code, "killed by signal " + name
        if code == 0:
            return "ok", 0, ""
        if b"MemoryError" in self.err[-2048:]:
            return "memory_limit", code, "MemoryError"
        return "runtime_error", code, "exit code %d" % code


def run_program(argv, jd, wall_s, cpu_s, mem_mb, cap, stdin=b"", pass_fds=()):
    loop = Loop()
    try:
        try:
            p = Proc(loop, argv, jd, cpu_s, mem_mb, cap, stdin, pass_fds)
        except BlockingIOError:      # EAGAIN: the uid's process limit, filled by leftovers
            return {"status": "killed", "time_s": 0.0, "stdout": "", "stderr": "", "exit_code": None,
                    "detail": "could not start: process limit reached"}
        if not loop.run(p.t0 + wall_s, lambda: p.over or p.exited()):
            p.kill("timeout")
        return p.finish().record()
    finally:
        loop.close()


def run_io(job, jd, argv, lim):
    """One fresh process per input; what a test left running dies before the next starts."""
    out = []
    for text in job["io_inputs"]:
        before = pids_max_events()
        rec = run_program(argv, jd, lim["wall_s"], lim["cpu_s"], lim["memory_mb"],
                          lim["output_bytes"], text.encode("utf-8", "surrogatepass"))
        cleanup()
        if pids_max_events() > before and rec["status"] in ("ok", "runtime_error"):
            rec.update(status="killed", detail="hit the sandbox's process limit (fork bomb?)")
        out.append(rec)
    return out


def pids_max_events() -> int:
    """How often the container's cgroup refused a fork at its pids limit (0 outside a container:
    config `pids_events`, set by the Docker backend, where the cgroup is the program's own)."""
    if not C.get("pids_events"):
        return 0
    for path in ("/sys/fs/cgroup/pids/pids.events", "/sys/fs/cgroup/pids.events"):
        try:
            with open(path) as f:
                return int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return 0


def _proc_table():
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            table[int(name)] = (fields[0], int(fields[1]))   # state, ppid
    return table


def cleanup():
    """Kill every process below this one (orphans come back to us: we are a subreaper or pid 1),
    reap them. Returns False if some survived."""
    me = os.getpid()
    for _ in range(200):
        table, live, todo = _proc_table(), [], [me]
        kids = {}
        for pid, (state, ppid) in table.items():
            kids.setdefault(ppid, []).append((pid, state))
        while todo:
            for pid, state in kids.get(todo.pop(), ()):
                todo.append(pid)
                if state != "Z":
                    live.append(pid)
        for pid in live:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        if not live:
            return True
        time.sleep(0.005)
    return False
