"""Tests for the math checker: verifiers.check / answers_equal / math_reward / score_batch /
extract_answer.

Every expectation is an exact value. Checks that need sympy run in the shared worker pool of
verifiers.mathcheck (started once, reused by every test here); nothing creates its own pool.
Tests marked `slow` score the labelled data sets in shared/data/math (skipped, with a message,
when that folder is missing).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import verifiers
from verifiers import Verdict, answers_equal, check, extract_answer, math_reward, score_batch

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "math"


def boxed(answer: str) -> str:
    """A typical final sentence of a model response around `answer`."""
    return f"Putting everything together, the final answer is $\\boxed{{{answer}}}$."


# a response with no answer marker (the fallback answers it by its last number)
PROSE = ("First we count the apples: there are 12 of them.\n"
         "Then we add the 3 oranges, so we get 15 fruits in total.")


@pytest.fixture(scope="module", autouse=True)
def shared_pool():
    """Start the shared checker pool once (a symbolic check), so no test pays its start-up; stop
    it after this module, so that no checker process outlives these tests (tests/test_workers.py
    asserts that the test process has no worker children left)."""
    assert check(boxed("(x+1)^2"), "x^2+2x+1", timeout=60).correct
    yield
    verifiers.shutdown_pool()


# ============================================================================ 1. extraction

@pytest.mark.parametrize("response, answer", [
    pytest.param(r"So $\boxed{\frac{a}{\sqrt{b^{2}}}}$ is it.", r"\frac{a}{\sqrt{b^{2}}}", id="nested-braces"),
    pytest.param(r"$\boxed{\left\{ 1, \frac{2}{3} \right\}}$", r"\left\{ 1, \frac{2}{3} \right\}", id="nested-set"),
    pytest.param(r"Hence \fbox{\frac{1}{2}}.", r"\frac{1}{2}", id="fbox"),
    pytest.param(r"The answer is $\frac{1}{2}$.", r"\frac{1}{2}", id="the-answer-is-math"),
    pytest.param("So the final answer is 7", "7", id="the-final-answer-is"),
    pytest.param("Some work.\nAnswer: $42$", "42", id="dapo-answer-line-math"),
    pytest.param("Some work.\nAnswer: 42", "42", id="dapo-answer-line"),
    pytest.param("Natalia sold 48 clips.\n#### 1,234", "1,234", id="gsm8k"),
    pytest.param(r"First \boxed{3}, checking again: \boxed{ 3 }.", "3", id="same-box-twice"),
    pytest.param(r"<think>maybe \boxed{4}?</think> The answer is \boxed{3}.", "3", id="box-after-think"),
])
def test_extract_answer_finds_the_final_answer(response, answer):
    got, _how = extract_answer(response)
    assert got == answer


@pytest.mark.parametrize("response, reason", [
    pytest.param(r"It is \boxed{3}. Hmm, wait: \boxed{4}.", "multiple_answers", id="two-different-boxes"),
    pytest.param(r"<think>so the answer is \boxed{3}", "unclosed_think", id="unclosed-think"),
    pytest.param(r"<think>a</think><think>so \boxed{3}", "unclosed_think", id="second-think-unclosed"),
    pytest.param(r"<think>\boxed{3}</think>", "no_answer", id="answer-only-inside-think"),
    pytest.param(PROSE, "no_answer", id="prose"),
    pytest.param("I computed 12 apples and then 15 oranges in total", "no_answer", id="short-prose"),
])
def test_extract_answer_refuses(response, reason):
    assert extract_answer(response) == (None, reason)


# (response, gold, correct, reason or None when any reason will do)
EXTRACTION_CASES = [
    pytest.param(r"We get $\boxed{\frac{1}{\sqrt{2}}}$.", r"\frac{\sqrt{2}}{2}", True, None, id="nested-boxed"),
    pytest.param(r"We get $\boxed{\frac{1}{\sqrt{3}}}$.", r"\frac{\sqrt{2}}{2}", False, None, id="nested-boxed-wrong"),
    pytest.param(r"Hence \fbox{42}.", "42", True, None, id="fbox"),
    pytest.param("Adding up, the answer is 42.", "42", True, None, id="the-answer-is"),
    pytest.param("Adding up, the answer is 41.", "42", False, None, id="the-answer-is-wrong"),
    pytest.param("Step 1 ...\nStep 2 ...\nAnswer: 42", "42", True, None, id="dapo"),
    pytest.param("Step 1 ...\nAnswer: 43", "42", False, None, id="dapo-wrong"),
    pytest.param("Step 1 ...\n**Answer:** 9", "9", True, None, id="dapo-markdown-bold"),
    pytest.param("She has 12 + 3 = 15 apples.\n#### 15", "15", True, None, id="gsm8k"),
    pytest.param("So 1000 + 234 = 1234.\n#### 1,234", "1234", True, None, id="gsm8k-separator"),
    pytest.param("So.\n#### 16", "15", False, None, id="gsm8k-wrong"),
    # multiple choice, gold "C"
    pytest.param(r"The correct option is $\boxed{(C)}$.", "C", True, None, id="choice-paren"),
    pytest.param(r"The correct option is $\boxed{\text{C}}$.", "C", True, None, id="choice-text"),
    pytest.param(r"\boxed{C. x = 42}", "C", True, None, id="choice-with-content"),
    pytest.param("The answer is (C).", "C", True, None, id="choice-answer-is"),
    pytest.param(r"The correct option is $\boxed{(D)}$.", "C", False, None, id="choice-wrong"),
    pytest.param(r"\boxed{\text{(B)}}", "C", False, None, id="choice-wrong-text"),
    pytest.param(r"\boxed{D. x = 42}", "C", False, None, id="choice-wrong-same-content"),
    # several answers
    pytest.param(r"It is \boxed{3}. Hmm, wait: \boxed{4}.", "3", False, "multiple_answers", id="two-boxes-first-right"),
    pytest.param(r"It is \boxed{4}. No: \boxed{3}.", "3", False, "multiple_answers", id="two-boxes-last-right"),
    pytest.param(r"\boxed{3} and once more \boxed{3}", "3", True, None, id="same-box-repeated"),
    pytest.param(r"\boxed{3 \text{ or } 4}", "3", False, None, id="boxed-3-or-4"),
    pytest.param("The answer is 3 or 4.", "3", False, None, id="answer-is-3-or-4"),
    pytest.param("It could be 1, 2, 3, or 4", "3", False, None, id="bare-guess-list"),
    pytest.param(r"\boxed{1, 2, 3, \text{or } 4}", "3", False, None, id="boxed-guess-list"),
    # <think>
    pytest.param(r"<think>Let me see... the answer is \boxed{3}", "3", False, "unclosed_think", id="unclosed-think"),
    pytest.param(r"<think>first pass</think><think>second pass \boxed{3}", "3", False, "unclosed_think",
                 id="second-think-unclosed"),
    pytest.param(r"<think>maybe \boxed{4}?</think>So the answer is $\boxed{3}$.", "3", True, None, id="after-think"),
    pytest.param(r"<think>maybe \boxed{4}?</think>So the answer is $\boxed{3}$.", "4", False, None,
                 id="after-think-ignores-think"),
    pytest.param(r"<think>the answer is \boxed{3}</think>", "3", False, "no_answer", id="only-in-think"),
    # prose without a marker
    pytest.param(PROSE, "15", False, "no_answer", id="no-answer"),
    pytest.param("I computed 12 apples and then 15 oranges in total", "15", False, "no_answer", id="no-answer-short"),
]


@pytest.mark.parametrize("response, gold, correct, reason", EXTRACTION_CASES)
def test_check_extraction(response, gold, correct, reason):
    v = check(response, gold)
    assert v.correct is correct
    assert v.reward == (1.0 if correct else 0.0)
    if reason is not None:
        assert v.reason == reason
        assert v.pred is None


def test_nested_boxed_pred_is_the_whole_box():
    v = check(r"Thus $\boxed{\frac{1}{\sqrt{2}}}$.", r"\frac{\sqrt{2}}{2}")
    assert v == Verdict(True, r"\frac{1}{\sqrt{2}}", v.reason)


def test_fallback_takes_the_last_number():
    response = PROSE
    assert check(response, "15") == Verdict(False, None, "no_answer")
    v = check(response, "15", fallback=True)
    assert (v.correct, v.pred) == (True, "15")
    assert check(response, "12", fallback=True).correct is False
    assert extract_answer(response, fallback=True)[0] == "15"


def test_fallback_takes_the_last_math_span():
    response = "We get $x=2$ and then $y = 7$. Done, that is all"
    assert check(response, "7").reason == "no_answer"
    assert check(response, "7", fallback=True).correct is True
    assert check(response, "2", fallback=True).correct is False


def test_fallback_does_not_rescue_guess_lists_or_unclosed_think():
    assert check("It could be 1, 2, 3, or 4", "3", fallback=True).correct is False
    assert check(r"<think>so \boxed{3}", "3", fallback=True) == Verdict(False, None, "unclosed_think")
    assert check(r"\boxed{3} or \boxed{4}", "3", fallback=True) == Verdict(False, None, "multiple_answers")


# ============================================================================ 2. equivalence

def eq(pred, gold, expected, id):
    return pytest.param(pred, gold, expected, id=id)


EQUIVALENCE_CASES = [
    # one-variable inequalities against intervals, each direction of the operator
    eq(r"x \ne 3", r"(-\infty, 3) \cup (3, \infty)", True, "ineq-ne"),
    eq(r"x \ne 3", r"(-\infty, 3] \cup (3, \infty)", False, "ineq-ne-closed"),
    eq(r"5 > x", r"(-\infty, 5)", True, "ineq-bound-left"),
    eq(r"5 \ge x", r"(-\infty, 5)", False, "ineq-bound-left-closed"),
    eq(r"x \ge -2", r"[-2, \infty)", True, "ineq-ge"),
    eq(r"-x > -1", r"x < 1", True, "ineq-solved"),
    eq(r"1 \le |z| \le 2", r"[-2, -1] \cup [1, 2]", True, "ineq-abs"),
    eq(r"1 \le |z| \le 2", r"[-2, 2]", False, "ineq-abs-wrong"),
    # integers with thousands separators
    eq("1,000", "1000", True, "sep-1,000"),
    eq("1000", "1,000", True, "sep-gold-1,000"),
    eq("10{,}000", "10000", True, "sep-tex-10{,}000"),
    eq(r"10\,000", "10000", True, "sep-thin-space"),
    eq("1,000,000", "1000000", True, "sep-million"),
    eq("10{,}000", "1000", False, "sep-10{,}000-vs-1000"),
    eq("10,001", "10000", False, "sep-10,001"),
    eq("1,000", "100", False, "sep-1,000-vs-100"),
    # decimals
    eq("0.5", "0.50", True, "dec-trailing-zero"),
    eq(".185", "0.185", True, "dec-leading-dot"),
    eq("10000.0", "10000", True, "dec-10000.0"),
    eq("0.5", "0.6", False, "dec-0.5-vs-0.6"),
    eq("3.15", "3.14", False, "dec-3.15-vs-3.14"),
    # fractions and mixed numbers
    eq(r"\frac{1}{2}", "0.5", True, "frac-half"),
    eq(r"\frac12", "0.5", True, "frac-short"),
    eq(r"\dfrac{3}{4}", r"\frac{6}{8}", True, "frac-unreduced"),
    eq("2.5", r"\frac{5}{2}", True, "frac-2.5"),
    eq(r"918\frac{1}{2}", "918.5", True, "mixed-918.5"),
    eq("918.5", r"918\frac{1}{2}", True, "mixed-gold"),
    eq(r"918\tfrac{1}{2}", r"\frac{1837}{2}", True, "mixed-vs-improper"),
    eq(r"918\frac{1}{2}", "918.25", False, "mixed-wrong"),
    eq(r"1\frac{1}{2}", r"\frac{1}{2}", False, "mixed-is-not-product"),
    eq(r"\frac{3}{5}", r"\frac{3}{4}", False, "frac-wrong"),
    eq(r"\frac{1}{3}", "0.33", False, "frac-1/3-vs-0.33-two-sig-digits"),
    # percentages
    eq(r"25\%", "0.25", True, "pct-25%-vs-0.25"),
    eq("0.25", r"25\%", True, "pct-0.25-vs-25%"),
    eq("25", r"25\%", True, "pct-25-vs-25%"),
    eq(r"25\%", "25", True, "pct-25%-vs-25"),
    eq("10%", "10", True, "pct-plain-sign"),
    eq("0.05", r"5\%", True, "pct-0.05-vs-5%"),
    eq("0.05", "5", False, "pct-gold5-rejects-0.05"),
    eq("500", "5", False, "pct-gold5-rejects-500"),
    eq("50", r"5\%", False, "pct-50-vs-5%"),
    eq(r"50\%", "25", False, "pct-50%-vs-25"),
    # scientific notation
    eq(r"2\times10^{-10}", r"2 \times 10^{-10}", True, "sci-spacing"),
    eq(r"2\times10^{-10}", "0.0000000002", True, "sci-vs-decimal"),
    eq("2e-10", r"2\times10^{-10}", True, "sci-e-notation"),
    eq(r"2\cdot 10^{-10}", r"2\times10^{-10}", True, "sci-cdot"),
    eq(r"2\times10^{-9}", r"2\times10^{-10}", False, "sci-wrong-exponent"),
    eq(r"2\times 10^{10}", r"2\times10^{-10}", False, "sci-wrong-sign"),
    eq(r"2\times10^{-10}", "2", False, "sci-vs-mantissa"),
    # units and \text{} words
    eq(r"165.5 \text{ grams}", "165.5", True, "unit-grams"),
    eq(r"165.5\text{ g}", "165.5", True, "unit-g"),
    eq(r"165.5", r"165.5 \text{ grams}", True, "unit-in-gold"),
    eq(r"12 \text{ cm}^2", "12", True, "unit-cm2"),
    eq(r"\$10", "10", True, "unit-dollar"),
    eq(r"17\text{ any text}", "17", True, "unit-any-text"),
    eq(r"156.5 \text{ grams}", "165.5", False, "unit-wrong-number"),
    eq(r"165.5 \text{ grams}", "16.55", False, "unit-wrong-magnitude"),
    # degrees vs radians (gold has a degree sign)
    eq(r"\frac{\pi}{6}", r"30^\circ", True, "deg-pi/6-vs-30deg"),
    eq(r"\frac{\pi}{6}", r"30^{\circ}", True, "deg-braced-circ"),
    eq("30", r"30^\circ", True, "deg-plain-30"),
    eq(r"30^{\circ}", "30", True, "deg-pred-has-sign"),
    eq(r"\frac{\pi}{3}", r"30^\circ", False, "deg-pi/3-vs-30deg"),
    eq(r"60^\circ", r"30^\circ", False, "deg-60-vs-30"),
    eq(r"\frac{\pi}{6}", "30", False, "deg-no-sign-in-gold"),
    # sets: order-free
    eq(r"\{2,1\}", r"\{1,2\}", True, "set-order"),
    eq(r"\{1,2\}", r"\{1,2\}", True, "set-same"),
    eq(r"\{1,3\}", r"\{1,2\}", False, "set-wrong-element"),
    eq(r"\{1,2,3\}", r"\{1,2\}", False, "set-extra-element"),
    # tuples: ordered
    eq("(1,2)", "(1, 2)", True, "tuple-spacing"),
    eq("(2,1)", "(1,2)", False, "tuple-order"),
    eq("(1,2,3)", "(1,2)", False, "tuple-length"),
    # intervals: bracket type matters
    eq("[1,2)", "[1, 2)", True, "interval-same"),
    eq(r"[1,2)", r"1 \le x < 2", True, "interval-vs-inequality"),
    eq(r"(5,\infty)", "x>5", True, "interval-infinite"),
    eq("(1,2)", "[1,2)", False, "interval-open-vs-halfopen"),
    eq("[1,2]", "[1,2)", False, "interval-closed-vs-halfopen"),
    eq(r"[5,\infty)", "x>5", False, "interval-closed-vs-strict"),
    # matrices, column vector vs tuple
    eq(r"\begin{pmatrix}1\\2\end{pmatrix}", "(1,2)", True, "vector-vs-tuple"),
    eq("(1,2)", r"\begin{pmatrix}1\\2\end{pmatrix}", True, "tuple-vs-vector"),
    eq(r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", r"\begin{bmatrix}1&2\\3&4\end{bmatrix}", True, "matrix-pmatrix-bmatrix"),
    eq(r"\begin{pmatrix}2\\1\end{pmatrix}", "(1,2)", False, "vector-order"),
    eq("(2,1)", r"\begin{pmatrix}1\\2\end{pmatrix}", False, "tuple-vs-vector-order"),
    eq(r"\begin{pmatrix}1&2\\3&5\end{pmatrix}", r"\begin{bmatrix}1&2\\3&4\end{bmatrix}", False, "matrix-entry"),
    eq(r"\begin{pmatrix}1&3\\2&4\end{pmatrix}", r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", False, "matrix-transposed"),
    # equations and inequalities
    eq("x=3", "3", True, "eq-x=3-vs-3"),
    eq("3", "x=3", True, "eq-3-vs-x=3"),
    eq("x=4", "3", False, "eq-x=4-vs-3"),
    eq("3", "x=4", False, "eq-3-vs-x=4"),
    eq("1<x<2", "(1,2)", True, "ineq-chain-vs-interval"),
    eq("(1,2)", "1<x<2", True, "ineq-interval-vs-chain"),
    eq(r"1\le x<2", "(1,2)", False, "ineq-wrong-endpoint"),
    eq(r"y=-\frac{1}{2}x+\frac{3}{4}", "2x+4y-3=0", True, "line-slope-form-vs-general"),
    eq("2x+4y-3=0", r"y=-\frac{1}{2}x+\frac{3}{4}", True, "line-general-vs-slope-form"),
    eq("2x+4y+3=0", r"y=-\frac{1}{2}x+\frac{3}{4}", False, "line-wrong-constant"),
    eq(r"y=-\frac{1}{2}x-\frac{3}{4}", "2x+4y-3=0", False, "line-wrong-constant-slope-form"),
    eq(r"x \ge 5", r"5 \le x", True, "ineq-ge-vs-le"),
    eq(r"5 \le x", r"x \ge 5", True, "ineq-le-vs-ge"),
    eq("5<x", "x>5", True, "ineq-flipped"),
    eq("x>5", "x<5", False, "ineq-opposite"),
    eq("x<5", "x>5", False, "ineq-opposite-2"),
    eq("x>5", r"x\ge 5", False, "ineq-strict-vs-not"),
    # symbolic expressions
    eq("(x+1)^2", "x^2+2x+1", True, "expr-square"),
    eq("x^2+2x+1", "(x+1)^2", True, "expr-expanded"),
    eq("(r+5)(r+5)", "(r+5)^2", True, "expr-product"),
    eq("x^2+1", "(x+1)^2", False, "expr-wrong"),
    eq("x^3+2x+1", "x^2+2x+1", False, "expr-wrong-power"),
    # complex numbers
    eq("3+4i", "4i+3", True, "complex-order"),
    eq("4i+3", "3+4i", True, "complex-order-2"),
    eq(r"3+4\sqrt{-1}", "3+4i", True, "complex-sqrt-1"),
    eq("3-4i", "3+4i", False, "complex-conjugate"),
    eq("4+3i", "3+4i", False, "complex-swapped"),
    # \pm
    eq(r"3\pm2\sqrt{2}", r"3+2\sqrt{2}, 3-2\sqrt{2}", True, "pm-vs-values"),
    eq(r"3+2\sqrt{2}, 3-2\sqrt{2}", r"3\pm2\sqrt{2}", True, "values-vs-pm"),
    eq(r"3-2\sqrt{2},3+2\sqrt{2}", r"3\pm 2\sqrt{2}", True, "values-reversed-vs-pm"),
    eq(r"3+2\sqrt{2}", r"3\pm2\sqrt{2}", False, "pm-only-one-value"),
    eq(r"3\pm\sqrt{2}", r"3\pm2\sqrt{2}", False, "pm-wrong"),
    # rounding rules
    eq(r"\frac{20}{3}", "6.67", True, "round-gold-6.67-accepts-20/3"),
    eq("6.67", r"\frac{20}{3}", True, "round-6.67-for-20/3"),
    eq("6.6667", r"\frac{20}{3}", True, "round-6.6667-for-20/3"),
    eq(r"\frac{19}{3}", "6.67", False, "round-19/3-vs-6.67"),
    eq("6.66", "6.67", False, "round-6.66-vs-6.67"),
    eq("6.6", r"\frac{20}{3}", False, "round-6.6-for-20/3"),
    eq("9999", "10000", False, "round-gold-10000-rejects-9999"),
    eq("9999.857", "10000", False, "round-gold-10000-rejects-9999.857"),
    eq("10001", "10000", False, "round-gold-10000-rejects-10001"),
    eq("5.001", "5", False, "round-gold-5-rejects-5.001"),
    eq("5.0001", "5", False, "round-gold-5-rejects-5.0001"),
    eq("4.999", "5", False, "round-gold-5-rejects-4.999"),
    eq("5", "5.001", False, "round-gold-5.001-rejects-5"),
    eq("5.0", "5", True, "round-5.0"),
    eq(r"\frac{1}{2^{98}}", r"\frac{1}{2^{98}}", True, "tiny-same"),
    eq(r"2^{-98}", r"\frac{1}{2^{98}}", True, "tiny-negative-exponent"),
    eq(r"\frac{1}{2^{99}}", r"\frac{1}{2^{98}}", False, "tiny-1/2^99-vs-1/2^98"),
    eq(r"\frac{1}{2004!}", r"\frac{1}{2006!}", False, "tiny-1/2004!-vs-1/2006!"),
    eq(r"\frac{1}{2006 \cdot 2005!}", r"\frac{1}{2006!}", True, "tiny-factorial-rewritten"),
    eq(r"10^{-30}", r"2 \cdot 10^{-30}", False, "tiny-10^-30-vs-2*10^-30"),
]


@pytest.mark.parametrize("pred, gold, expected", EQUIVALENCE_CASES)
def test_equivalence(pred, gold, expected):
    v = answers_equal(pred, gold)
    assert v.correct is expected, f"answers_equal({pred!r}, {gold!r}) -> {v}"
    assert v.pred == pred
    v = check(boxed(pred), gold)
    assert v.correct is expected, f"check(boxed({pred!r}), {gold!r}) -> {v}"
    assert math_reward(boxed(pred), gold) == (1.0 if expected else 0.0)


def test_gold_may_be_a_number():
    assert check(boxed("5"), 5).correct is True
    assert check(boxed(r"\frac{1}{2}"), 0.5).correct is True
    assert check(boxed("6"), 5).correct is False


def test_gold_may_be_a_worked_solution():
    gold = "We add the two parts.\nSo the total is $3 + 4 = 7$, i.e. $\\boxed{7}$."
    assert check(boxed("7"), gold).correct is True
    assert check(boxed("3"), gold).correct is False


def test_verdict_reward_and_dict():
    v = check(boxed("42"), "42")
    assert v.reward == 1.0 and isinstance(v.reward, float)
    assert v.to_dict() == {"correct": True, "pred": "42", "reason": v.reason}
    assert check(boxed("41"), "42").reward == 0.0
    assert math_reward("no answer here at all, sorry", "42") == 0.0


# ============================================================================ 3. deadlines

PATHOLOGICAL = [r"\boxed{5^{5^{5^{5^5}}}}", r"\boxed{9^{9^{9^9}}}", r"\boxed{1000000!}"]


def test_pathological_inputs_meet_the_deadline_from_many_threads():
    def timed(response):
        start = time.monotonic()
        v = check(response, "5", timeout=1.0)
        return v, time.monotonic() - start

    responses = PATHOLOGICAL * 2                      # 6 threads at once
    with ThreadPoolExecutor(max_workers=len(responses)) as ex:
        results = list(ex.map(timed, responses))
    for response, (v, elapsed) in zip(responses, results):
        assert elapsed < 1.5, f"{response}: returned after {elapsed:.2f} s ({v.reason})"
        assert v.correct is False, response
        if elapsed >= 0.9:                            # it ran into the deadline
            assert v.reason == "timeout", f"{response}: {v.reason}"
    assert any(v.reason == "timeout" for v, _ in results)

    # the killed workers are replaced: a symbolic check afterwards still works
    v = check(boxed("(x+1)^2"), "x^2+2x+1")
    assert v.correct is True, v
    assert check(boxed("x^2+1"), "x^2+2x+1").correct is False
    get_pool = getattr(verifiers.mathcheck, "get_pool", None)
    if get_pool is not None:                          # let the replacement workers finish starting
        get_pool().warmup()


def test_huge_answer_is_too_long_quickly():
    response = "\\boxed{" + "9" * 100_000 + "}"
    start = time.monotonic()
    v = check(response, "5")
    elapsed = time.monotonic() - start
    assert (v.correct, v.reason) == (False, "too_long")
    assert elapsed < 0.5
    start = time.monotonic()
    assert answers_equal("x+" * 50_000 + "1", "5").reason == "too_long"
    assert time.monotonic() - start < 0.5


@pytest.mark.parametrize("answer", [
    pytest.param("\\frac{1}{" * 50 + "2" + "}" * 50, id="nested-fracs"),
    pytest.param("{" * 60 + "1" + "}" * 60, id="braces"),
    pytest.param("(" * 60 + "1" + ")" * 60, id="parens"),
])
def test_deep_nesting_is_too_deep_quickly(answer):
    start = time.monotonic()
    v = check(boxed(answer), "5")
    assert (v.correct, v.reason) == (False, "too_deep")
    assert answers_equal(answer, "5").reason == "too_deep"
    assert time.monotonic() - start < 0.5


def test_bad_timeout_is_rejected():
    with pytest.raises(ValueError):
        check(boxed("5"), "5", timeout=0)
    with pytest.raises(ValueError):
        check(boxed("5"), "5", timeout=-1)


# ============================================================================ 4. batch, threads, types

def _batch_cases():
    out = []
    for p in EQUIVALENCE_CASES[::2]:
        pred, gold, _ = p.values
        out.append((boxed(pred), gold))
    for p in EXTRACTION_CASES[::2]:
        response, gold, _, _ = p.values
        out.append((response, gold))
    return out


BATCH = _batch_cases()


def test_batch_is_big_enough():
    assert len(BATCH) >= 50


# These tests are about concurrency, not deadlines: a generous timeout keeps a loaded CI machine
# from turning a slow check into a "timeout" verdict in one run and not the other.
SLACK = 30.0


def test_score_batch_matches_sequential_check():
    responses, golds = zip(*BATCH)
    sequential = [check(r, g, timeout=SLACK) for r, g in BATCH]
    batch = score_batch(responses, golds, workers=2, timeout=SLACK)
    assert len(batch) == len(BATCH)
    assert all(isinstance(v, Verdict) for v in batch)
    mismatches = [(r, g, s, b) for (r, g), s, b in zip(BATCH, sequential, batch) if s != b]
    assert not mismatches
    # generators work too, and one worker gives the same answers
    assert score_batch((r for r in responses), iter(golds), workers=1, timeout=SLACK) == sequential


def test_check_is_thread_safe():
    sequential = [check(r, g, timeout=SLACK) for r, g in BATCH]
    cases = BATCH * 2
    with ThreadPoolExecutor(max_workers=4) as ex:
        concurrent = list(ex.map(lambda rg: check(*rg, timeout=SLACK), cases))
    assert concurrent == sequential * 2


def test_score_batch_empty():
    assert score_batch([], [], workers=2) == []


def test_score_batch_mismatched_lengths():
    with pytest.raises(ValueError, match="2 responses but 1 golds|length"):
        score_batch(["\\boxed{1}", "\\boxed{2}"], ["1"], workers=2)
    with pytest.raises(ValueError):
        score_batch([], ["1"], workers=2)


def test_score_batch_bad_workers():
    with pytest.raises(ValueError):
        score_batch([boxed("1")], ["1"], workers=-1)


@pytest.mark.parametrize("call", [
    pytest.param(lambda: check(boxed("5"), None), id="check-gold-None"),
    pytest.param(lambda: check(boxed("5"), ["5"]), id="check-gold-list"),
    pytest.param(lambda: check(boxed("5"), True), id="check-gold-bool"),
    pytest.param(lambda: answers_equal("5", None), id="answers_equal-gold-None"),
    pytest.param(lambda: math_reward(boxed("5"), None), id="math_reward-gold-None"),
    pytest.param(lambda: score_batch([boxed("5")], [None], workers=2), id="score_batch-gold-None"),
])
def test_bad_gold_type_raises(call):
    with pytest.raises(TypeError, match=r"gold.*(NoneType|list|bool)"):
        call()


@pytest.mark.parametrize("call", [
    pytest.param(lambda: check(123, "123"), id="check-response-int"),
    pytest.param(lambda: check(None, "5"), id="check-response-None"),
    pytest.param(lambda: check(b"\\boxed{5}", "5"), id="check-response-bytes"),
    pytest.param(lambda: math_reward(123, "123"), id="math_reward-response-int"),
    pytest.param(lambda: score_batch([123, boxed("5")], ["123", "5"], workers=2), id="score_batch-response-int"),
    pytest.param(lambda: extract_answer(123), id="extract_answer-int"),
    pytest.param(lambda: answers_equal(None, "5"), id="answers_equal-pred-None"),
])
def test_bad_response_type_raises(call):
    with pytest.raises(TypeError, match=r"(response|pred).*(int|NoneType|bytes)"):
        call()


# ============================================================================ 5. light import

def test_import_is_light_and_checks_stay_out_of_process():
    code = (
        "import sys, json\n"
        "import verifiers\n"
        "heavy = ('torch', 'transformers', 'sympy')\n"
        "after_import = sorted(m for m in heavy if m in sys.modules)\n"
        "v = verifiers.check(r'\\boxed{(x+1)^2}', 'x^2+2x+1', timeout=60)\n"
        "after_check = sorted(m for m in heavy if m in sys.modules)\n"
        "print(json.dumps([after_import, after_check, v.correct]))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    after_import, after_check, correct = json.loads(proc.stdout.strip().splitlines()[-1])
    assert after_import == [], f"import verifiers imported {after_import}"
    assert after_check == [], f"a symbolic check imported {after_check} in the calling process"
    assert correct is True


# ============================================================================ 6. labelled data (slow)

def _rows(name: str) -> list[dict]:
    if not DATA.is_dir():
        pytest.skip(f"shared math data not found at {DATA} (CI always has it)")
    path = DATA / name
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _accuracy_precision(verdicts, labels):
    tp = sum(v.correct and y == 1 for v, y in zip(verdicts, labels))
    fp = sum(v.correct and y == 0 for v, y in zip(verdicts, labels))
    acc = sum(v.correct == (y == 1) for v, y in zip(verdicts, labels)) / len(labels)
    return acc, (tp / (tp + fp) if tp + fp else 0.0)


def _misses(rows, verdicts):
    return [f"{r['id']}: label={r['label']} gold={r['gold']!r} pred={v.pred!r} ({v.reason})"
            for r, v in zip(rows, verdicts) if v.correct != (r["label"] == 1)]


def _assert_graded(rows, verdicts, min_accuracy, min_precision):
    acc, prec = _accuracy_precision(verdicts, [d["label"] for d in rows])
    detail = "\n".join(_misses(rows, verdicts))
    assert acc >= min_accuracy, f"accuracy {acc:.3f}, precision {prec:.3f}; misclassified:\n{detail}"
    assert prec >= min_precision, f"accuracy {acc:.3f}, precision {prec:.3f}; misclassified:\n{detail}"


@pytest.mark.slow
def test_hardverify_boxed():
    rows = _rows("hardverify_dev.jsonl")
    assert len(rows) == 250
    verdicts = [check(d["response"], d["gold"]) for d in rows]
    _assert_graded(rows, verdicts, min_accuracy=0.93, min_precision=0.98)


@pytest.mark.slow
def test_hardverify_dapo_answer_lines():
    """The same responses written as `Answer: X` lines (DAPO format) are graded about as well."""
    rows = _rows("hardverify_dev.jsonl")
    verdicts = score_batch([d["response_dapo"] for d in rows], [d["gold"] for d in rows], workers=2)
    _assert_graded(rows, verdicts, min_accuracy=0.90, min_precision=0.98)


@pytest.mark.slow
def test_qwen_math_responses():
    rows = _rows("qwen_math_responses_dev.jsonl")
    assert len(rows) == 400
    verdicts = score_batch([d["response"] for d in rows], [d["gold"] for d in rows], workers=2)
    acc, _ = _accuracy_precision(verdicts, [d["label"] for d in rows])
    assert acc >= 0.995, f"accuracy {acc:.4f}; misclassified:\n" + "\n".join(_misses(rows, verdicts))


@pytest.mark.slow
def test_nemo_skills_pairs():
    rows = _rows("nemo_skills_math_equal_pairs.jsonl")
    assert len(rows) == 31
    failures = []
    for d in rows:
        pairs = [(d["b"], d["a"])] + ([(d["a"], d["b"])] if d["symmetric"] else [])
        for pred, gold in pairs:
            v = answers_equal(pred, gold)
            if v.correct != bool(d["expected"]):
                failures.append(f"{d['id']}: answers_equal({pred!r}, {gold!r}) -> {v}, expected {d['expected']}")
    assert not failures, "\n".join(failures)


# math-verify's own cases that we answer differently on purpose; the README explains each group.
MATHVERIFY_DISAGREEMENTS = {
    # several different boxed answers in one response earn nothing (issue 2's rule)
    **{i: "multiple_answers" for i in (
        "test_all::test_math_extraction_additional_cases::28", "test_numina_cases::test_numina_cases::12",
        *(f"test_open_thoughts::test_open_thoughts::{k}" for k in (12, 13, 14, 16, 18, 19, 23, 24, 25, 26)))},
    # a comma is a list or thousands separator, never a decimal mark
    **{f"test_all::test_number_extraction::{k}": "decimal_comma" for k in (5, 6, 7, 17)},
    # labels that depend on an option of math-verify's test (strict, allow_set_relation_comp, precision)
    "test_strict::test_strict_variable_comparison::0": "option",
    "test_all::test_set_rel_assymetry::3": "option",
    "test_all::test_complex_math_expressions::7": "option",
    # math-verify parser details: newline in $...$, \text{13} is no number, \$ inside math, "1orW(x)"
    "test_all::test_latex_notation::5": "parser", "test_all::test_latex_notation::6": "parser",
    "test_all::test_symbols::0": "parser", "test_all::test_latex_notation::9": "parser",
    "test_numina_cases::test_numina_cases::24": "parser",
    # mislabelled: 1 - 1/e is not 1 + 1/e (listed in the data README as a known false positive)
    "test_yujianll::test_string_extraction::9": "mislabelled",
}


@pytest.mark.slow
def test_mathverify_cases_except_listed_disagreements():
    rows = _rows("mathverify_tests_cases.jsonl")
    assert len(rows) == 268
    verdicts = score_batch([d["pred"] for d in rows], [d["gold"] for d in rows], workers=2, fallback=True)
    unexpected = [f"{d['id']}: expected {d['expected']}, got {v}" for d, v in zip(rows, verdicts)
                  if v.correct != bool(d["expected"]) and d["id"] not in MATHVERIFY_DISAGREEMENTS]
    stale = [d["id"] for d, v in zip(rows, verdicts)
             if v.correct == bool(d["expected"]) and d["id"] in MATHVERIFY_DISAGREEMENTS]
    assert not unexpected, "\n".join(unexpected)
    assert not stale, f"listed as disagreements but now agree: {stale}"
    multi = [v for d, v in zip(rows, verdicts) if MATHVERIFY_DISAGREEMENTS.get(d["id"]) == "multiple_answers"]
    assert all(v.reason == "multiple_answers" for v in multi)


@pytest.mark.parametrize("response", [
    "Answer: x" + " " * 150_000 + "y",          # lazy capture before \s*$ would backtrack quadratically
    "#### 1" + " " * 150_000 + "z",
    "\\boxed{" * 50_000,                        # one brace scan per box would be quadratic
    "\\(" * 50_000,
    "$" * 100_001,
])
def test_extraction_is_linear_on_hostile_responses(response):
    # extraction runs in the caller's thread, outside the deadline: it must not blow up
    for fallback in (False, True):
        t0 = time.monotonic()
        extract_answer(response, fallback=fallback)
        assert time.monotonic() - t0 < 2.0
