"""Docker backend: a warm pool of hardened containers, one persistent runner in each.

Each container runs with no network, equal memory and memory+swap limits, a pids limit, a CPU
quota, a read-only root filesystem with size-limited tmpfs /work and /tmp, every capability
dropped, no-new-privileges, no container log, non-root uids (docker-init and the keep-alive as
65533, the runner and the programs as 65534: a program cannot signal or ptrace PID 1) and an init
process (docker-init) that reaps zombies. One
`docker exec` per container starts the runner (`python3 -I -S -c BOOTSTRAP`) and stays open: a
whole test-suite for one program is one round trip on it (a `docker exec` per program would cost
~0.1 s). The runner enforces the per-test limits inside the container and resets what a program
left behind; when the round trip itself fails (runner killed, host-side deadline, container gone)
the container is removed, a fresh one is started in the background, and the caller gets
`sandbox_error`, never a pass.

No container outlives its owner:
- every container carries the labels `rlvr.sandbox=1` and `rlvr.sandbox.owner=<boot id>:<pid>:<start
  time>`; a new backend first removes the containers whose owner process no longer exists
  (`remove_stale`);
- a reaper process (its own session, so it survives a SIGKILL or Ctrl-C of its parent's group)
  blocks on a pipe from the owner and, when the pipe closes because the owner exited or was
  killed, removes the pool's containers (label `rlvr.sandbox.pool`) within a few seconds; it
  talks to the engine named by the environment (DOCKER_HOST), like `docker_client()`;
- `close()` (also atexit) removes them at once.
"""
from __future__ import annotations

import atexit
import os
import queue
import select
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from .image import DEFAULT_IMAGE, ImageError, image_exists
from .judge import validate
from .session import BOOTSTRAP, RunnerSession, SessionBroken, TransportClosed
from .types import SANDBOX_ERROR, Limits, RunResult, TestResult

LABEL = "rlvr.sandbox"
OWNER_LABEL = "rlvr.sandbox.owner"   # the owning process: liveness, for the cleanup at start
POOL_LABEL = "rlvr.sandbox.pool"     # one backend (a process may hold several)
WORKDIR = "/work"
# Two unprivileged uids: the container's own processes (docker-init, the keep-alive) run as
# INIT_USER, the runner and the programs as RUNNER_USER, so that a program can neither kill them
# nor ptrace them (a program that could attach to PID 1 would keep a process alive across jobs).
INIT_USER = "65533:65533"
RUNNER_USER = "65534:65534"
# The container's main process: sleeps forever (docker-init as PID 1 reaps orphans). Python rather
# than `sleep` so that any image with python3 works.
MAIN_CMD = ["python3", "-I", "-S", "-c", "import signal\nwhile True: signal.pause()"]
STDERR_KEEP = 8192
WIPE = [WORKDIR, "/tmp", "/dev/shm"]   # emptied by the runner after every program


class DockerUnavailable(RuntimeError):
    """The Docker engine cannot be reached; `reason` says why, the message how to start one."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(f"cannot reach the Docker engine ({reason}); {HOW_TO_START}")


HOW_TO_START = ("start it with `sudo systemctl start docker`, or as root "
                "`dockerd --bridge=none --iptables=false --ip-forward=false &`; "
                "or use --backend local (no isolation)")


def docker_client(timeout: int = 60, pool: int = 10):
    """A docker SDK client that answers ping, else DockerUnavailable with how to start one."""
    import docker
    try:
        client = docker.from_env(timeout=timeout, max_pool_size=pool)
        client.ping()
    except Exception as e:  # docker.errors.DockerException, requests' ConnectionError, ...
        raise DockerUnavailable(f"{e.__class__.__name__}: {str(e)[:200]}") from e
    return client


# --- ownership labels and cleanup ----------------------------------------------------------------

def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return "unknown"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def owner_id(pid: int | None = None) -> str:
    """`<boot id>:<pid>:<start time>`: names one process on one boot, immune to pid reuse."""
    pid = os.getpid() if pid is None else pid
    return f"{_boot_id()}:{pid}:{_start_time(pid)}"


def owner_alive(owner: str) -> bool:
    boot, _, rest = owner.partition(":")
    pid, _, start = rest.partition(":")
    if boot != _boot_id() or not pid.isdigit():
        return False
    return _start_time(int(pid)) == start


def _remove(client, containers) -> int:
    import docker.errors
    n = 0
    for c in containers:
        try:
            c.remove(force=True)
            n += 1
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            if e.status_code != 409:   # 409: removal already in progress
                raise
    return n


def remove_stale(client) -> int:
    """Remove sandbox containers whose owner process is gone (a crashed or killed run). Containers
    of a live owner (another training job on this host) are kept. Returns how many were removed."""
    found = client.containers.list(all=True, filters={"label": f"{LABEL}=1"})
    return _remove(client, [c for c in found if not owner_alive(c.labels.get(OWNER_LABEL, ""))])


def remove_pool(client, pool: str) -> int:
    return _remove(client, client.containers.list(all=True, filters={"label": f"{POOL_LABEL}={pool}"}))


# The reaper: its own session (a SIGKILL or Ctrl-C of the owner's process group misses it),
# self-contained (no import of this package), waits for the owner's pipe to close.
REAPER_SRC = f"""
import signal, sys, time
for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(sig, signal.SIG_IGN)
if sys.stdin.buffer.read() == b"closed":   # the owner closed its pool itself
    sys.exit(0)
import docker
client = docker.from_env()
for _ in range(3):                          # a container may still be starting
    for c in client.containers.list(all=True, filters={{"label": "{POOL_LABEL}=" + sys.argv[1]}}):
        try:
            c.remove(force=True)
        except Exception:
            pass
    time.sleep(1.0)
"""


def _start_reaper(pool: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", REAPER_SRC, pool], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, cwd="/")


def container_config(memory_mb=1024, pids=256, cpus=1.0, tmpfs_mb=256, tmp_mb=64, labels=None) -> dict:
    """Keyword arguments of `client.containers.run` for one hardened sandbox container."""
    from docker.types import LogConfig, Ulimit
    uid, gid = RUNNER_USER.split(":")
    return dict(
        command=MAIN_CMD, detach=True, auto_remove=False, labels=labels or {},
        network_mode="none",
        mem_limit=f"{memory_mb}m", memswap_limit=f"{memory_mb}m",
        pids_limit=pids, nano_cpus=int(cpus * 1e9),
        read_only=True,
        tmpfs={WORKDIR: f"rw,exec,nosuid,nodev,size={tmpfs_mb}m,uid={uid},gid={gid},mode=0700",
               "/tmp": f"rw,exec,nosuid,nodev,size={tmp_mb}m,mode=1777"},
        shm_size=f"{tmp_mb}m",
        cap_drop=["ALL"], security_opt=["no-new-privileges"], user=INIT_USER, init=True,
        ulimits=[Ulimit(name="core", soft=0, hard=0), Ulimit(name="nofile", soft=4096, hard=4096)],
        working_dir=WORKDIR, environment={"HOME": "/tmp", "LANG": "C.UTF-8"},
        # no container log: whatever reaches PID 1's stdout would grow a file on the host's disk
        log_config=LogConfig(type="none"),
    )


# --- transport: framed bytes over one `docker exec` ----------------------------------------------

class DockerTransport:
    """The runner's stdin/stdout over a hijacked `docker exec` socket. Docker multiplexes the
    exec's stdout and stderr with 8-byte headers (stream type, 3 zero bytes, big-endian length);
    stdout feeds `recv`, the last bytes of stderr are kept for diagnostics. `close()` removes the
    container, which kills the runner and everything it started."""

    def __init__(self, api, container_id: str, cmd: list[str], send_timeout: float = 60.0):
        self.api, self.container_id = api, container_id
        self.exec_id = api.exec_create(container_id, cmd, stdin=True, stdout=True, stderr=True,
                                       tty=False, workdir=WORKDIR, user=RUNNER_USER)["Id"]
        self._raw = api.exec_start(self.exec_id, socket=True)   # keeps the HTTP response alive
        self._sock = getattr(self._raw, "_sock", self._raw)
        self._sock.settimeout(send_timeout)                     # bounds send(); recv polls
        self._poll = select.poll()
        self._poll.register(self._sock, select.POLLIN)
        self._frames = bytearray()   # still multiplexed
        self._out = bytearray()      # demultiplexed stdout
        self._err = bytearray()
        self._eof = False
        self._closed = False

    def send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except socket.timeout as e:
            raise TimeoutError(f"runner did not read its input for {self._sock.gettimeout()} s") from e
        except OSError as e:
            raise TransportClosed(f"runner input closed: {e}{self._stderr_note()}") from e

    def recv(self, n: int, deadline: float) -> bytes:
        while len(self._out) < n:
            if self._eof or self._closed:
                raise TransportClosed(f"runner output ended{self._stderr_note()}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from the runner before the deadline")
            if not self._poll.poll(min(left, 3600.0) * 1000):
                continue
            try:
                chunk = self._sock.recv(1 << 16)
            except (BlockingIOError, InterruptedError, socket.timeout):
                continue
            except OSError as e:
                raise TransportClosed(f"runner output failed: {e}{self._stderr_note()}") from e
            if chunk:
                self._demux(chunk)
            else:
                self._eof = True
        data = bytes(self._out[:n])
        del self._out[:n]
        return data

    def _demux(self, chunk: bytes) -> None:
        buf = self._frames
        buf += chunk
        while len(buf) >= 8:
            size = int.from_bytes(buf[4:8], "big")
            if len(buf) < 8 + size:
                break
            stream, payload = buf[0], buf[8:8 + size]
            del buf[:8 + size]
            if stream == 1:
                self._out += payload
            elif stream == 2:
                self._err += payload
                del self._err[:-STDERR_KEEP]

    def stderr_tail(self) -> str:
        return self._err.decode("utf-8", "replace")

    def _stderr_note(self) -> str:
        tail = self.stderr_tail().strip()
        return f"; runner stderr: {tail[-500:]}" if tail else ""

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        for f in (self._sock, self._raw):
            try:
                f.close()
            except OSError:
                pass
        import docker.errors
        try:
            self.api.remove_container(self.container_id, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            if e.status_code != 409:
                raise


# --- the pool ------------------------------------------------------------------------------------

class _Slot:
    def __init__(self, container_id, transport, session):
        self.container_id, self.transport, self.session = container_id, transport, session

    def close(self):
        try:
            self.session.close()
        except Exception:
            pass
        self.transport.close()


def _error_result(job, detail: str, started: float) -> RunResult:
    """sandbox_error for every test of `job` (never a pass)."""
    t = time.monotonic() - started
    n = max(1, len(job.io) or len(job.calls))
    return RunResult(status=SANDBOX_ERROR, time_s=t, backend="docker",
                     tests=[TestResult(status=SANDBOX_ERROR, time_s=t, detail=detail) for _ in range(n)])


class DockerBackend:
    """A pool of `size` warm containers (default: one per CPU). `run(job, limits)` is thread-safe:
    it borrows a free container, waiting while all are busy."""

    name = "docker"

    def __init__(self, image: str = DEFAULT_IMAGE, size: int | None = None, memory_mb: int = 1024,
                 pids: int = 256, cpus: float = 1.0, tmpfs_mb: int = 256, tmp_mb: int = 64,
                 reaper: bool = True, client=None):
        self.size = size or len(os.sched_getaffinity(0))
        self.image = image
        self.client = client or docker_client(pool=self.size + 4)
        if not image_exists(self.client, image):
            raise ImageError(f"Docker image {image!r} not found: build it with "
                             f"`python -m sandbox image build --name {image}`")
        self.owner, self.pool = owner_id(), uuid.uuid4().hex[:16]
        self.stats = {"runs": 0, "sandbox_errors": 0, "recycled": 0, "start_failures": 0,
                      "stale_removed": remove_stale(self.client)}
        self._config = container_config(memory_mb, pids, cpus, tmpfs_mb, tmp_mb,
                                        labels={LABEL: "1", OWNER_LABEL: self.owner, POOL_LABEL: self.pool})
        self._reaper = _start_reaper(self.pool) if reaper else None
        self._free: queue.Queue[_Slot] = queue.Queue()
        self._lock = threading.Lock()
        self._live: set[_Slot] = set()
        self._starting = 0
        self._last_error = ""
        self._closed = False
        atexit.register(self.close)
        t0 = time.monotonic()
        try:
            with ThreadPoolExecutor(min(self.size, 8)) as ex:
                slots = list(ex.map(lambda _: self._new_slot(), range(self.size)))
        except BaseException:
            self.close()
            raise
        for s in slots:
            self._free.put(s)
        self.start_s = time.monotonic() - t0

    def _new_slot(self) -> _Slot:
        container = self.client.containers.run(self.image, **self._config)
        transport = None
        try:
            transport = DockerTransport(self.client.api, container.id,
                                        ["python3", "-I", "-S", "-c", BOOTSTRAP])
            session = RunnerSession(transport, WORKDIR, self.name, config={"wipe": WIPE, "pids_events": True})
            slot = _Slot(container.id, transport, session)
        except BaseException:
            if transport is not None:
                transport.close()
            else:
                _remove(self.client, [container])
            raise
        with self._lock:
            if not self._closed:
                self._live.add(slot)
                return slot
        slot.close()
        raise RuntimeError("DockerBackend closed")

    def run(self, job, limits: Limits | None = None, unsafe: bool = False) -> RunResult:
        """Judge `job` in a warm container. `unsafe` is accepted for interface parity (this
        backend is the safe one)."""
        limits = limits or Limits()
        validate(job)                    # a malformed job raises here, before taking a container
        started = time.monotonic()
        slot = self._acquire()
        if slot is None:
            self._count("sandbox_errors")
            return _error_result(job, f"no sandbox container could be started: {self._last_error}", started)
        try:
            result = slot.session.run(job, limits)
        except SessionBroken as e:
            self._recycle(slot)
            self._count("sandbox_errors")
            return _error_result(job, f"sandbox round trip failed, container recycled: {e}", started)
        except BaseException:
            self._recycle(slot)   # state unknown: never reuse it
            raise
        self._count("runs")
        if slot.session.needs_recycle:   # the runner could not kill everything the program left
            self._recycle(slot)
        else:
            self._free.put(slot)
        return result

    def _acquire(self) -> _Slot | None:
        while True:
            try:
                return self._free.get(timeout=0.5)
            except queue.Empty:
                pass
            with self._lock:
                if self._closed:
                    raise RuntimeError("DockerBackend is closed")
                if self._live or self._starting:
                    continue
            try:           # every container is gone and no restart is pending: try once more here
                return self._new_slot()
            except Exception as e:
                self._last_error = f"{e.__class__.__name__}: {e}"
                self._count("start_failures")
                return None

    def _recycle(self, slot: _Slot) -> None:
        with self._lock:
            self._live.discard(slot)
            self._starting += 1
        self._count("recycled")
        threading.Thread(target=self._replace, args=(slot,), daemon=True).start()

    def _replace(self, slot: _Slot) -> None:
        try:
            try:
                slot.close()
            except Exception:
                pass
            for attempt in range(3):
                if self._closed:
                    return
                try:
                    self._free.put(self._new_slot())
                    return
                except Exception as e:
                    self._last_error = f"{e.__class__.__name__}: {e}"
                    self._count("start_failures")
                    time.sleep(0.5 * 2 ** attempt)
        finally:
            with self._lock:
                self._starting -= 1

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1

    def container_ids(self) -> list[str]:
        with self._lock:
            return [s.container_id for s in self._live]

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            slots, self._live = list(self._live), set()
        atexit.unregister(self.close)
        # plain threads: an executor cannot start at interpreter shutdown (atexit)
        closers = [threading.Thread(target=s.close, daemon=True) for s in slots]
        for t in closers:
            t.start()
        for t in closers:
            t.join(30)
        try:
            remove_pool(self.client, self.pool)   # anything a recycle thread was starting
        finally:
            if self._reaper is not None:
                try:
                    self._reaper.communicate(b"closed", timeout=5)
                except (OSError, subprocess.TimeoutExpired):
                    pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
