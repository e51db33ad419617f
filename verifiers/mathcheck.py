"""Check a model's math answer against the gold: one call, a float reward, or a whole batch.

    >>> from verifiers import check
    >>> check(r"... so the answer is $\\boxed{\\frac{1}{2}}$.", "0.5")
    Verdict(correct=True, pred='\\\\frac{1}{2}', reason='numeric')

Extraction and the cheap exact comparisons (identical strings, plain numbers) run in the calling
thread. Anything that needs sympy runs in a pool of pre-warmed worker processes with a hard
deadline: a check that outlives it is killed and answered `reason="timeout"`. Everything here is
thread-safe.
"""
from __future__ import annotations

import functools
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from .extract import extract_answer, extract_gold
from .normalize import numbers_equal, parse_number, squash, too_pathological
from .workers import DeadlineExceeded, WorkerCrashed, WorkerError, WorkerPool

DEFAULT_TIMEOUT = 5.0        # seconds per check, from the call to the verdict
WORKER_MEMORY_MB = 2048      # address-space cap of each worker process


@dataclass(frozen=True)
class Verdict:
    correct: bool
    pred: str | None          # the extracted answer, None when nothing was found
    reason: str               # exact | numeric | equivalent | choice | not_equivalent | timeout | no_answer | ...

    @property
    def reward(self) -> float:
        return 1.0 if self.correct else 0.0

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- the worker pool

_pool: WorkerPool | None = None
_pool_lock = threading.Lock()


def get_pool(size: int | None = None) -> WorkerPool:
    """The shared pool of checker processes (started on first use, `size` pre-warmed workers)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            env = dict(os.environ)
            env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
            _pool = WorkerPool("verifiers.equiv", size=size or min(2, os.cpu_count() or 1),
                               max_size=max(16, 2 * (size or 0)), env=env, memory_mb=WORKER_MEMORY_MB)
        elif size and len(_pool.pids()) < size:
            _pool.warmup(size)
        return _pool


def shutdown_pool() -> None:
    """Stop the shared pool's processes (a later check starts a new pool)."""
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.close()
            _pool = None


# ---------------------------------------------------------------- one check


def _as_text(value, name: str, numbers: bool = False) -> str:
    """The value as text; only a gold answer may be given as a number."""
    if isinstance(value, str):
        return value
    if numbers and isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)
    kind = "a str or a number" if numbers else "a str"
    raise TypeError(f"{name} must be {kind}, got {type(value).__name__}")


# RL scores the same short answers over and over (a group of 8 often holds 3 distinct ones):
# the pure string functions and definitive sympy verdicts are remembered, never a timeout.
_squash = functools.lru_cache(maxsize=1 << 16)(squash)
_parse_number = functools.lru_cache(maxsize=1 << 16)(parse_number)
_VERDICTS: dict[tuple[str, str], tuple[bool, str]] = {}
_VERDICTS_MAX = 1 << 16


@functools.lru_cache(maxsize=65536)
def _gold(gold: str) -> tuple[str, object]:
    """The gold answer and its exact number (or None), cached: golds repeat across a group."""
    g = extract_gold(gold)
    return g, parse_number(g)


def _compare(pred: str, gold: str, timeout: float, pool: WorkerPool | None) -> Verdict:
    g, g_num = _gold(gold)
    bad = too_pathological(pred) or too_pathological(g)
    if bad:
        return Verdict(False, pred, bad)
    if _squash(pred) == _squash(g):
        return Verdict(True, pred, "exact")
    p_num = _parse_number(pred)
    if p_num is not None and g_num is not None:
        return Verdict(numbers_equal(p_num, g_num), pred, "numeric")
    known = _VERDICTS.get((pred, g))
    if known is not None:
        return Verdict(known[0], pred, known[1])
    deadline = time.monotonic() + timeout
    try:
        try:
            ok, why = (pool or get_pool()).call("equivalent", pred, g, timeout=timeout)
        except WorkerCrashed:       # a worker killed from outside (OOM killer, kill -9): once more
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeadlineExceeded from None
            ok, why = (pool or get_pool()).call("equivalent", pred, g, timeout=left)
    except DeadlineExceeded:
        return Verdict(False, pred, "timeout")
    except WorkerCrashed:
        return Verdict(False, pred, "crashed")       # twice: e.g. the memory cap on a gigantic number
    except WorkerError as exc:
        return Verdict(False, pred, f"error: {exc}")
    if len(_VERDICTS) >= _VERDICTS_MAX:
        _VERDICTS.clear()
    _VERDICTS[(pred, g)] = (ok, why)
    return Verdict(ok, pred, why)


def check(response: str, gold, *, timeout: float = DEFAULT_TIMEOUT, fallback: bool = False,
          pool: WorkerPool | None = None) -> Verdict:
    """Extract the final answer from `response` and compare it with `gold`.

    `gold` may be bare LaTeX, plain text, a number, or a worked solution with a boxed answer.
    With `fallback=True`, a response with no answer marker is answered by its last math span or
    number (math-verify's behaviour); by default it gets `reason="no_answer"`.
    """
    response = _as_text(response, "response")
    gold = _as_text(gold, "gold", numbers=True)
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    pred, how = extract_answer(response, fallback=fallback)
    if pred is None:
        return Verdict(False, None, how)
    return _compare(pred, gold, timeout, pool)


def answers_equal(pred: str, gold, *, timeout: float = DEFAULT_TIMEOUT, pool: WorkerPool | None = None) -> Verdict:
    """Compare an already-extracted answer with the gold (no extraction from prose)."""
    pred = _as_text(pred, "pred")
    return _compare(pred, _as_text(gold, "gold", numbers=True), timeout, pool)


def math_reward(response: str, gold, **kwargs) -> float:
    """1.0 when the response's final answer equals the gold, else 0.0."""
    return check(response, gold, **kwargs).reward


def score_batch(responses, golds, *, workers: int | None = None, timeout: float = DEFAULT_TIMEOUT,
                fallback: bool = False) -> list[Verdict]:
    """Check many (response, gold) pairs, `workers` checker processes at once (default: cores)."""
    responses, golds = list(responses), list(golds)
    if len(responses) != len(golds):
        raise ValueError(f"got {len(responses)} responses but {len(golds)} golds")
    workers = workers or os.cpu_count() or 1
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    pool = get_pool(workers)
    run = functools.partial(check, timeout=timeout, fallback=fallback, pool=pool)
    if workers == 1 or len(responses) < 2:
        return [run(r, g) for r, g in zip(responses, golds)]
    with ThreadPoolExecutor(max_workers=workers) as ex:
        return list(ex.map(run, responses, golds))
