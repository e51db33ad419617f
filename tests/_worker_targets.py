"""Target functions for tests/test_workers.py, imported inside worker processes."""
import os

WARMED = False


def warmup():
    global WARMED
    WARMED = True


def was_warmed():
    return WARMED


def echo(*args, **kwargs):
    return args, kwargs


def add(a, b):
    return a + b


def fail(message):
    raise ValueError(message)


def hang():
    """C-level big-int work that never returns in time and ignores signals."""
    b = 5
    return b ** b ** b ** b ** b


def crash(code):
    os._exit(code)


def pid():
    return os.getpid()


def noisy(value):
    print("this goes to stderr, not into the protocol", flush=True)
    return value


def allocate(n_bytes):
    return len(bytearray(n_bytes))


def run_pool_in_daemon(queue, env):
    """Runs inside a daemonic multiprocessing.Process: make a pool there and use it."""
    from verifiers.workers import WorkerPool

    try:
        with WorkerPool("_worker_targets", size=1, env=env) as pool:
            queue.put(("ok", pool.call("add", 2, 3, timeout=10.0), pool.pids()))
    except BaseException as exc:  # report instead of dying silently
        queue.put(("err", repr(exc), []))


def equivalent(pred, gold):
    """Stands in for verifiers.equiv.equivalent: dies (as if SIGKILLed mid-check) the first time
    in a run, marked by the file $RLVR_DIE_ONCE, or every time with $RLVR_DIE_ALWAYS set."""
    marker = os.environ.get("RLVR_DIE_ONCE")
    if os.environ.get("RLVR_DIE_ALWAYS") or (marker and not os.path.exists(marker)):
        if marker:
            open(marker, "w").close()
        os._exit(9)
    return True, "stub"
