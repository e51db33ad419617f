"""Tests for verifiers.workers.WorkerPool with real worker processes."""
import multiprocessing
import os
import sys
import threading
import time

import pytest

from verifiers.workers import DeadlineExceeded, WorkerCrashed, WorkerError, WorkerPool

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    p for p in (TESTS_DIR, os.environ.get("PYTHONPATH")) if p)}
TARGETS = "_worker_targets"  # tests/_worker_targets.py, importable in the children via ENV


def make_pool(**kwargs):
    kwargs.setdefault("size", 2)
    return WorkerPool(TARGETS, env=ENV, **kwargs)


@pytest.fixture
def pool():
    with make_pool() as p:
        yield p


def gone(pid, within=3.0):
    """True once ``pid`` no longer exists, not even as a zombie (zombies keep /proc/<pid>)."""
    end = time.monotonic() + within
    while os.path.exists(f"/proc/{pid}"):
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def worker_children():
    """Pids of this process's children that run verifiers.workers (zombies included)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and (b"verifiers.workers" in cmdline or not cmdline):
            found.append(int(entry))
    return found


def timed_call(pool, func, *args, timeout):
    start = time.monotonic()
    try:
        pool.call(func, *args, timeout=timeout)
    except BaseException as exc:
        return exc, time.monotonic() - start
    return None, time.monotonic() - start


def test_call_returns_value(pool):
    assert pool.call("add", 2, 3, timeout=5) == 5
    assert pool.call("echo", 1, [2], x={"y": 3}, timeout=5) == ((1, [2]), {"x": {"y": 3}})
    assert pool.call("was_warmed", timeout=5) is True  # the module's warmup() ran


def test_large_payload_round_trip(pool):
    data = os.urandom(5 << 20)
    assert pool.call("echo", data, timeout=10) == ((data,), {})


def test_prints_in_target_do_not_corrupt_protocol(pool):
    assert pool.call("noisy", 7, timeout=5) == 7
    assert pool.call("add", 1, 1, timeout=5) == 2


def test_exception_becomes_worker_error(pool):
    with pytest.raises(WorkerError, match="ValueError: bad input") as info:
        pool.call("fail", "bad input", timeout=5)
    assert not isinstance(info.value, WorkerCrashed)
    with pytest.raises(WorkerError, match="AttributeError"):
        pool.call("no_such_function", timeout=5)
    assert pool.call("add", 1, 2, timeout=5) == 3


def test_hanging_c_code_is_killed_and_pool_recovers(pool):
    before = set(pool.pids())
    exc, elapsed = timed_call(pool, "hang", timeout=1.0)
    assert isinstance(exc, DeadlineExceeded) and isinstance(exc, TimeoutError)
    assert elapsed < 1.5
    killed = before - set(pool.pids())
    assert len(killed) == 1 and gone(killed.pop())
    assert pool.call("add", 2, 2, timeout=5) == 4


def test_concurrent_hanging_calls_all_return_in_time(pool):
    results = [None] * 8

    def worker(i):
        results[i] = timed_call(pool, "hang", timeout=1.0)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    for exc, elapsed in results:
        assert isinstance(exc, DeadlineExceeded)
        assert elapsed < 1.5
    assert pool.call("add", 3, 4, timeout=10) == 7


def test_waiting_for_a_free_worker_counts_against_the_deadline():
    with make_pool(size=1, max_size=1) as pool:
        blocker = threading.Thread(target=timed_call, args=(pool, "hang"), kwargs={"timeout": 2.0})
        blocker.start()
        time.sleep(0.2)
        exc, elapsed = timed_call(pool, "add", 1, 2, timeout=0.3)
        assert isinstance(exc, DeadlineExceeded) and elapsed < 0.6
        blocker.join()
        assert pool.call("add", 1, 2, timeout=10) == 3


def test_crash_gives_worker_crashed_and_next_call_works(pool):
    victim = pool.call("pid", timeout=5)
    assert pool.call("pid", timeout=5) == victim  # LIFO: the last used worker serves next
    with pytest.raises(WorkerCrashed, match="code 3"):
        pool.call("crash", 3, timeout=5)
    assert gone(victim)
    assert pool.call("add", 5, 5, timeout=10) == 10


def test_close_leaves_no_processes():
    others = set(worker_children())          # e.g. the shared checker pool an earlier test started
    pool = make_pool(size=3)
    pids = pool.pids()
    assert len(pids) == 3
    exc, _ = timed_call(pool, "hang", timeout=0.5)  # a killed + replaced worker too
    assert isinstance(exc, DeadlineExceeded)
    pids += pool.pids()
    pool.close()
    for pid in set(pids):
        assert not os.path.exists(f"/proc/{pid}"), f"worker {pid} still exists"
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # already reaped: not a zombie
    assert pool.pids() == [] and set(worker_children()) <= others
    with pytest.raises(WorkerError, match="closed"):
        pool.call("add", 1, 2, timeout=1)
    pool.close()  # idempotent


def test_memory_cap_raises_memory_error_in_child():
    with make_pool(size=1, memory_mb=512) as pool:
        with pytest.raises(WorkerError, match="MemoryError"):
            pool.call("allocate", 2 << 30, timeout=10)
        assert pool.call("allocate", 10 << 20, timeout=10) == 10 << 20


def test_module_that_does_not_import_fails_fast():
    with pytest.raises(WorkerCrashed, match="ModuleNotFoundError"):
        WorkerPool("no_such_module_xyz", size=1, env=ENV)


def test_lazy_pool_starts_workers_on_demand():
    with make_pool(size=1, warm=False) as pool:
        assert pool.pids() == []
        assert pool.call("add", 1, 1, timeout=10) == 2
        assert len(pool.pids()) == 1


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_works_inside_daemonic_multiprocessing_process(method):
    if TESTS_DIR not in sys.path:
        sys.path.insert(0, TESTS_DIR)
    import _worker_targets

    ctx = multiprocessing.get_context(method)
    queue = ctx.Queue()
    proc = ctx.Process(target=_worker_targets.run_pool_in_daemon, args=(queue, ENV), daemon=True)
    proc.start()
    status, value, pids = queue.get(timeout=30)
    proc.join(10)
    assert (status, value) == ("ok", 5)
    assert pids and all(gone(pid) for pid in pids)


def test_a_check_whose_worker_dies_is_rerun_once(tmp_path):
    """A math check whose worker is killed mid-check (OOM killer, kill -9) is answered by a fresh
    worker; a check that kills every worker it runs on is answered `crashed`, not retried forever."""
    from verifiers.mathcheck import answers_equal
    marker = tmp_path / "died"
    with WorkerPool(TARGETS, size=1, env={**ENV, "RLVR_DIE_ONCE": str(marker)}) as p:
        v = answers_equal(r"a_{17}+b_{17}", r"b_{17}+a_{17}", pool=p)
        assert marker.exists()
        assert v.correct and v.reason == "stub"
    with WorkerPool(TARGETS, size=1, env={**ENV, "RLVR_DIE_ALWAYS": "1"}) as p:
        v = answers_equal(r"a_{18}+b_{18}", r"b_{18}+a_{18}", pool=p)
        assert not v.correct and v.reason == "crashed"
