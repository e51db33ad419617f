"""Calling reward functions: f(prompts, completions, **dataset_columns) -> list[float | None].

The same shape as TRL's GRPOTrainer, so one function serves both; async functions run concurrently.
None means "this function does not apply to this row" (e.g. a code reward on a math row).
"""
import asyncio
import inspect
import math

import torch

RESERVED = {"prompts", "completions", "completion_ids"}


def reward_name(f):
    return getattr(f, "__name__", None) or type(f).__name__


def check_columns(funcs, columns):
    """Reject a reward function that names a parameter the data does not have, before any work."""
    for f in funcs:
        if not callable(f):
            raise ValueError(f"reward function {f!r} is not callable")
        params = inspect.signature(f).parameters.values()
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            raise ValueError(f"reward function {reward_name(f)!r} must accept **kwargs (it is passed the dataset columns)")
        for p in params:
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is p.empty \
                    and p.name not in RESERVED and p.name not in columns:
                raise ValueError(f"reward function {reward_name(f)!r} needs column {p.name!r}, "
                                 f"which the data does not have (columns: {sorted(columns)})")


def _call_all(funcs, prompts, completions, completion_ids, columns):
    kw = dict(completion_ids=completion_ids, **columns)
    out = [None] * len(funcs)
    coros = {}
    for i, f in enumerate(funcs):
        r = f(prompts=prompts, completions=completions, **kw)
        if inspect.isawaitable(r):
            coros[i] = r
        else:
            out[i] = r
    if coros:
        async def gather():
            return await asyncio.gather(*coros.values())

        for i, r in zip(coros, asyncio.run(gather())):
            out[i] = r
    return out


def score(funcs, weights, prompts, completions, completion_ids, columns):
    """Per-function rewards [N, F] (NaN where a function returned None) and the weighted sum [N]."""
    n = len(completions)
    outs = _call_all(funcs, prompts, completions, completion_ids, columns)
    table = torch.full((n, len(funcs)), float("nan"))
    for j, (f, r) in enumerate(zip(funcs, outs)):
        name = reward_name(f)
        try:
            r = list(r)
        except TypeError:
            raise ValueError(f"reward function {name!r} returned {type(r).__name__}, not a list") from None
        if len(r) != n:
            raise ValueError(f"reward function {name!r} returned {len(r)} values for {n} completions")
        for i, v in enumerate(r):
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v) or math.isinf(v):
                raise ValueError(f"reward function {name!r} returned {v!r} for completion {i}: "
                                 "expected a finite number or None")
            table[i, j] = float(v)
    missing = torch.isnan(table).all(1)
    if missing.any():
        i = int(missing.nonzero()[0])
        raise ValueError(f"no reward function scored completion {i} (all returned None) for prompt "
                         f"{prompts[i]!r:.80}")
    total = (torch.nan_to_num(table) * torch.tensor(weights, dtype=torch.float32)).sum(1)
    return table, total
