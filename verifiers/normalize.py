"""String clean-up of math answers and an exact number parser: the cheap fast path.

Nothing here imports sympy, so the checker can settle plain numbers and identical strings
without touching the worker pool.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

MAX_ANSWER_CHARS = 2000   # longer extracted answers are rejected before any parsing
MAX_NESTING = 40          # deeper brace / bracket nesting is rejected before any parsing

_CONTROL = {"\x0c": r"\f", "\x08": r"\b", "\x0b": r"\v", "\x07": r"\a", "\r": r"\r", "\t": r"\t"}
_UNICODE = {
    "π": r"\pi ", "∞": r"\infty ", "∪": r"\cup ", "∩": r"\cap ", "≤": r"\le ", "≥": r"\ge ",
    "⩽": r"\le ", "⩾": r"\ge ", "≠": r"\ne ", "＞": ">", "＜": "<", "＝": "=", "×": r"\times ",
    "·": r"\cdot ", "⋅": r"\cdot ", "−": "-", "–": "-", "√": r"\sqrt ", "°": r"^\circ ", "∈": r"\in ",
    "÷": r"\div ", "，": ",", "：": ":", "；": ";", "（": "(", "）": ")", "±": r"\pm ", "∀": r"\forall ",
    "α": r"\alpha ", "β": r"\beta ", "θ": r"\theta ", "λ": r"\lambda ", "\u00a0": " ", "\u2009": " ",
    "％": "%", "∅": r"\emptyset ", "′": "'",
}
_UNICODE_RE = re.compile("|".join(map(re.escape, _UNICODE)))
# Commands that only change typesetting: dropped with their argument kept.
_STYLE_ARG = re.compile(r"\\(?:mathrm|mathbf|mathit|mathsf|mathtt|boldsymbol|bm|"
                        r"operatorname|mathnormal|displaystyle|textstyle|mathbb|mathcal|rm)\s*")
_SPACING = re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|Biggl|Biggr|big|Big|bigg|Bigg)"
                      r"(?![a-zA-Z])|(?<!\\)\\[!,;: ]|\\q?quad(?![a-zA-Z])|\\displaystyle|\\limits|~")
_RENAME = [
    (r"\\[dtc]frac(?![a-zA-Z])", r"\\frac"), (r"\\[dt]binom(?![a-zA-Z])", r"\\binom"),
    (r"\\leqslant|\\leq(?![a-zA-Z])|<=|\\le(?![a-zA-Z])", r"\\le "),
    (r"\\geqslant|\\geq(?![a-zA-Z])|>=|\\ge(?![a-zA-Z])", r"\\ge "),
    (r"\\neq(?![a-zA-Z])|!=|\\ne(?![a-zA-Z])", r"\\ne "), (r"\\lt(?![a-zA-Z])", "<"), (r"\\gt(?![a-zA-Z])", ">"),
    (r"\\textnormal|\\mbox|\\hbox|\\textup|\\textbf|\\textit|\\textrm|\\textsf", r"\\text"),
    (r"\\frac\s*(\d)\s*(\d)", r"\\frac{\1}{\2}"), (r"\\frac\s*(\d)\s*\{", r"\\frac{\1}{"),
    (r"\\frac\s*(\{[^{}]*\})\s*(\d)", r"\\frac\1{\2}"), (r"\\sqrt\s*(\d)", r"\\sqrt{\1}"),
    (r",\\!\s*(?=\d{3})", ","), (r"\\dots|\\ldots|\\cdots", r"\\dots"),
    (r"\\varepsilon", r"\\epsilon"), (r"\\varphi", r"\\phi"), (r"\\emptyset|\\varnothing", r"\\emptyset"),
    (r"\^\{?\\circ\}?|\\circ|\\degree|\^\{\\text\{o\}\}", r"^\\circ"),
    (r"\\text\{\s*(sin|cos|tan|cot|sec|csc|log|ln|exp)\s*\}", r"\\\1"),
    (r"<sup>(.*?)</sup>", r"^{\1}"), (r"<sub>(.*?)</sub>", r"_{\1}"),
]
_RENAME = [(re.compile(a), b) for a, b in _RENAME]


def fix_escapes(s: str) -> str:
    """Undo JSON escapes eaten from LaTeX: a form feed that was "\\f" of "\\frac", a tab of "\\text"."""
    return "".join(_CONTROL.get(c, c) for c in s) if any(c in _CONTROL for c in s) else s


def clean(s: str) -> str:
    """Undo encoding accidents and drop typesetting-only LaTeX. Keeps the mathematical content."""
    s = fix_escapes(s)
    s = re.sub(r"\\\\(?=[a-zA-Z]{2})", r"\\", s)    # doubly escaped commands: \\frac -> \frac
    s = _UNICODE_RE.sub(lambda m: _UNICODE[m.group()], s)
    for pat, rep in _RENAME:
        s = pat.sub(rep, s)
    s = s.replace(r"\!", "")
    s = _SPACING.sub(" ", s)
    s = _STYLE_ARG.sub("", s)
    s = s.replace(r"\$", "").replace("$", "").replace(r"\%", "%")
    s = re.sub(r"\.(?!\d)", " ", s)                  # sentence full stops, not decimal points
    s = re.sub(r"\s+", " ", s).strip(" ,;:")
    s = re.sub(r"(?<=\d)\\$", "", s).strip()     # "185\"
    return s


def nesting_depth(s: str) -> int:
    depth = best = 0
    for c in s:
        if c in "{([":
            depth += 1
            best = max(best, depth)
        elif c in "})]":
            depth = max(0, depth - 1)
    return best


def too_pathological(s: str) -> str | None:
    """A reason to refuse an answer before any parsing, or None."""
    if len(s) > MAX_ANSWER_CHARS:
        return "too_long"
    if nesting_depth(s) > MAX_NESTING:
        return "too_deep"
    return None


def squash(s: str) -> str:
    """Canonical string for exact comparison: cleaned, no spaces between non-letters, no braces
    around single characters (\\frac{1}{2} = \\frac12, but \\frac{12}{3} != \\frac{1}{23})."""
    s = clean(s)
    s = re.sub(r"\\text\{([^{}]*)\}", r"\1", s)
    s = re.sub(r"(?<![a-zA-Z])\s+|\s+(?![a-zA-Z])", "", s)
    return re.sub(r"\{(.)\}", r"\1", s).lower()


# ---------------------------------------------------------------- plain numbers, exactly

@dataclass(frozen=True)
class Number:
    value: Fraction
    decimals: int | None   # digits after the decimal point when written as a decimal, else None
    sig: int               # significant digits as written (for rounding tolerance)
    percent: bool = False
    degrees: bool = False


_INT = r"(?:[1-9]\d{0,2}(?:(?:,|\{,\}|,\\!|\\,|\s)\d{3})+|\d+)"
_NUM_RE = re.compile(rf"^(?P<sign>[-+]?)\s*(?P<int>{_INT})?(?:\.(?P<frac>\d+))?"
                     rf"(?:\s*(?:[eE](?P<e1>[-+]?\d+)|\s*(?:\\times|\\cdot|\*|x)\s*10\s*\^\s*\{{?\(?(?P<e2>[-+]?\d+)\)?\}}?))?$")
_FRAC_RE = re.compile(r"^(?P<sign>[-+]?)\s*(?:(?P<whole>\d+)\s*)?\\frac\s*\{\s*(?P<n>\d+)\s*\}\s*\{\s*(?P<d>\d+)\s*\}$"
                      r"|^(?P<sign2>[-+]?)\s*\\frac\s*(?P<n2>\d)(?P<d2>\d)$"
                      r"|^(?P<sign3>[-+]?)\s*(?P<n3>\d+)\s*/\s*(?P<d3>\d+)$")
# a unit after a number: \text{...}, or words after a space (one letter only for common SI symbols,
# so that "3 x" and "3R^2" keep their variable)
_UNIT_TAIL = re.compile(r"(?:\s*\\text\{\s*[a-zA-Z][a-zA-Z .]*\}|\s+(?:[a-zA-Z]{2,}|[mgsLKNJWV])(?:\s+[a-zA-Z]+)*)"
                        r"(?:\^\{?[23]\}?|²|³)?$")
_PERCENT_WORDS = re.compile(r"\s*(?:%|\\text\{\s*%\s*\}|percent(?:age)?|pct)\s*$")


def _digits(int_part: str, frac: str) -> int:
    d = (int_part + frac).lstrip("0")
    return len(d) if d else 1


def parse_number(s: str) -> Number | None:
    """An exact number from a plain numeric answer, or None when the answer is anything else.

    Accepts integers (with thousands separators), decimals, scientific notation, simple and mixed
    fractions, a percent sign, a degree sign, a currency sign and a trailing unit word.
    """
    if len(s) > 200:                      # no plain number is written that long
        return None
    s = clean(s)
    percent = degrees = False
    m = _PERCENT_WORDS.search(s)
    if m:
        percent, s = True, s[:m.start()]
    if s.endswith(r"^\circ"):
        degrees, s = True, s[: -len(r"^\circ")].strip()
    s = re.sub(r"(?<![a-zA-Z])\{([a-zA-Z ]*)\}", r"\1", s.strip())     # \mathrm{m} left as {m}
    s = re.sub(r"(\d)(?:st|nd|rd|th)\b", r"\1", s)                     # 15th day
    while s.startswith("{") and s.endswith("}") and "{" not in s[1:-1]:
        s = s[1:-1].strip()
    if not percent and not degrees:
        s2 = _UNIT_TAIL.sub("", s)
        if s2 != s and re.search(r"\d\s*$", s2):
            s = s2.strip()
    if not s or len(s) > 80:
        return None
    m = _NUM_RE.match(s)
    if m and (m.group("int") or m.group("frac")):
        int_part = re.sub(r"\D", "", m.group("int") or "")
        frac = m.group("frac") or ""
        value = Fraction(int(int_part or "0")) + (Fraction(int(frac), 10 ** len(frac)) if frac else 0)
        exp = m.group("e1") or m.group("e2")
        if exp is not None:
            if abs(int(exp)) > 400:
                return None
            value *= Fraction(10) ** int(exp)
        if m.group("sign") == "-":
            value = -value
        return Number(value, len(frac) if frac and exp is None else None, _digits(int_part, frac), percent, degrees)
    m = _FRAC_RE.match(s)
    if m:
        if m.group("n3") is not None:
            sign, n, d, whole = m.group("sign3"), m.group("n3"), m.group("d3"), None
        elif m.group("n2") is not None:
            sign, n, d, whole = m.group("sign2"), m.group("n2"), m.group("d2"), None
        else:
            sign, n, d, whole = m.group("sign"), m.group("n"), m.group("d"), m.group("whole")
        if int(d) == 0:
            return None
        value = Fraction(int(n), int(d)) + int(whole or 0)
        return Number(-value if sign == "-" else value, None, 99, percent, degrees)
    return None


def _rounds_to(exact: Fraction, shown: Number) -> bool:
    """True when `shown` is `exact` rounded or truncated to the decimals `shown` displays."""
    unit = Fraction(1, 10 ** (shown.decimals or 0))
    diff = abs(exact - shown.value)
    if diff * 2 <= unit:                      # rounded (half a unit in the last place)
        return True
    truncated = Fraction(int(exact / unit)) * unit   # int() truncates towards zero
    return truncated == shown.value


def numbers_equal(pred: Number, gold: Number) -> bool:
    """Exact equality, with rounding tolerance only where a decimal is written.

    A decimal with at least 3 significant digits matches a value it is a rounding (or
    truncation) of, at the number of decimals it shows: gold 6.67 accepts 20/3, a predicted 118
    accepts gold 117.95. Integers and fractions compare exactly: 9999 never equals 10000.
    """
    p, g = pred.value, gold.value
    candidates = [p]
    if pred.percent and not gold.percent:
        candidates.append(p / 100)
    if gold.percent and not pred.percent:
        candidates.append(p * 100)
    for v in candidates:
        if v == g:
            return True
        if gold.decimals and gold.sig >= 3 and _rounds_to(v, gold):
            return True
        if pred.decimals is not None and pred.sig >= 3 and v == p and _rounds_to(g, pred):
            return True
        if pred.decimals is None and gold.decimals and pred.sig >= 3 and pred.sig < 99 and v.denominator == 1:
            # an integer answer that rounds a decimal gold, half up (117.95% -> 118%, 165.5 -> 166)
            if v == (g + Fraction(1, 2)).__floor__():
                return True
    return False
