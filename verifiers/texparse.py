"""A small, fast reader for the common subset of LaTeX math: numbers, single-letter variables with
subscripts, + - * / ^, \\frac, \\sqrt, \\pi, \\infty and the elementary functions.

It reads the same way latex2sympy2_extended does (variables lower-cased, `e` is Euler's number,
`ab` is a*b), about fifty times faster. Anything outside the subset returns None and the caller
falls back to latex2sympy.
"""
from __future__ import annotations

import re

import sympy as sp

_TOKEN = re.compile(r"\s*(\\[a-zA-Z]+|\d+(?:\.\d+)?|\.\d+|[a-zA-Z]|[{}()\[\]^_+\-*/|!])")
_FUNCS = {"sin", "cos", "tan", "cot", "sec", "csc", "ln", "exp", "arcsin", "arccos", "arctan"}   # \log: base 10 in latex2sympy
_CONST = {r"\pi": "pi", r"\infty": "oo"}
_OPS = {r"\cdot": "*", r"\times": "*", r"\div": "/"}


class _Unsupported(Exception):
    pass


def _tokens(s: str) -> list[str]:
    out, pos = [], 0
    while pos < len(s):
        m = _TOKEN.match(s, pos)
        if not m:
            if s[pos:].strip() == "":
                break
            raise _Unsupported
        out.append(m.group(1))
        pos = m.end()
    return out


class _Reader:
    """Turns tokens into a Python expression string with explicit multiplication."""

    def __init__(self, toks: list[str]):
        self.toks, self.i, self.names = toks, 0, set()

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, want: str | None = None) -> str:
        t = self.peek()
        if t is None or (want is not None and t != want):
            raise _Unsupported
        self.i += 1
        return t

    def group(self) -> str:
        """A {...} group, or a single token argument as in \\frac12 or x^2."""
        if self.peek() == "{":
            self.take("{")
            inner = self.expr(stop="}")
            self.take("}")
            return f"({inner})"
        t = self.take()
        if re.fullmatch(r"\d", t) or re.fullmatch(r"[a-zA-Z]", t):
            return self.atom_name(t) if t.isalpha() else t
        if t in _CONST:
            return _CONST[t]
        raise _Unsupported

    def atom_name(self, letter: str) -> str:
        if self.peek() == "(":
            raise _Unsupported                # f(x): a function call, left to latex2sympy
        if self.peek() == "_":                 # a_1, x_{n}, a_{12}
            self.take("_")
            if self.peek() == "{":
                self.take("{")
                sub = ""
                while self.peek() != "}":
                    t = self.take()
                    if not re.fullmatch(r"[a-zA-Z0-9]+", t):
                        raise _Unsupported
                    sub += t
                self.take("}")
            else:
                sub = self.take()
                if not re.fullmatch(r"[a-zA-Z0-9]", sub):
                    raise _Unsupported
            name = f"{letter.lower()}_{sub.lower()}" if len(sub) == 1 else f"{letter.lower()}_{{{sub.lower()}}}"
        elif letter == "e":
            return "E"                        # only a lower-case e is Euler's number
        elif letter == "i":
            return "I"
        else:
            name = letter.lower()
        self.names.add(name)
        return f"Symbol('{name}')"

    def operand(self) -> str:
        t = self.take()
        if re.fullmatch(r"\d+(?:\.\d+)?|\.\d+", t):
            if "." not in t and self.peek() == r"\frac":
                raise _Unsupported            # 918\frac{1}{2} is a mixed number
            out = f"Rational('{t}')" if "." not in t else f"Float('{t}')"
        elif re.fullmatch(r"[a-zA-Z]", t):
            out = self.atom_name(t)
        elif t in _CONST:
            out = _CONST[t]
        elif t == "(" or t == "{":
            close = ")" if t == "(" else "}"
            out = f"({self.expr(stop=close)})"
            self.take(close)
        elif t == r"\frac":
            out = f"({self.group()}/{self.group()})"
        elif t == r"\binom":
            out = f"binomial({self.group()}, {self.group()})"
        elif t == "|":
            out = f"Abs({self.expr(stop='|')})"
            self.take("|")
        elif t == r"\sqrt":
            if self.peek() == "[":
                self.take("[")
                n = self.expr(stop="]")
                self.take("]")
                out = f"root({self.group()}, {n})"
            else:
                out = f"sqrt({self.group()})"
        elif t[1:] in _FUNCS:
            name = {"arcsin": "asin", "arccos": "acos", "arctan": "atan"}.get(t[1:], t[1:])
            power = None
            if self.peek() == "^":                # \tan^2(y), \tan^{-1}(y)
                self.take("^")
                power = self.group()
                if power == "(-Rational('1'))":
                    name, power = {"sin": "asin", "cos": "acos", "tan": "atan"}.get(name), None
                    if name is None:
                        raise _Unsupported
            if self.peek() == "(":
                self.take("(")
                arg = self.expr(stop=")")
                self.take(")")
            elif self.peek() is not None and re.fullmatch(r"[a-zA-Z]|\d+", self.peek()) and (
                    self.i + 1 == len(self.toks) or self.toks[self.i + 1] in ("+", "-", ")", "}", "|", "=")):
                arg = self.operand_atom()             # \sin x, \tan 2: one atom, then an operator
            else:
                raise _Unsupported
            out = f"{name}({arg})" if power is None else f"({name}({arg}))**{power}"
        else:
            raise _Unsupported
        while self.peek() in ("^", "!"):
            if self.take() == "!":
                out = f"factorial({out})"
            else:
                out = f"({out})**{self.group()}"
        return out

    def operand_atom(self) -> str:
        t = self.take()
        return self.atom_name(t) if t.isalpha() else f"Rational('{t}')"

    def expr(self, stop: str | None = None) -> str:
        parts, prev_operand = [], False
        while self.peek() is not None and self.peek() != stop:
            t = self.peek()
            if t in ("+", "-", "*", "/") or t in _OPS:
                self.take()
                parts.append(_OPS.get(t, t))
                prev_operand = False
            else:
                if prev_operand:
                    parts.append("*")             # implicit multiplication: 2x, ab, 3\sqrt{2}
                parts.append(self.operand())
                prev_operand = True
        if not parts or not prev_operand:
            raise _Unsupported
        return "".join(parts)


_NS = {"Symbol": sp.Symbol, "Rational": sp.Rational, "Float": sp.Float, "pi": sp.pi, "oo": sp.oo, "E": sp.E,
       "I": sp.I, "sqrt": sp.sqrt, "root": sp.root, "sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "cot": sp.cot,
       "sec": sp.sec, "csc": sp.csc, "ln": sp.log, "exp": sp.exp, "asin": sp.asin,
       "acos": sp.acos, "atan": sp.atan, "Abs": sp.Abs, "factorial": sp.factorial,
       "binomial": sp.binomial}


def fast_latex(s: str):
    """sympy expression for `s`, or None when `s` is outside the subset this reader knows."""
    try:
        r = _Reader(_tokens(s))
        py = r.expr()
    except (_Unsupported, RecursionError):
        return None
    return eval(py, {"__builtins__": {}}, dict(_NS))   # py holds only names from _NS and literals
