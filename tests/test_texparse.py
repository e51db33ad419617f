"""The fast LaTeX reader must read exactly as latex2sympy does, or decline (None)."""
import pytest
import sympy as sp
from latex2sympy2_extended import latex2sympy

from verifiers.texparse import fast_latex

SAME = [
    r"\frac{1}{2}", r"\frac{1}{2}x", r"-\frac{3}{4}x^2 + 2x - 1", r"2\sqrt{3}", r"\sqrt[3]{x}", r"\frac{1+\sqrt{5}}{2}",
    r"3\pi", r"\frac{\pi}{6}", r"e^{2}", r"a_1 + a_{12} + x_{n}", r"2^{k-n}", r"(x+1)^2", r"x^{2}y",
    r"\sin(x) + \cos(2x)", r"\tan^2(y) + 1", r"\sec^2(y)", r"\tan^{-1}(x)", r"\cos^{2} x", r"\sin x",
    r"\ln x", r"\exp(3)", r"|z|", r"|x - 1| + |x + 1|", r"3!", r"\frac{\binom{d}{k} (k - 1)!}{2}",
    r"0.25", r".5", r"1 - 12i", r"2 \cdot 3", r"6 \times 7", r"10 \div 4", r"\infty", r"ABC",
]
DECLINED = [
    r"918\frac{1}{2}",      # a mixed number, not 918 * 1/2
    r"f(x)", r"P(x)",        # function calls: latex2sympy decides
    r"\log(x)",              # base 10 in latex2sympy
    r"\sin 2x",              # sin(2x) in latex2sympy: not one atom
    r"\sum_{k=0}^{n} k", r"\begin{pmatrix}1\\2\end{pmatrix}", r"x = 3", r"[1, 2)",
]


@pytest.mark.parametrize("tex", SAME)
def test_reads_like_latex2sympy(tex):
    fast = fast_latex(tex)
    slow = latex2sympy(tex).subs(sp.Symbol("i"), sp.I)
    assert fast is not None, f"{tex!r} declined"
    assert fast == slow or sp.simplify(fast - slow) == 0, f"{tex!r}: {fast} != {slow}"


@pytest.mark.parametrize("tex", DECLINED)
def test_declines_what_it_would_read_differently(tex):
    assert fast_latex(tex) is None
