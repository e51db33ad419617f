"""Find the final answer in a model response.

The final answer is the last `\\boxed{}` / `\\fbox{}`, unless an `Answer: X` line (DAPO), GSM8K's
`#### X` or "the answer is X" comes after it; a response that is only an answer is its own answer.
Text inside an unclosed `<think>` block never counts, and a response that boxes several different
answers gets none. Every scan here is linear in the response: this runs in the caller's thread,
outside the checker's deadline.
"""
from __future__ import annotations

import re

from .normalize import fix_escapes

MAX_RESPONSE_CHARS = 200_000   # longer responses are only searched in their last part
FALLBACK_CHARS = 4_000         # the unmarked fallback looks only at the response's end

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*")


_BRACE = re.compile(r"(?<!\\)[{}]")


def _brace_pairs(s: str, start: int = 0) -> dict[int, int]:
    """Index of each unescaped '{' from `start` on -> index of its matching '}', in one pass."""
    pairs, stack = {}, []
    for m in _BRACE.finditer(s, start):
        if m.group() == "{":
            stack.append(m.start())
        elif stack:
            pairs[stack.pop()] = m.start()
    return pairs


def boxed_all(s: str) -> list[str]:
    """Contents of every complete `\\boxed{...}` / `\\fbox{...}` (nested braces), in order."""
    out, pairs = [], None
    for m in _BOX_RE.finditer(s):
        i = m.end()
        if i < len(s) and s[i] == "{":
            pairs = _brace_pairs(s, i) if pairs is None else pairs
            if i in pairs:
                out.append(s[i + 1:pairs[i]])
        elif i < len(s) and m.group().endswith(" "):          # \boxed 5
            tok = re.match(r"[^\s$]{1,100}", s[i:i + 100])
            if tok:
                out.append(tok.group())
    return out


def _strip_think(response: str) -> str | None:
    """The part after the reasoning; None when a <think> block is never closed."""
    if "<think>" in response.rsplit("</think>", 1)[-1]:
        return None                       # a think block opened after the last close
    return response.rsplit("</think>", 1)[-1]


# (greedy captures, trimmed afterwards: lazy ones before `\s*$` backtrack quadratically on long lines)
_ANSWER_LINE = re.compile(r"(?im)^[ \t*#_]*(?:final[ \t]+)?answer[ \t*_]*[:：][ \t*_]*(.*)$")
_GSM8K = re.compile(r"####[ \t]*(.*)$", re.M)
_THE_ANSWER_IS = re.compile(r"(?i)\bthe\s+(?:final\s+)?answer\s+is\s*:?\s*(.+?)(?:\.\s|\.$|\n|$)")
_MATH_SPAN = re.compile(r"(?<!\\)\$\$(.+?)(?<!\\)\$\$|(?<!\\)\$(.+?)(?<!\\)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.S)


def _unwrap_math(s: str) -> str:
    """`$x$` -> `x`; "is $x$" style prose keeps only its math spans."""
    s = re.sub(r'^(?:\\?")+|(?:\\?")+$', "", s.strip()).strip()
    spans = [next(g for g in m.groups() if g is not None) for m in _MATH_SPAN.finditer(s)]
    if not spans:
        return s
    rest = _MATH_SPAN.sub("", s).strip(" .,;:")
    if not rest or re.fullmatch(r"[\s.,;:]*(?:and|or|,)?[\s.,;:]*", rest):
        return ", ".join(x.strip() for x in spans) if len(spans) > 1 else spans[0].strip()
    return s


_LAST_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:\s*/\s*\d+)?(?:\s*%)?")


def _last_math(text: str) -> str | None:
    """The last math span or number (outside math spans) of a piece of prose, whichever is later."""
    found = [(m.start(), next(g for g in m.groups() if g is not None).strip()) for m in _MATH_SPAN.finditer(text)]
    masked = _MATH_SPAN.sub(lambda m: " " * len(m.group()), text)
    found += [(m.start(), m.group()) for m in _LAST_NUMBER.finditer(masked)]
    found = [f for f in found if f[1]]
    return max(found)[1] if found else None


_SENTENCE_WORDS = re.compile(r"(?i)\b(?:is|are|was|were|equals?|the|so|thus|therefore|hence|we|get|gives)\b")


def _words(s: str) -> list[str]:
    s = re.sub(r"\\[a-zA-Z]+(?:\{[a-zA-Z*]*\})?", " ", _MATH_SPAN.sub(" ", s))   # \begin{pmatrix} is no word
    return re.findall(r"(?<![a-zA-Z])[a-zA-Z]{3,}\b", s)


def _is_prose(s: str) -> bool:
    """A sentence rather than an answer: "The largest $n$ is 34", not "Maximum = 2, Minimum = 1"."""
    return len(_words(s)) >= 2 and bool(_SENTENCE_WORDS.search(_MATH_SPAN.sub(" ", s)))


def extract_answer(response: str, fallback: bool = False) -> tuple[str | None, str]:
    """(answer, how) where `how` names the rule used, or (None, why nothing was found).

    With `fallback`, a response without any marker is answered by its last math span or last
    number (math-verify's behaviour); without it such a response has no answer.
    """
    if not isinstance(response, str):
        raise TypeError(f"response must be a str, got {type(response).__name__}")
    text = _strip_think(response)
    if text is None:
        return None, "unclosed_think"
    if len(text) > MAX_RESPONSE_CHARS:
        text = text[-MAX_RESPONSE_CHARS:]
    boxes = boxed_all(text)
    last_box = max((m.start() for m in _BOX_RE.finditer(text)), default=-1)
    for how, rx in (("answer_line", _ANSWER_LINE), ("gsm8k", _GSM8K), ("answer_is", _THE_ANSWER_IS)):
        found = [m for m in rx.finditer(text) if m.start() > last_box]
        if found:                            # a marker after the last box: it is the final answer
            ans = _unwrap_math(found[-1].group(1).strip().rstrip("*_").strip())
            if ans and _is_prose(ans):           # "Answer: The largest $n$ is 34."
                ans = _last_math(ans)
            return (ans, how) if ans else (None, "empty_answer")
    if boxes:
        distinct = {re.sub(r"\s+", "", b) for b in boxes}
        if len(distinct) > 1:
            return None, "multiple_answers"
        return boxes[-1].strip(), "boxed"
    if last_box >= 0:
        return None, "unclosed_box"
    bare = text.strip()
    if bare and "\n" not in bare and len(bare) <= 100 and len(_words(bare)) < 2:
        ans = _unwrap_math(bare)
        if _MATH_SPAN.search(ans):           # "Answer $ 9 $"
            ans = _last_math(ans)
        return ans, "bare"
    if fallback:
        ans = _last_math(text[-FALLBACK_CHARS:])
        if ans:
            return ans, "last_math"
    return None, "no_answer"


def extract_gold(gold: str) -> str:
    """The reference answer: bare, boxed, or inside a worked solution (then found as in a response).

    Several boxes in a gold answer are its parts (`\\boxed{1} and \\boxed{2}`), joined as a list
    when at most three words stand between them.
    """
    gold = fix_escapes(gold)
    boxes = boxed_all(gold)
    if boxes:
        distinct = list(dict.fromkeys(b.strip() for b in boxes))
        between = _BOX_RE.sub(" ", re.sub(r"\\(?:boxed|fbox)\s*\{(?:[^{}]|\{[^{}]*\})*\}", " | ", gold)).split("|")[1:-1]
        if len(distinct) > 1 and any(len(re.findall(r"[A-Za-z]{2,}", b)) > 3 for b in between):
            return distinct[-1]
        return ", ".join(distinct)
    if len(gold) > 200 or "\n" in gold.strip():
        ans, _ = extract_answer(gold)
        if ans is not None:
            return ans
    return _unwrap_math(gold)
