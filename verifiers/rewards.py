"""Shaped rewards for RLVR: plain functions over strings and ints, usable by any trainer.

Standard library only (no torch / transformers), so the module is cheap to import in
reward workers. Bad input raises ValueError naming the problem.

    format_reward(response)                  DeepSeek-R1 <think>...</think> answer format, 1.0 / 0.0
    language_consistency(text, lang)         DeepSeek-R1 share of chain-of-thought words in `lang`
    length_penalty(lengths, correct)         Kimi k1.5 group-relative length penalty
    overlong_penalty(length, max_len, cache) DAPO soft overlong punishment
    compose_terms(correct, ...) / compose    weighted sum over one group of responses
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Mapping, Sequence

__all__ = [
    "TERMS", "SUPPORTED_LANGS", "format_reward", "language_consistency",
    "length_penalty", "overlong_penalty", "compose_terms", "compose",
]

# ----------------------------------------------------------------------------- format

_ANSWER = re.compile(r"<answer>(.*)</answer>", re.DOTALL)
_TAG = re.compile(r"</?(?:think|answer)>")


def _answer_ok(answer: str) -> bool:
    """Non-empty answer, optionally wrapped once in <answer>...</answer>, with no stray tags."""
    answer = answer.strip()
    m = _ANSWER.fullmatch(answer)
    if m:
        answer = m.group(1).strip()
    return bool(answer) and not _TAG.search(answer)


def format_reward(response: str, *, think_in_prompt: bool = False) -> float:
    """1.0 if `response` is `<think>reasoning</think> answer`, else 0.0.

    DeepSeek-R1 (arXiv:2501.12948, Sec. 2.2.2): format reward for putting the reasoning
    between '<think>' and '</think>'. Exactly one think block, non-empty reasoning,
    non-empty answer (optionally `<answer>...</answer>`), only whitespace before `<think>`.
    With think_in_prompt=True the chat template already opened `<think>`: the response
    must contain no `<think>`, exactly one `</think>`, non-empty reasoning before it
    and a non-empty answer after it.
    """
    if not isinstance(response, str):
        raise ValueError(f"response must be a str, got {type(response).__name__}")
    if response.count("</think>") != 1:
        return 0.0
    if think_in_prompt:
        if "<think>" in response:
            return 0.0
        think, answer = response.split("</think>")
    else:
        if response.count("<think>") != 1:
            return 0.0
        head, rest = response.split("<think>")
        if head.strip() or "</think>" not in rest:  # text before <think>, or </think> first
            return 0.0
        think, answer = rest.split("</think>")
    return 1.0 if think.strip() and _answer_ok(answer) else 0.0


# ----------------------------------------------------------------------------- language

_LATIN = "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff"  # no digits, no × ÷
_CYRILLIC = "\u0400-\u04ff"
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002a6df"
_KANA = "\u3041-\u3096\u30a1-\u30fa\u30fc-\u30ff\uff66-\uff9d"
_HANGUL = "\u1100-\u11ff\u3131-\u318e\uac00-\ud7a3"
# Space-delimited scripts count maximal letter runs; CJK scripts count one word per character.
_WORD = re.compile(
    f"(?P<latin>[{_LATIN}]+)|(?P<cyrillic>[{_CYRILLIC}]+)"
    f"|(?P<han>[{_HAN}])|(?P<kana>[{_KANA}])|(?P<hangul>[{_HANGUL}])"
)
_MATH_DELIM = re.compile(r"\$\$|\$|\\\(|\\\)|\\\[|\\\]")
_CLOSES = {"$$": "$$", "$": "$", "\\(": "\\)", "\\[": "\\]"}


def _strip_math(text: str) -> str:
    """`text` without its $...$, $$...$$, \\(...\\) and \\[...\\] spans, in one linear pass
    (lazy regexes rescan to the end for every unclosed opener: quadratic on degenerate output)."""
    out, last, opened = [], 0, None
    for m in _MATH_DELIM.finditer(text):
        d = m.group()
        if opened is None and d in _CLOSES:
            opened = (d, m.start())
        elif opened is not None and d == _CLOSES[opened[0]]:
            out.append(text[last:opened[1]])
            out.append(" ")
            last, opened = m.end(), None
    out.append(text[last:])
    return "".join(out)
_LATEX_CMD = re.compile(r"\\[A-Za-z]+")
_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)

_LATIN_LANGS = (
    "latin", "en", "fr", "de", "es", "it", "pt", "nl", "pl", "cs", "sk", "sv", "da", "no",
    "nb", "fi", "is", "ro", "hu", "hr", "sl", "tr", "id", "ms", "vi", "ca", "et", "lv", "lt",
)
_LANG_SCRIPTS: dict[str, frozenset[str]] = {
    **{code: frozenset({"latin"}) for code in _LATIN_LANGS},
    "ru": frozenset({"cyrillic"}),
    "uk": frozenset({"cyrillic"}),
    "zh": frozenset({"han"}),
    "ja": frozenset({"han", "kana"}),
    "ko": frozenset({"hangul"}),
}
SUPPORTED_LANGS = tuple(sorted(_LANG_SCRIPTS))


def _target_scripts(lang: str) -> frozenset[str]:
    code = lang.lower().replace("_", "-").split("-")[0] if isinstance(lang, str) else None
    if code not in _LANG_SCRIPTS:
        raise ValueError(f"unknown language code {lang!r}; supported: {', '.join(SUPPORTED_LANGS)}")
    return _LANG_SCRIPTS[code]


def _chain_of_thought(text: str) -> str:
    m = _THINK.search(text)
    if m:
        return m.group(1)
    if "</think>" in text:  # <think> was in the prompt
        return text.split("</think>", 1)[0]
    if "<think>" in text:  # truncated: the think block never closed
        return text.split("<think>", 1)[1]
    return text


def language_consistency(text: str, lang: str = "en") -> float:
    """Share of the chain of thought's words written in `lang`'s script (1.0 if none counted).

    DeepSeek-R1 (arXiv:2501.12948, Sec. 2.3.2): reward = proportion of target-language
    words in the CoT. Counted by script: Latin/Cyrillic words are maximal letter runs,
    Han/Kana/Hangul count one per character ("ja" = Han + Kana, so Chinese text also
    counts as Japanese). Math ($..$, $$..$$, \\(..\\), \\[..\\]), LaTeX commands, digits
    and punctuation are language-neutral and not counted.
    """
    targets = _target_scripts(lang)
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    cot = _chain_of_thought(text)
    cot = _LATEX_CMD.sub(" ", _strip_math(_TAG.sub(" ", cot)))
    scripts = [m.lastgroup for m in _WORD.finditer(cot)]
    if not scripts:
        return 1.0
    return sum(s in targets for s in scripts) / len(scripts)


# ----------------------------------------------------------------------------- length

def _check_length(x, name: str = "length") -> int:
    if isinstance(x, bool) or not isinstance(x, numbers.Integral):
        raise ValueError(f"{name} must be an int, got {x!r}")
    if x < 0:
        raise ValueError(f"{name} must be >= 0, got {x}")
    return int(x)


def _check_group(items: Sequence, correct: Sequence, name: str = "lengths") -> None:
    if len(items) != len(correct):
        raise ValueError(f"{name} has {len(items)} entries but correct has {len(correct)}")


def length_penalty(lengths: Sequence[int], correct: Sequence[bool]) -> list[float]:
    """Kimi k1.5 length reward over one group of responses to the same prompt."""
    _check_group(lengths, correct)
    lengths = [_check_length(n, "lengths[%d]" % i) for i, n in enumerate(lengths)]
    lo, hi = min(lengths, default=0), max(lengths, default=0)
    if hi == lo:  # also the empty group
        return [0.0] * len(lengths)
    out = []
    for n, ok in zip(lengths, correct):
        lam = 0.5 - (n - lo) / (hi - lo)  # Kimi k1.5 (arXiv:2501.12599) Sec. 2.3.3
        out.append(lam if ok else min(0.0, lam))
    return out


def overlong_penalty(length: int, max_len: int, cache_len: int) -> float:
    """DAPO soft overlong punishment, in [-1, 0].

    cache_len == 0 is allowed and means a hard cliff: 0.0 up to max_len, -1.0 beyond.
    """
    length = _check_length(length)
    max_len, cache_len = _check_length(max_len, "max_len"), _check_length(cache_len, "cache_len")
    if max_len <= cache_len:
        raise ValueError(f"max_len ({max_len}) must be greater than cache_len ({cache_len})")
    # DAPO (arXiv:2503.14476) Eq. 13
    if length <= max_len - cache_len:
        return 0.0
    if length <= max_len:
        return ((max_len - cache_len) - length) / cache_len
    return -1.0


# ----------------------------------------------------------------------------- composer

TERMS = ("correct", "format", "language", "length", "overlong")


def compose_terms(
    correct: Sequence[bool], *, lengths: Sequence[int] | None = None,
    responses: Sequence[str] | None = None, weights: Mapping[str, float] | None = None,
    shaping_on_correct_only: bool = True, max_len: int | None = None,
    cache_len: int | None = None, lang: str = "en", think_in_prompt: bool = False,
) -> list[dict[str, float]]:
    """Per-response dicts {term: raw value, ..., "total": sum_k w_k * term_k} for one group.

    A term is computed iff it is a key of `weights` (default {"correct": 1.0}).
    Shaping terms (all but "correct") enter the total only for correct responses when
    shaping_on_correct_only is True: with std-normalised GRPO advantages, shaping alone
    would set the advantages of all-wrong groups and can collapse training. The dicts
    always log the raw term values, so format/language rates are visible on wrong answers.
    """
    weights = {"correct": 1.0} if weights is None else dict(weights)
    unknown = sorted(set(weights) - set(TERMS))
    if unknown:
        raise ValueError(f"weights for unknown terms {unknown}; known terms: {list(TERMS)}")
    for k, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, numbers.Real) or not math.isfinite(w):
            raise ValueError(f"weight for {k!r} must be a finite number, got {w!r}")

    def need(term: str, **args) -> None:
        missing = [a for a, v in args.items() if v is None]
        if missing:
            raise ValueError(f"term {term!r} needs argument(s): {', '.join(missing)}")

    correct = [bool(c) for c in correct]
    for name, items in (("lengths", lengths), ("responses", responses)):
        if items is not None:
            _check_group(items, correct, name)

    cols: dict[str, list[float]] = {}
    for term in TERMS:
        if term not in weights:
            continue
        if term == "correct":
            cols[term] = [float(c) for c in correct]
        elif term == "format":
            need(term, responses=responses)
            cols[term] = [format_reward(r, think_in_prompt=think_in_prompt) for r in responses]
        elif term == "language":
            need(term, responses=responses)
            _target_scripts(lang)  # fail fast on a bad code, even for an empty group
            cols[term] = [language_consistency(r, lang) for r in responses]
        elif term == "length":
            need(term, lengths=lengths)
            cols[term] = length_penalty(lengths, correct)
        else:  # overlong
            need(term, lengths=lengths, max_len=max_len, cache_len=cache_len)
            cols[term] = [overlong_penalty(n, max_len, cache_len) for n in lengths]

    rows = []
    for i, ok in enumerate(correct):
        row = {term: col[i] for term, col in cols.items()}
        row["total"] = sum(
            weights[term] * value for term, value in row.items()
            if term == "correct" or ok or not shaping_on_correct_only
        )
        rows.append(row)
    return rows


def compose(
    correct: Sequence[bool], *, lengths: Sequence[int] | None = None,
    responses: Sequence[str] | None = None, weights: Mapping[str, float] | None = None,
    shaping_on_correct_only: bool = True, max_len: int | None = None,
    cache_len: int | None = None, lang: str = "en", think_in_prompt: bool = False,
) -> list[float]:
    """Total shaped reward per response of one group (see compose_terms)."""
    rows = compose_terms(correct, lengths=lengths, responses=responses, weights=weights,
                         shaping_on_correct_only=shaping_on_correct_only, max_len=max_len,
                         cache_len=cache_len, lang=lang, think_in_prompt=think_in_prompt)
    return [row["total"] for row in rows]
