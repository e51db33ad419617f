"""Equivalence of two math answers: structure first, then sympy.

An answer is read into a small tree (`Node`): a list (ordered tuple or interval, unordered set or
bare list), a union of sets, a relation chain (`x = 3`, `1 < x < 2`), a matrix, plain text, or an
expression. Two trees are compared by kind; expressions are compared exactly where they are
numbers and by evaluation at fixed random points plus sympy simplification where they have free
symbols. This module runs inside the worker processes (see `verifiers.workers`), so a check that
hangs sympy can be killed from outside.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from fractions import Fraction

import mpmath
import sympy as sp
from latex2sympy2_extended import latex2sympy

from .normalize import Number, clean, numbers_equal, parse_number, squash
from .texparse import fast_latex

# ---------------------------------------------------------------- the answer tree


@dataclass
class Node:
    kind: str                     # expr | text | list | set | seq | union | diff | rel | matrix
    text: str = ""                # the source text (expr, text); the variable of a set-builder
    items: list = field(default_factory=list)
    ops: list = field(default_factory=list)   # rel: the operators between items
    brackets: str = ""            # seq: "()", "[)", ...; list: "" (bare) ; set: "{}"


_OPEN, _CLOSE = "([{", ")]}"
_REL_RE = re.compile(r"\\le(?![a-zA-Z])|\\ge(?![a-zA-Z])|\\ne(?![a-zA-Z])|\\in(?![a-zA-Z])|=|<|>")


def _top_level(s: str, pattern: re.Pattern) -> list[re.Match]:
    """Matches of `pattern` in s that start outside every bracket and brace."""
    depth, at = 0, []
    for c in s:
        at.append(depth)
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth = max(0, depth - 1)
    return [m for m in pattern.finditer(s) if at[m.start()] == 0 and m.end() > m.start()]


def _split(s: str, pattern: re.Pattern) -> list[str]:
    parts, last = [], 0
    for m in _top_level(s, pattern):
        parts.append(s[last:m.start()])
        last = m.end()
    parts.append(s[last:])
    return parts


def _matching_close(s: str, i: int) -> int:
    """Index of the bracket closing s[i], counting ( [ { alike (intervals mix them)."""
    depth = 0
    for j in range(i, len(s)):
        if s[j] in _OPEN:
            depth += 1
        elif s[j] in _CLOSE:
            depth -= 1
            if depth == 0:
                return j
    return -1


_SEP_WORDS = re.compile(r"\s*\\text\{\s*(?:and|or|,)\s*\}\s*|\s+(?:and|or)\s+|(?<=[\d)}\]])\s*(?:and|or)\s*(?=[-\d(\\$])")
_TRAILING_CLAUSE = re.compile(r"\s*(?:\\text\{\s*(?:for|where|when|if|with)\b.*|,?\s*(?:for all|for some|for any|where)\b.*)$", re.S)
_LABEL_PREFIX = re.compile(r"^\s*(?:[A-Za-z][A-Za-z ]{0,30}?\s*\d*\s*:(?!=)\s*)(?=\S)")


def parse(s: str) -> Node:
    """Read a cleaned answer string into a Node."""
    s = s.strip().strip(" ,;.")
    s = _TRAILING_CLAUSE.sub("", s).strip()
    while s.startswith("{") and _matching_close(s, 0) == len(s) - 1:
        s = s[1:-1].strip()                          # TeX grouping braces, not a set
    if not s:
        return Node("text", "")
    # lists: ';' separates groups, then ',' and 'and' / 'or'
    for sep in (re.compile(r";"), re.compile(r",|" + _SEP_WORDS.pattern)):
        parts = [p for p in _split(s, sep) if p.strip()]
        if len(parts) > 1:
            if sep.pattern != ";" and parse_number(s) is not None:
                break                       # 7,425,000 is one number
            return Node("list", items=[parse(p) for p in parts])
    if not (re.match(r"^\s*[A-Za-z]\s*:", s) and "=" in s):     # "Paolo: 18", but not "A:B=1"
        s = _LABEL_PREFIX.sub("", s)
    diff = re.search(r"\\\}\s*(?:-|\\setminus)\s*\\\{", s)
    if diff:
        return Node("diff", items=[parse(s[:diff.start() + 2]), parse(s[diff.end() - 2:])])
    if r"\cup" in s:
        parts = _split(s, re.compile(r"\\cup(?![a-zA-Z])"))
        if len(parts) > 1:
            return Node("union", items=[parse(p) for p in parts])
    rel = _top_level(s, _REL_RE)
    if rel:
        items, ops, last = [], [], 0
        for m in rel:
            items.append(s[last:m.start()].strip())
            ops.append(m.group())
            last = m.end()
        items.append(s[last:].strip())
        if all(items):
            return Node("rel", items=[parse(x) for x in items], ops=ops)
    if re.fullmatch(r"[\[(]\s*\\begin\{.*\\end\{[a-zA-Z]+\}\s*[\])]", s, re.S):
        s = s[1:-1].strip()                          # \left[ \begin{array} ... \end{array} \right]
    if s.startswith(r"\begin{") and s.count(r"\begin{") == 1 and re.search(r"\\end\{[a-zA-Z]+\}$", s) and re.match(r"\\begin\{[pbvBV]?matrix\}|\\begin\{array\}", s):
        body = re.sub(r"^\\begin\{[a-zA-Z]+\}(\{[^{}]*\})?|\\end\{[a-zA-Z]+\}$", "", s).strip()
        rows = [r for r in re.split(r"\\\\", body) if r.strip()]
        return Node("matrix", s, items=[[parse(c) for c in r.split("&")] for r in rows])
    if s[0] in "([" and s[-1] in ")]" and _matching_close(s, 0) == len(s) - 1:
        inner = s[1:-1]
        parts = _split(inner, re.compile(r"[,;]"))
        if len(parts) > 1:
            return Node("seq", items=[parse(p) for p in parts], brackets=s[0] + s[-1])
        if s[0] == "(":
            return parse(inner)
    if s.startswith("\\{") and s.endswith("\\}"):
        inner = s[2:-2].strip()
        m = re.match(r"^([a-zA-Z])\s*(?:\||:|\\mid)\s*(.+)$", inner)
        if m:
            return Node("rel", items=[parse(m.group(2))], ops=["builder"], text=m.group(1))
        parts = _split(inner, re.compile(r"[,;]"))
        return Node("set", items=[parse(p) for p in parts if p.strip()])
    if r"\pm" in s:
        a, b = s.replace(r"\pm", "+", 1), s.replace(r"\pm", "-", 1)
        return Node("set", items=[parse(a), parse(b)])
    bare = re.sub(r"\\text\{([^{}]*)\}", r"\1", s).strip()
    if len(re.findall(r"(?<![\\a-zA-Z])[a-zA-Z]{3,}\b", bare)) >= 3 and re.search(r"[a-zA-Z]{3,} [a-zA-Z]{2,}", bare):
        return Node("text", bare)                  # prose
    if re.fullmatch(r"[A-Za-z][A-Za-z' \-]*[A-Za-z]", bare) and (len(bare) >= 3 or " " in bare):
        return Node("text", bare)
    return Node("expr", s)


# ---------------------------------------------------------------- expressions


class Unparsable(ValueError):
    pass


_UNIT_WORDS = re.compile(r"\\text\{[^{}]*\}")


@functools.lru_cache(maxsize=4096)
def to_sympy(s: str):
    """sympy object for an expression string (cached: gold answers repeat)."""
    t = _UNIT_WORDS.sub(" ", s) if re.search(r"[\d)]", _UNIT_WORDS.sub("", s)) else s
    t = re.sub(r"\^\\circ", "", t).strip()
    t = t.replace(":", "/")                       # ratios: 5:8, and ":" as division
    if not t:
        raise Unparsable(s)
    e = fast_latex(t)
    if e is None:
        try:
            e = latex2sympy(t)
        except Exception as exc:                  # latex2sympy raises many kinds
            raise Unparsable(f"{s}: {type(exc).__name__}") from None
    if isinstance(e, sp.Basic) and e.has(sp.zoo, sp.nan):
        raise Unparsable(f"{s}: undefined value")
    if isinstance(e, sp.Basic) and sp.Symbol("i") in getattr(e, "free_symbols", ()):
        e = e.subs(sp.Symbol("i"), sp.I)
    return e


# fixed "random" points for comparing expressions with free symbols (reproducible verdicts)
_POINTS = [sp.Rational(n, 10000) for n in (3713, 6271, 2193, 8457, 4139)]


def _num(e):
    """The value of a closed-form number at 40 digits as an mpmath complex, or None.

    mpmath keeps the exponent range (1/2006! is about 1e-5760), which floats would flush to 0."""
    try:
        v = sp.N(e, 40)
        if not v.is_number or v.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
            return None if not v.is_infinite else v
        re_, im = v.as_real_imag()
        return mpmath.mpc(mpmath.mpf(sp.Float(re_, 40)), mpmath.mpf(sp.Float(im, 40)))
    except (TypeError, ValueError, AttributeError, ArithmeticError):
        return None


def _close(a, b, rel: float = 1e-12) -> bool:
    """Relative closeness: no absolute floor, so tiny values (1/2^99 vs 1/2^98) stay apart."""
    if isinstance(a, sp.Basic) or isinstance(b, sp.Basic):   # infinities
        return a == b
    if a == 0 or b == 0:                   # an exact zero against rounding noise of 40-digit arithmetic
        return abs(a - b) < 1e-35
    return abs(a - b) <= rel * max(abs(a), abs(b))


def _has_decimal(s: str) -> bool:
    return bool(re.search(r"\d\.\d", s))


_BASE = re.compile(r"^\s*([0-9A-Za-z]+)_\{?(\d+)\}?\s*$")


def exprs_equal(p: str, g: str) -> bool:
    gb, pb = _BASE.match(g), _BASE.match(p)
    if gb or pb:                                   # 4210_{5}: digits in a base, compared as written
        if not gb or (pb and pb.group(2) != gb.group(2)):
            return False
        return (pb.group(1) if pb else p.strip()).lower() == gb.group(1).lower()
    np_, ng = parse_number(p), parse_number(g)
    if np_ is not None and ng is not None:
        return numbers_equal(np_, ng)
    a, b = to_sympy(p), to_sympy(g)
    if isinstance(a, sp.Expr) and isinstance(b, sp.Expr):     # 30 degrees vs pi/6
        if r"^\circ" in p and r"\pi" in g:
            a = a * sp.pi / 180
        elif r"^\circ" in g and r"\pi" in p:
            b = b * sp.pi / 180
    if not isinstance(a, sp.Expr) or not isinstance(b, sp.Expr):
        return _sets_equal(a, b)
    if a == b:
        return True
    fa, fb = a.free_symbols, b.free_symbols
    if fa != fb:
        da, db = fa - fb, fb - fa
        if len(da) == 1 and len(db) == 1 and not (a.is_Symbol or b.is_Symbol):
            # the same answer in another variable: 2m + 1007 vs 2n + 1007
            a = a.xreplace({da.pop(): db.pop()})
    syms = sorted(a.free_symbols | b.free_symbols, key=str)
    if a.has(sp.Sum, sp.Product, sp.Integral, sp.Derivative, sp.Limit) or b.has(
            sp.Sum, sp.Product, sp.Integral, sp.Derivative, sp.Limit):
        return sp.expand(a - b) == 0             # too slow to evaluate at points, or to simplify
    if not syms:
        va, vb = _num(a), _num(b)
        if va is None or vb is None:
            return sp.simplify(a - b) == 0
        if isinstance(va, mpmath.mpc) and isinstance(vb, mpmath.mpc) and va.imag == 0 and vb.imag == 0:
            # a written decimal against a closed form: rounding rules
            if np_ is not None and np_.decimals is not None:
                return numbers_equal(np_, _as_number(b))
            if ng is not None and ng.decimals is not None:
                return numbers_equal(_as_number(a), ng)
        return _close(va, vb, 1e-9 if (_has_decimal(p) or _has_decimal(g)) else 1e-25)
    good = 0
    for k in range(len(_POINTS)):
        subs = {s: _POINTS[(i + k) % len(_POINTS)] for i, s in enumerate(syms)}
        va, vb = _num(a.xreplace(subs)), _num(b.xreplace(subs))
        if va is None or vb is None:
            continue
        if not _close(va, vb, 1e-9):
            return False
        good += 1
    if good >= 3:
        return True
    try:
        return sp.simplify(a - b) == 0
    except Exception:
        return False


def _as_number(e) -> Number:
    """A closed-form real number as an exact-enough Number (50 significant digits)."""
    return Number(Fraction(str(sp.N(e, 50))), None, 99)


# ---------------------------------------------------------------- sets and relations


def to_set(node: Node):
    """sympy set for an interval, union, set or one-variable relation; None if not a set."""
    if node.kind == "seq" and len(node.items) == 2 and node.brackets[0] in "([" and node.brackets[1] in ")]":
        lo, hi = (to_sympy(x.text) if x.kind == "expr" else None for x in node.items)
        if lo is None or hi is None or not (lo.is_number and hi.is_number):
            return None
        if (lo.is_infinite and node.brackets[0] == "[") or (hi.is_infinite and node.brackets[1] == "]"):
            return None                   # a closed bracket at infinity is no interval
        return sp.Interval(lo, hi, node.brackets[0] == "(", node.brackets[1] == ")")
    if node.kind == "set":
        vals = [to_sympy(x.text) for x in node.items if x.kind == "expr"]
        return sp.FiniteSet(*vals) if len(vals) == len(node.items) else None
    if node.kind in ("union", "list"):
        sets = [to_set(x) for x in node.items]
        if any(x is None for x in sets):
            return None
        return sp.Union(*sets) if node.kind == "union" or all(
            x.kind == "rel" for x in node.items) else None
    if node.kind == "diff":
        a, b = (to_set(x) for x in node.items)
        return None if a is None or b is None else sp.Complement(a, b)
    if node.kind == "rel" and node.ops == ["builder"]:
        return _relation_set(node.items[0])
    if node.kind == "rel":
        return _relation_set(node)
    if node.kind == "expr":
        e = to_sympy(node.text)
        return e if isinstance(e, sp.Set) else None
    return None


def _relation_set(node: Node):
    """{x : relation} for a chain like a < x <= b, x \\in S, x \\ne 3, or 'cond - {p}'."""
    if node.kind == "list":
        sets = [_relation_set(x) for x in node.items]
        return None if any(s is None for s in sets) else sp.Intersection(*sets)
    if node.kind != "rel":
        return None
    items = node.items
    if any(op == "=" for op in node.ops) and len(items) == 2:
        lhs, rhs = items
        if lhs.kind == "expr" and rhs.kind == "expr" and not _has_free(rhs):
            return sp.FiniteSet(to_sympy(rhs.text))
        return None
    if node.ops == [r"\in"]:
        return to_set(items[1]) if re.fullmatch(r"\s*[a-zA-Z]\s*", items[0].text) else None
    # the variable is the one non-numeric item
    exprs = []
    for x in items:
        if x.kind != "expr":
            return None
        exprs.append(to_sympy(x.text))
    if not all(isinstance(e, sp.Expr) for e in exprs):
        return None
    free = [i for i, e in enumerate(exprs) if e.free_symbols]
    if len(free) != 1:
        return None
    target = exprs[free[0]]
    x = sp.Dummy("x", real=True)
    if target.is_Symbol or isinstance(target, sp.core.function.AppliedUndef):
        body = x                                  # x, or f(x) in 0 < f(x) < 1 (the range of f)
    elif len(target.free_symbols) == 1:
        body = target.xreplace({next(iter(target.free_symbols)): x})   # 1 <= |z| <= 3/2
    else:
        return None
    sets = []
    for (i, op) in enumerate(node.ops):
        left = body if i == free[0] else exprs[i]
        right = body if i + 1 == free[0] else exprs[i + 1]
        rel = {"<": sp.Lt, ">": sp.Gt, r"\le": sp.Le, r"\ge": sp.Ge, r"\ne": sp.Ne}.get(op)
        if rel is None:
            return None
        sets.append(_simple_interval(op, left, right, x) if body is x else None)
        if sets[-1] is None:
            try:
                sets[-1] = sp.solveset(rel(left, right), x, sp.S.Reals)
            except Exception:
                return None
    return sp.Intersection(*sets)


def _simple_interval(op: str, left, right, x):
    """The interval of `x op number` or `number op x` without solveset (which is slow), or None."""
    if left is x and right.is_real and right.is_number:
        bound, x_left = right, True
    elif right is x and left.is_real and left.is_number:
        bound, x_left = left, False
    else:
        return None
    if op == r"\ne":
        return sp.Union(sp.Interval.open(-sp.oo, bound), sp.Interval.open(bound, sp.oo))
    below = (op in ("<", r"\le")) == x_left               # x < b  or  b > x: x is below the bound
    closed = op in (r"\le", r"\ge")
    return sp.Interval(-sp.oo, bound, True, not closed) if below else sp.Interval(bound, sp.oo, not closed, True)


def _has_free(node: Node) -> bool:
    try:
        e = to_sympy(node.text)
    except Unparsable:
        return True
    return bool(getattr(e, "free_symbols", True))


def _sets_equal(a, b) -> bool:
    if isinstance(a, sp.Set) and isinstance(b, sp.Set):
        try:
            return bool(sp.Complement(a, b) == sp.S.EmptySet and sp.Complement(b, a) == sp.S.EmptySet) or a == b
        except Exception:
            return a == b
    return a == b


# ---------------------------------------------------------------- labels and equations


def _is_label(node: Node) -> bool:
    """A name rather than a value: x, f(x), S_n, |AB|, (p, q), \\frac{NO}{BO}, Maximum."""
    if node.kind == "seq":
        return all(_is_label(x) for x in node.items)
    if node.kind == "text":
        return len(node.text) < 30
    if node.kind != "expr":
        return False
    t = re.sub(r"_\{?[^{}\s]*\}?", "", node.text)        # subscripts may hold digits
    return not re.search(r"\d|\\(?:pi|infty|sqrt)|[+\-]", t) and len(t) < 30


def _rename_argument(p_label: Node, g_label: Node, pv: Node) -> Node:
    """f(x) = x answers f(z) = z: write the prediction in the gold's argument."""
    pm = re.fullmatch(r"\s*([a-zA-Z]+)\s*\(\s*([a-zA-Z])\s*\)\s*", p_label.text)
    gm = re.fullmatch(r"\s*([a-zA-Z]+)\s*\(\s*([a-zA-Z])\s*\)\s*", g_label.text)
    if pm and gm and pm.group(1) == gm.group(1) and pm.group(2) != gm.group(2):
        text = re.sub(rf"(?<![a-zA-Z\\]){pm.group(2)}(?![a-zA-Z])", gm.group(2), pv.text)
        return Node("expr", text)
    return pv


def _value(node: Node) -> Node:
    """The value an answer states: `k = 3` -> 3, `x = 5+5+1 = 11` -> 11; else itself."""
    if node.kind == "rel" and node.ops and all(op == "=" for op in node.ops):
        if len(node.items) > 2 or _is_label(node.items[0]):
            return node.items[-1]
    if node.kind == "rel" and node.ops == [r"\in"] and _is_label(node.items[0]):
        return node.items[1]
    return node


def _equation(node: Node):
    """lhs - rhs of a two-sided equation, or None."""
    if node.kind == "rel" and node.ops == ["="] and all(x.kind == "expr" for x in node.items):
        try:
            a, b = (to_sympy(x.text) for x in node.items)
        except Unparsable:
            return None
        if isinstance(a, sp.Expr) and isinstance(b, sp.Expr):
            return a - b
    return None


def _equations_equal(p, g) -> bool:
    """Same equation up to a constant factor and rearrangement: 2x+4y-3=0 vs y=-x/2+3/4."""
    if p == 0 or g == 0:
        return False
    ratio = sp.simplify(p / g)
    return bool(ratio.is_number and ratio != 0)


# ---------------------------------------------------------------- comparison


def _dedupe(nodes: list) -> list:
    seen, out = set(), []
    for n in nodes:
        key = repr(n) if n.kind != "expr" else squash(n.text)
        if key not in seen:
            seen.add(key)
            out.append(n)
    return out


def _multiset_equal(ps: list, gs: list, eq) -> bool:
    if len(ps) != len(gs):
        return False
    left = list(ps)
    for g in gs:
        for i, p in enumerate(left):
            if eq(p, g):
                del left[i]
                break
        else:
            return False
    return True


def _is_relational(node: Node) -> bool:
    return node.kind == "rel" and any(op != "=" for op in node.ops) or (
        node.kind == "list" and node.items and all(_is_relational(x) or x.kind == "rel" for x in node.items)
        and any(_is_relational(x) for x in node.items))


def _set_like(node: Node) -> bool:
    return node.kind in ("union", "diff") or _is_relational(node) or (
        node.kind == "seq" and len(node.items) == 2) or (node.kind == "rel" and node.ops == ["builder"])


def nodes_equal(p: Node, g: Node) -> bool:
    """Is the predicted answer `p` the gold answer `g`?"""
    if g.kind == "text" or p.kind == "text":
        if p.kind == "text" and g.kind == "text":
            return squash(p.text) == squash(g.text) or _text_contains(p.text, g.text)
        other = g if p.kind == "text" else p
        if other.kind == "expr" and re.fullmatch(r"[A-Za-z]+", squash(other.text)):
            return squash(p.text) == squash(g.text)
        return False
    ge, pe = _equation(g), _equation(p)
    gv, pv = _value(g), _value(p)
    if ge is not None and pe is not None and (gv is g) != (pv is p):
        return _equations_equal(pe, ge)          # y = -x/2 + 3/4 vs 2x + 4y - 3 = 0
    # labelled answers: compare what they state
    if gv is not g or pv is not p:
        if gv is not g and pv is not p and pv.kind == "expr":
            pv = _rename_argument(p.items[0], g.items[0], pv)
        return nodes_equal(pv, gv)
    # one-variable relations and intervals: compare the sets they describe
    if _set_like(g) and _set_like(p) and (_is_relational(g) or _is_relational(p) or "union" in (p.kind, g.kind)
                                          or "builder" in p.ops + g.ops):
        if p.kind == "seq" and g.kind == "seq":
            return _seq_equal(p, g)
        a, b = to_set(p), to_set(g)
        if a is not None and b is not None:
            return _sets_equal(a, b)
        if p.kind == "union" and g.kind == "union":
            return _multiset_equal(p.items, g.items, nodes_equal)
        return False
    if ge is not None and pe is not None:
        return _equations_equal(pe, ge)
    if ge is not None and p.kind == "expr":
        if _is_identity(ge):          # gold "expression = its value": either side will do
            return nodes_equal(p, g.items[1]) or nodes_equal(p, g.items[0])
        return _solved_equal(p, g, ge)
    if g.kind == "rel" or p.kind == "rel":
        if g.kind == "rel" and p.kind == "rel" and g.ops == p.ops and len(g.items) == len(p.items):
            return all(nodes_equal(a, b) for a, b in zip(p.items, g.items))
        return False
    if g.kind == "matrix" or p.kind == "matrix":
        return _matrix_equal(p, g)
    if g.kind == "seq" or p.kind == "seq":
        if g.kind == "seq" and p.kind == "seq":
            return _seq_equal(p, g)
        other = p if g.kind == "seq" else g
        if other.kind == "list" and g.brackets[:1] in "(" and p.brackets[:1] in "(":
            return len(p.items) == len(g.items) and all(nodes_equal(a, b) for a, b in zip(p.items, g.items))
        return False
    if g.kind in ("list", "set") or p.kind in ("list", "set"):
        gi = [_value(x) for x in g.items] if g.kind in ("list", "set") else [g]
        pi = [_value(x) for x in p.items] if p.kind in ("list", "set") else [p]
        if len(gi) != len(pi):                       # a solution listed twice is still one solution
            gi, pi = _dedupe(gi), _dedupe(pi)
        if len(gi) == 1 and len(pi) == 1 and (gi[0] is not g or pi[0] is not p):
            return nodes_equal(pi[0], gi[0])
        if len(gi) != len(pi) or len(gi) == 1:
            return False
        return _multiset_equal(pi, gi, nodes_equal)
    if g.kind == "union" or p.kind == "union":
        return False
    try:
        return exprs_equal(p.text, g.text)
    except Unparsable:
        return squash(p.text) == squash(g.text)


def _seq_equal(p: Node, g: Node) -> bool:
    return (p.brackets == g.brackets and len(p.items) == len(g.items)
            and all(nodes_equal(a, b) for a, b in zip(p.items, g.items)))


def _matrix_equal(p: Node, g: Node) -> bool:
    def rows(n: Node):
        if n.kind == "matrix":
            return n.items
        if n.kind in ("seq", "list") and n.brackets in ("()", "[]", ""):
            return [[x] for x in n.items]
        return None
    a, b = rows(p), rows(g)
    if a is None or b is None:                # a matrix expression such as A + B
        try:
            ma, mb = to_sympy(p.text).doit(), to_sympy(g.text).doit()
        except (Unparsable, AttributeError):
            return False
        if isinstance(ma, sp.MatrixBase) and isinstance(mb, sp.MatrixBase) and ma.shape == mb.shape:
            return all(sp.simplify(x) == 0 for x in (ma - mb))
        return False
    if len(a) == 1 and len(b) > 1 and len(a[0]) == len(b):     # a row vector written for a column
        a = [[x] for x in a[0]]
    if len(b) == 1 and len(a) > 1 and len(b[0]) == len(a):
        b = [[x] for x in b[0]]
    return len(a) == len(b) and all(len(r) == len(s) and all(nodes_equal(x, y) for x, y in zip(r, s))
                                    for r, s in zip(a, b))


def _is_identity(e) -> bool:
    syms = sorted(e.free_symbols, key=str)
    for k in range(3):
        v = _num(e.xreplace({s: _POINTS[(i + k) % 5] for i, s in enumerate(syms)}))
        if not isinstance(v, mpmath.mpc) or abs(v) > 1e-12:
            return False
    return True


def _solved_equal(p: Node, g: Node, ge) -> bool:
    """Gold is an equation such as y + 1 = -(2x-1)^2, the prediction an expression: solve gold for
    the one symbol the prediction lacks and compare."""
    try:
        pe = to_sympy(p.text)
    except Unparsable:
        return False
    if not isinstance(pe, sp.Expr):
        return False
    missing = ge.free_symbols - pe.free_symbols
    if len(missing) != 1 or not pe.free_symbols:
        return False
    sols = sp.solve(ge, missing.pop())
    return len(sols) == 1 and sp.simplify(sols[0] - pe) == 0


_NEGATION = re.compile(r"\b(?:not|no|never|neither|nor|cannot|isn't|doesn't)\b", re.I)
_STOP = {"the", "a", "an", "is", "are", "of", "to", "will", "be", "and", "it", "in"}


def _text_contains(p: str, g: str) -> bool:
    """A short text answer that names what a prose gold states ("odd" vs "The function is odd.")."""
    pw = [w for w in re.findall(r"[a-z]+", p.lower()) if w not in _STOP]
    gw = re.findall(r"[a-z]+", g.lower())
    return (0 < len(pw) <= 2 and len(gw) >= 3 and not _NEGATION.search(g)
            and all(w in gw for w in pw))


# ---------------------------------------------------------------- the worker entry points


def _alternatives(s: str, gold: bool) -> list[str]:
    parts = [x.strip() for x in re.split(r"\\approx|≈", s) if x.strip()]
    if not parts:
        return [s]
    if gold:
        return parts
    first = parts[0]
    if len(parts) > 1 and re.fullmatch(r"[a-zA-Z](?:_\{?\w+\}?)?\s*=?", first):
        return [parts[1]]
    return [first]


_CHOICE = re.compile(r"^\s*(?:\\text\{\s*)?\(?([A-J])\)?(?:\s*\})?(?=$|[.:)\s])")


def choice_letter(s: str) -> str | None:
    """The letter of a multiple-choice answer: C, (C), \\text{(C)}, "C. x = 42"."""
    m = _CHOICE.match(s)
    return m.group(1) if m else None


def equivalent(pred: str, gold: str) -> tuple[bool, str]:
    """(correct, reason). `pred` is an extracted answer, `gold` the reference; both raw strings."""
    g_letter = choice_letter(gold)
    if g_letter and (re.fullmatch(r"\s*(?:\\text\{)?\s*\(?[A-J]\)?\s*\}?\s*", clean(gold))
                     or re.match(r"\s*\(?[A-J](?:\)|\.\s)", gold)):
        return choice_letter(pred) == g_letter, "choice"
    p_alts = _alternatives(clean(pred), gold=False)
    g_alts = _alternatives(clean(gold), gold=True)
    for ga in g_alts:
        gn = parse(ga)
        for pa in p_alts:
            try:
                if nodes_equal(parse(pa), gn):
                    return True, "equivalent"
            except Unparsable:
                continue
            except (RecursionError, MemoryError):
                return False, "too_complex"
            except Exception:
                continue
    return False, "not_equivalent"


def warmup() -> None:
    """Import and exercise the parser once so the first real check is fast."""
    equivalent(r"\frac{1}{2}", "0.5")
    equivalent(r"x^2+1", r"1+x^{2}")
    equivalent(r"(0, 1]", r"0 < x \le 1")
