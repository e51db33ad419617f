"""rlvr's rewards in the exact interfaces TRL, verl and OpenRLHF call.

TRL (`GRPOTrainer(reward_funcs=[...])`):

    from verifiers.adapters import MathReward, CodeReward, FormatReward
    trainer = GRPOTrainer(..., reward_funcs=[MathReward("answer"), CodeReward("tests"), FormatReward()])

Each is a picklable callable with a `__name__` (what TRL logs as `rewards/<name>/mean`), takes
`prompts, completions, completion_ids, **dataset_columns`, accepts plain-text and conversational
completions, and returns None for a row whose label column is None, so several rewards can share
one mixed math + code dataset.

verl (`custom_reward_function.path=<this file> custom_reward_function.name=compute_score`):
`compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs)` returns a dict
with `score` and diagnostics; `compute_score_batch` is the batch reward manager's form.

OpenRLHF (`--remote_rm_url <this file>`): `reward_func(queries, prompts, labels)` returns
`{"rewards", "scores", "extra_logs"}`; `python -m verifiers serve` answers the same over HTTP.

This file uses absolute imports only: verl and OpenRLHF load it by path, outside the package.
"""
from __future__ import annotations

import re

from verifiers.rewards import format_reward, language_consistency, length_penalty, overlong_penalty
from verifiers.mathcheck import DEFAULT_TIMEOUT
from verifiers.tasks import CODE_TIMEOUT, code_spec, score, score_many

__all__ = ["MathReward", "CodeReward", "FormatReward", "LanguageReward", "OverlongReward",
           "LengthReward", "compute_score", "compute_score_batch", "reward_func", "score_queries",
           "openrlhf_responses", "openrlhf_answer"]

# ----------------------------------------------------------------------------- TRL

_TRL_EXTRAS = ("trainer_state", "log_extra", "log_metric", "environments")


def completion_text(completion) -> str:
    """The text of a TRL completion: a str, or conversational messages (the assistant turns)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and all(isinstance(m, dict) for m in completion):
        parts = []
        for m in completion:
            if m.get("role", "assistant") != "assistant":
                continue
            content = m.get("content")
            if isinstance(content, list):            # [{"type": "text", "text": ...}, ...]
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            if content is not None and not isinstance(content, str):
                break
            parts.append(content or "")
        else:
            return "\n".join(parts)
    raise ValueError(f"a completion must be a str or a list of chat messages, got {str(completion)[:80]!r}")


class _TRLReward:
    """TRL's reward-function shape; subclasses implement `rewards(texts, columns)`."""

    columns: tuple[str, ...] = ()

    def __init__(self, name: str):
        self.__name__ = name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.__name__!r})"

    def __call__(self, prompts, completions, completion_ids=None, **kwargs) -> list:
        texts = [completion_text(c) for c in completions]
        missing = [c for c in self.columns if c not in kwargs]
        if missing:
            have = sorted(k for k in kwargs if k not in _TRL_EXTRAS)
            raise ValueError(f"reward {self.__name__!r} reads dataset column(s) {missing}, "
                             f"but the dataset has {have}")
        for c in self.columns:
            if len(kwargs[c]) != len(texts):
                raise ValueError(f"column {c!r} has {len(kwargs[c])} rows for {len(texts)} completions")
        out, logs = self.rewards(texts, kwargs, prompts=prompts, completion_ids=completion_ids)
        if callable(kwargs.get("log_extra")):
            for key, values in logs.items():
                kwargs["log_extra"](f"{self.__name__}_{key}", values)
        return out


def _scored(texts, labels, task, **kw):
    """(rewards with None for None labels, {"reason": [...]}) via tasks.score_many."""
    rows = [i for i, lab in enumerate(labels) if lab is not None]
    results = score_many([texts[i] for i in rows], [labels[i] for i in rows], [task] * len(rows), **kw)
    rewards, reasons = [None] * len(texts), [None] * len(texts)
    for i, r in zip(rows, results):
        rewards[i], reasons[i] = r["score"], r["reason"]
    return rewards, {"reason": reasons}


class MathReward(_TRLReward):
    """1.0 when the completion's final answer equals the gold in `column`, else 0.0; None where
    the gold is None (a row of another task)."""

    def __init__(self, column: str = "answer", *, name: str = "math", fallback: bool = False,
                 timeout: float = DEFAULT_TIMEOUT, threads: int | None = None):
        super().__init__(name)
        self.columns, self.kw = (column,), {"fallback": fallback, "timeout": timeout, "threads": threads}

    def rewards(self, texts, cols, **_):
        return _scored(texts, cols[self.columns[0]], "math", **self.kw)


class CodeReward(_TRLReward):
    """Runs the completion's last fenced code block against the tests in `column` in the sandbox:
    1.0 when all pass (or the fraction with partial=True); None where the tests are None.

    A test cell is a code label (`{"tests"|"io"|"call": ...}`, its JSON text, or APPS
    `{"inputs", "outputs"}`), or bare assert code / a list of assert lines (MBPP). HumanEval's
    `entry_point` is read from the `entry_point` column when the dataset has one.
    """

    def __init__(self, column: str = "tests", *, name: str = "code", partial: bool = False,
                 backend=None, timeout: float = CODE_TIMEOUT, threads: int | None = None):
        super().__init__(name)
        self.columns = (column,)
        self.kw = {"partial": partial, "backend": backend, "code_timeout": timeout, "threads": threads}

    def rewards(self, texts, cols, **_):
        entry = cols.get("entry_point") or [None] * len(texts)
        labels = [None if t is None else _code_label(t, e) for t, e in zip(cols[self.columns[0]], entry)]
        return _scored(texts, labels, "code", **self.kw)


def _code_label(cell, entry_point):
    if code_spec(cell) is not None:
        return cell
    if isinstance(cell, str) or (isinstance(cell, list) and all(isinstance(t, str) for t in cell)):
        return {"tests": cell, "entry_point": entry_point}
    raise ValueError(f"a tests cell must be a code label, assert code or a list of asserts, got {str(cell)[:80]!r}")


class FormatReward(_TRLReward):
    """DeepSeek-R1 format reward: 1.0 for `<think>reasoning</think> answer`, else 0.0."""

    def __init__(self, *, name: str = "format", think_in_prompt: bool = False):
        super().__init__(name)
        self.think_in_prompt = think_in_prompt

    def rewards(self, texts, cols, **_):
        return [format_reward(t, think_in_prompt=self.think_in_prompt) for t in texts], {}


class LanguageReward(_TRLReward):
    """DeepSeek-R1 language consistency: share of the chain of thought's words in `lang`."""

    def __init__(self, lang: str = "en", *, name: str = "language"):
        super().__init__(name)
        language_consistency("", lang)                # an unknown code fails here, not mid-training
        self.lang = lang

    def rewards(self, texts, cols, **_):
        return [language_consistency(t, self.lang) for t in texts], {}


def _lengths(texts, completion_ids) -> list[int]:
    return [len(t) for t in texts] if completion_ids is None else [len(ids) for ids in completion_ids]


class OverlongReward(_TRLReward):
    """DAPO soft overlong punishment on the completion's token count (characters without ids)."""

    def __init__(self, max_len: int, cache_len: int, *, name: str = "overlong"):
        super().__init__(name)
        overlong_penalty(0, max_len, cache_len)       # validates the lengths now
        self.max_len, self.cache_len = max_len, cache_len

    def rewards(self, texts, cols, completion_ids=None, **_):
        return [overlong_penalty(n, self.max_len, self.cache_len)
                for n in _lengths(texts, completion_ids)], {}


class LengthReward(_TRLReward):
    """Kimi k1.5 length reward within each group of completions of one prompt, with correctness
    from the math gold in `column`. TRL may split a prompt's group across processes: the group is
    the completions of that prompt that one call sees."""

    def __init__(self, column: str = "answer", *, name: str = "length", timeout: float = DEFAULT_TIMEOUT):
        super().__init__(name)
        self.columns, self.timeout = (column,), timeout

    def rewards(self, texts, cols, prompts=None, completion_ids=None, **_):
        correct, _ = _scored(texts, cols[self.columns[0]], "math", timeout=self.timeout)
        lengths, out = _lengths(texts, completion_ids), [None] * len(texts)
        groups: dict[str, list[int]] = {}
        for i, p in enumerate(prompts if prompts is not None else [""] * len(texts)):
            if correct[i] is not None:
                groups.setdefault(repr(p), []).append(i)
        for idx in groups.values():
            for i, v in zip(idx, length_penalty([lengths[i] for i in idx], [correct[i] == 1.0 for i in idx])):
                out[i] = v
        return out, {}


# ----------------------------------------------------------------------------- verl

_CODE_SOURCES = ("code", "apps", "taco", "humaneval", "mbpp", "livecodebench", "leetcode")


def _verl_task(data_source) -> str | None:
    """"code" for code data sources (codecontests, apps, taco, ...); None lets the label decide."""
    return "code" if any(k in str(data_source).lower() for k in _CODE_SOURCES) else None


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> dict:
    """verl's reward-function shape: {"score": float, "acc", "task", "reason", "pred",
    "tests_passed", "tests_total"}. Math data sources go to the math checker, code ones (name
    containing code, apps, taco, humaneval, mbpp, livecodebench, leetcode) to the sandbox;
    any other source is routed by its ground truth. Keyword options of `tasks.score` (timeout,
    partial, ...) pass through `reward_kwargs`."""
    return score(solution_str, ground_truth, task=_verl_task(data_source), **kwargs)


def compute_score_batch(data_sources, solution_strs, ground_truths, extra_infos=None, **kwargs) -> list[dict]:
    """verl's batch reward manager shape: lists in, one dict per row out, scored concurrently."""
    return score_many(solution_strs, ground_truths, [_verl_task(d) for d in data_sources], **kwargs)


# ----------------------------------------------------------------------------- OpenRLHF

# end-of-turn / end-of-text markers of common chat models (Qwen, Llama 3, DeepSeek, Mistral, Gemma)
_SPECIAL_TAIL = re.compile(r"(?:\s*(?:<\|[^|<>\s]{1,40}\|>|<｜[^｜<>]{1,40}｜>|</s>|<eos>|<end_of_turn>|<pad>))+\s*$")


def _response(query: str, prompt: str) -> str:
    """The response in OpenRLHF's query: what follows the prompt, without the special tokens it
    keeps at the end (it decodes with skip_special_tokens=False)."""
    response = query[len(prompt):] if isinstance(prompt, str) and query.startswith(prompt) else query
    return _SPECIAL_TAIL.sub("", response)


def openrlhf_responses(queries, prompts, labels) -> list[str]:
    """The responses in OpenRLHF's (queries, prompts, labels), checked for shape and type."""
    if not len(queries) == len(prompts) == len(labels):
        raise ValueError(f"got {len(queries)} queries, {len(prompts)} prompts and {len(labels)} labels")
    for name, items in (("query", queries), ("prompts", prompts)):
        bad = next((i for i, x in enumerate(items) if not isinstance(x, str)), None)
        if bad is not None:
            raise ValueError(f"{name}[{bad}] must be a string, got {type(items[bad]).__name__}")
    return [_response(q, p) for q, p in zip(queries, prompts)]


def openrlhf_answer(results: list[dict]) -> dict:
    """OpenRLHF's reward answer from `tasks.score` results: {"rewards", "scores", "extra_logs"}."""
    rewards = [r["score"] for r in results]
    return {"rewards": rewards, "scores": rewards,
            "extra_logs": {"acc": [float(r["acc"]) for r in results],
                           "timeout": [float(r["reason"] == "timeout") for r in results]}}


def score_queries(queries, prompts, labels, **kwargs) -> dict:
    """OpenRLHF's remote-reward answer, as plain lists: {"rewards", "scores", "extra_logs"}."""
    queries, prompts, labels = list(queries), list(prompts), list(labels)
    return openrlhf_answer(score_many(openrlhf_responses(queries, prompts, labels), labels, **kwargs))


def reward_func(queries, prompts, labels, **kwargs) -> dict:
    """OpenRLHF's local reward-function file shape: the same answer with torch tensors."""
    import torch                                     # OpenRLHF has it; `import verifiers` does not
    out = score_queries(queries, prompts, labels, **kwargs)
    return {"rewards": torch.tensor(out["rewards"]), "scores": torch.tensor(out["scores"]),
            "extra_logs": {k: torch.tensor(v) for k, v in out["extra_logs"].items()}}
