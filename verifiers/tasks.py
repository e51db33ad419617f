"""One reward for one response: a label routes it to the math checker or to the code sandbox.

A label is what a dataset keeps next to a prompt:
- math: the gold answer, a str (bare LaTeX, text, or a worked solution with a boxed answer) or a
  number;
- code: a dict, or its JSON text, with one of rlvr's test formats (`tests`, `io` or `call`, see
  `verifiers.code`, plus optional `entry_point`, `language`, `compare`), or the APPS / TACO /
  PRIME stdin-stdout format `{"inputs": [...], "outputs": [...]}` that verl's code data uses.

`score(response, label)` returns a flat dict of plain values with the same keys for both tasks
(trainers stack diagnostics into columns, so every row must have every key):

    {"score": 1.0, "acc": True, "task": "math", "reason": "numeric", "pred": "42",
     "tests_passed": 0, "tests_total": 0}

Bad labels raise ValueError naming the problem. The sandbox is imported only when a code label
is scored, so math-only users never start Docker.
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor

from verifiers.mathcheck import DEFAULT_TIMEOUT, check

__all__ = ["TASKS", "CODE_TIMEOUT", "code_spec", "task_of", "check_labels", "score", "score_many"]

TASKS = ("math", "code")
_CODE_KEYS = ("tests", "io", "call")
_CODE_OPTIONS = ("entry_point", "language", "compare")
CODE_TIMEOUT = 10.0          # seconds per test program
CODE_MEMORY_MB = 512


def code_spec(label) -> dict | None:
    """The `verifiers.code.code_reward` keyword arguments a code label stands for, or None when
    the label is a math answer."""
    if isinstance(label, str) and label.lstrip().startswith("{"):
        try:
            parsed = json.loads(label)
        except json.JSONDecodeError:
            return None                              # a set such as {1, 2}: a math answer
        if not isinstance(parsed, dict):
            return None
        label = parsed
    if not isinstance(label, dict):
        return None
    given = [k for k in _CODE_KEYS if label.get(k) is not None]
    if not given and "inputs" in label and "outputs" in label:       # APPS / TACO / PRIME
        if label.get("fn_name"):
            raise ValueError("call-based APPS tests (fn_name) are ambiguous about wrapped outputs; "
                             "give them as call=[{'func', 'args', 'expected'}]")
        ins, outs = label["inputs"], label["outputs"]
        if not isinstance(ins, list) or not isinstance(outs, list) or len(ins) != len(outs) or not ins:
            raise ValueError("inputs and outputs must be non-empty lists of the same length")
        return {"io": [{"input": _text(i), "output": _text(o)} for i, o in zip(ins, outs)]}
    if len(given) != 1:
        raise ValueError(f"a code label needs exactly one of {', '.join(_CODE_KEYS)} "
                         f"(or inputs + outputs); got keys {sorted(label)}")
    spec = {given[0]: label[given[0]]}
    spec.update({k: label[k] for k in _CODE_OPTIONS if label.get(k) is not None})
    return spec


def _text(x) -> str:
    return "\n".join(map(str, x)) + "\n" if isinstance(x, list) else str(x)


def _route(label, task: str | None) -> tuple[str, dict | None]:
    """(task, code spec or None) for a label; ValueError for a label that fits neither."""
    spec = code_spec(label)
    if task not in (None, *TASKS):
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    if task == "code" and spec is None:
        raise ValueError(f"task is code but the label is not a code spec: {str(label)[:80]!r}")
    task = task or ("math" if spec is None else "code")
    if task == "math" and (isinstance(label, bool) or not isinstance(label, (str, int, float))):
        raise ValueError(f"a math label must be a str or a number, got {type(label).__name__}: "
                         f"{str(label)[:80]}")
    return task, spec


def task_of(label, task: str | None = None) -> str:
    """"code" when the label is a code spec, else "math"; `task` forces one. Raises ValueError
    for a label that fits neither (a math label is a str or a number)."""
    return _route(label, task)[0]


def check_labels(labels, tasks) -> None:
    """Every label routes (see task_of), or ValueError naming the first row that does not."""
    for i, (label, task) in enumerate(zip(labels, tasks)):
        try:
            _route(label, task)
        except ValueError as exc:
            raise ValueError(f"label {i}: {exc}") from None


def _math(response: str, label, timeout: float, fallback: bool) -> dict:
    v = check(response, label, timeout=timeout, fallback=fallback)
    return {"score": v.reward, "acc": v.correct, "task": "math", "reason": v.reason,
            "pred": v.pred or "", "tests_passed": 0, "tests_total": 0}


def _code(response: str, spec: dict, partial: bool, backend, timeout: float) -> dict:
    import sandbox                                   # lazy: `import verifiers` stays light
    from verifiers.code import code_reward
    limits = sandbox.Limits(wall_s=timeout, cpu_s=timeout, memory_mb=CODE_MEMORY_MB)
    v = code_reward(response, partial=partial, limits=limits, backend=backend, **spec)
    return {"score": v.reward, "acc": v.passed == v.total > 0, "task": "code", "reason": v.status,
            "pred": "", "tests_passed": v.passed, "tests_total": v.total}


def score(response: str, label, *, task: str | None = None, timeout: float = DEFAULT_TIMEOUT,
          fallback: bool = False, partial: bool = False, backend=None,
          code_timeout: float = CODE_TIMEOUT) -> dict:
    """Score one response against its label (see the module docstring for labels and the dict).

    timeout: seconds for a math check; code_timeout: seconds per test program; partial: reward
    the fraction of tests passed; backend: the sandbox backend (default: Docker when an engine
    answers, else the local one; or its name, "docker" / "local").
    """
    if not isinstance(response, str):
        raise ValueError(f"response must be a str, got {type(response).__name__}")
    task, spec = _route(label, task)
    if task == "math":
        return _math(response, label, timeout, fallback)
    return _code(response, spec, partial, backend, code_timeout)


def score_many(responses, labels, tasks=None, *, threads: int | None = None, **kwargs) -> list[dict]:
    """`score` for many rows at once, `threads` at a time (each check keeps its own deadline)."""
    responses, labels = list(responses), list(labels)
    tasks = [None] * len(responses) if tasks is None else list(tasks)
    if not len(responses) == len(labels) == len(tasks):
        raise ValueError(f"got {len(responses)} responses, {len(labels)} labels and {len(tasks)} tasks")
    for i, r in enumerate(responses):
        if not isinstance(r, str):
            raise ValueError(f"response {i} must be a str, got {type(r).__name__}")
    check_labels(labels, tasks)
    if len(responses) <= 1:
        return [score(r, lab, task=t, **kwargs) for r, lab, t in zip(responses, labels, tasks)]
    with ThreadPoolExecutor(max_workers=threads or max(4, 2 * (os.cpu_count() or 1))) as ex:
        return list(ex.map(lambda args: score(*args[:2], task=args[2], **kwargs),
                           zip(responses, labels, tasks)))
