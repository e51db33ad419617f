import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from verifiers.rewards import (
    SUPPORTED_LANGS, TERMS, compose, compose_terms, format_reward,
    language_consistency, length_penalty, overlong_penalty,
)

ROOT = Path(__file__).resolve().parents[1]
MODULE = ROOT / "verifiers" / "rewards.py"

# ----------------------------------------------------------------------------- format


@pytest.mark.parametrize("response", [
    "<think>reason</think>42",
    "  \n<think>\nstep 1, step 2\n</think>\n\n<answer>42</answer>\n",
    "<think>a</think> <answer> 42 </answer>",
    "<think>r</think>The answer is $\\boxed{7}$.",
])
def test_format_reward_accepts(response):
    assert format_reward(response) == 1.0


@pytest.mark.parametrize("response", [
    "",
    "42",
    "<think>r</think>",                         # no answer
    "<think>r</think>  \n ",                    # whitespace answer
    "<think>r</think><answer> </answer>",       # empty wrapped answer
    "<think> \n </think>42",                    # empty think block
    "so<think>r</think>42",                     # non-whitespace before <think>
    "<think>a</think><think>b</think>42",       # two think blocks
    "<think>a<think>b</think>42",               # nested open tag
    "</think>x<think>r",                        # tags in the wrong order
    "<think>r</think>42</think>",               # stray close tag in answer
    "<think>r</think>42 <think>",               # stray open tag in answer
    "<think>r</think><answer>42",               # unbalanced answer tag
    "<think>r</think><answer>1</answer><answer>2</answer>",
    "<think>never closed 42",
    "r</think>42",                              # needs think_in_prompt=True
])
def test_format_reward_rejects(response):
    assert format_reward(response) == 0.0


def test_format_reward_think_in_prompt():
    assert format_reward("reasoning here\n</think>\n42", think_in_prompt=True) == 1.0
    assert format_reward("r</think><answer>42</answer>", think_in_prompt=True) == 1.0
    assert format_reward("<think>r</think>42", think_in_prompt=True) == 0.0  # <think> is in the prompt
    assert format_reward("  </think>42", think_in_prompt=True) == 0.0       # empty reasoning
    assert format_reward("r</think>", think_in_prompt=True) == 0.0          # empty answer
    assert format_reward("r</think>4</think>2", think_in_prompt=True) == 0.0
    assert format_reward("no tags at all", think_in_prompt=True) == 0.0


def test_format_reward_bad_input():
    with pytest.raises(ValueError, match="response must be a str"):
        format_reward(None)

# ----------------------------------------------------------------------------- language


MIXED = "<think>First compute the sum. 我们计算总和。 Then check it.</think> 42"


def test_language_mixed_english_chinese():
    # Latin words: First compute the sum Then check it = 7; Han characters: 我们计算总和 = 6
    assert language_consistency(MIXED, "en") == 7 / 13
    assert language_consistency(MIXED, "zh") == 6 / 13
    assert 0.0 < language_consistency(MIXED) < 1.0


def test_language_pure_texts():
    assert language_consistency("<think>All English reasoning.</think> done", "en") == 1.0
    assert language_consistency("<think>全部用中文推理。</think>", "en") == 0.0
    assert language_consistency("<think>全部用中文推理。</think>", "zh") == 1.0
    assert language_consistency("<think>déjà vu, café!</think>", "fr") == 1.0
    assert language_consistency("<think>déjà vu, café!</think>", "ru") == 0.0


def test_language_math_is_neutral():
    cot = "<think>$x^2 + 1 = 5$, \\(x = 2\\); \\[\\frac{4}{2} = 2\\] $$\\sqrt{16}=4$$ 3*4=12</think>2"
    assert language_consistency(cot, "en") == 1.0
    assert language_consistency(cot, "zh") == 1.0
    assert language_consistency(cot.replace(";", " so"), "zh") == 0.0  # one English word, no Han
    assert language_consistency("\\frac{1}{2} + \\sqrt{3} = 1.5", "zh") == 1.0  # bare LaTeX commands
    assert language_consistency("", "ko") == 1.0
    # math in $..$ is skipped but a bare variable is a Latin word: 因为所以 = 4 Han, x = 1 Latin
    assert language_consistency("<think>因为 $x+1=2$ 所以 x</think>", "zh") == 4 / 5


def test_language_chain_of_thought_extraction():
    assert language_consistency("<think>Only English here.</think> 这是答案", "en") == 1.0
    assert language_consistency("Reasoning 中文</think> answer", "en") == 1 / 3  # think in prompt
    assert language_consistency("<think>unfinished 推理", "en") == 1 / 3          # truncated
    assert language_consistency("No tags 中", "en") == 2 / 3                      # whole text


def test_language_other_scripts():
    assert language_consistency("<think>これはテストです</think>", "ja") == 1.0
    assert language_consistency("<think>これはテストです</think>", "zh") == 0.0
    assert language_consistency("漢字とかな", "ja") == 1.0  # 2 Han + 3 kana
    assert language_consistency("漢字とかな", "zh") == 2 / 5
    assert language_consistency("<think>안녕 hello</think>", "ko") == 2 / 3
    assert language_consistency("<think>Привет мир hello</think>", "ru") == 2 / 3
    assert language_consistency("Привет мир hello", "de") == 1 / 3


def test_language_codes():
    assert language_consistency(MIXED, "en-US") == language_consistency(MIXED, "EN") == 7 / 13
    assert language_consistency(MIXED, "zh_CN") == 6 / 13
    assert {"en", "fr", "de", "es", "zh", "ja", "ko", "ru"} <= set(SUPPORTED_LANGS)
    with pytest.raises(ValueError, match=r"unknown language code 'xx'; supported: .*\ben\b"):
        language_consistency("hello", "xx")
    with pytest.raises(ValueError, match="unknown language code"):
        language_consistency("hello", None)
    with pytest.raises(ValueError, match="text must be a str"):
        language_consistency(b"hello", "en")

# ----------------------------------------------------------------------------- length


def test_length_penalty_kimi():
    assert length_penalty([10, 20, 30], [True, False, True]) == [0.5, 0.0, -0.5]
    assert length_penalty([10, 20, 30], [False, True, False]) == [0.0, 0.0, -0.5]
    # lambda = 0.5 - (15 - 10) / (30 - 10) = 0.25
    assert length_penalty([10, 15, 30], [True, True, False]) == [0.5, 0.25, -0.5]
    assert length_penalty(np.array([30, 10]), np.array([True, True])) == [-0.5, 0.5]


def test_length_penalty_degenerate_groups():
    assert length_penalty([7, 7, 7], [True, False, True]) == [0.0, 0.0, 0.0]
    assert length_penalty([5], [True]) == [0.0]
    assert length_penalty([], []) == []


@pytest.mark.parametrize("lengths, correct, message", [
    ([10, 20], [True], "lengths has 2 entries but correct has 1"),
    ([10, -1], [True, True], r"lengths\[1\] must be >= 0"),
    ([10, 2.5], [True, True], r"lengths\[1\] must be an int"),
    ([True, 3], [True, True], r"lengths\[0\] must be an int"),
])
def test_length_penalty_errors(lengths, correct, message):
    with pytest.raises(ValueError, match=message):
        length_penalty(lengths, correct)

# ----------------------------------------------------------------------------- overlong


@pytest.mark.parametrize("length, expected", [
    (0, 0.0), (15, 0.0), (16, -0.2), (17, -0.4), (20, -1.0), (21, -1.0), (10_000, -1.0),
])
def test_overlong_penalty_dapo(length, expected):
    assert overlong_penalty(length, 20, 5) == expected


def test_overlong_penalty_hard_cliff():
    assert overlong_penalty(20, 20, 0) == 0.0
    assert overlong_penalty(21, 20, 0) == -1.0


@pytest.mark.parametrize("args, message", [
    ((10, 5, 5), r"max_len \(5\) must be greater than cache_len \(5\)"),
    ((10, 5, 8), r"max_len \(5\) must be greater than cache_len \(8\)"),
    ((-1, 20, 5), "length must be >= 0"),
    ((10, 20, -5), "cache_len must be >= 0"),
    ((10, 20.0, 5), "max_len must be an int"),
])
def test_overlong_penalty_errors(args, message):
    with pytest.raises(ValueError, match=message):
        overlong_penalty(*args)

# ----------------------------------------------------------------------------- composer

GOOD, BAD = "<think>r</think>42", "42"


def test_compose_default_is_correctness():
    assert compose([True, False, True]) == [1.0, 0.0, 1.0]
    assert compose([]) == []
    assert compose([True, False], weights={}) == [0.0, 0.0]


def test_compose_format_correct_only():
    kw = dict(responses=[GOOD, GOOD, BAD], weights={"correct": 1.0, "format": 0.5})
    assert compose([True, False, True], **kw) == [1.5, 0.0, 1.0]
    assert compose([True, False, True], shaping_on_correct_only=False, **kw) == [1.5, 0.5, 1.0]


def test_compose_all_wrong_group_gets_no_shaping():
    kw = dict(responses=[GOOD, BAD], lengths=[10, 30], max_len=20, cache_len=5,
              weights={"correct": 1.0, "format": 1.0, "length": 1.0, "overlong": 1.0})
    assert compose([False, False], **kw) == [0.0, 0.0]
    # without the mask: format 1 / 0, length 0 / -0.5, overlong 0 / -1
    assert compose([False, False], shaping_on_correct_only=False, **kw) == [1.0, -1.5]


def test_compose_length_and_overlong():
    w = {"correct": 1.0, "length": 1.0}
    assert compose([False, True, False], lengths=[10, 20, 30], weights=w) == [0.0, 1.0, 0.0]
    assert compose([False, True, False], lengths=[10, 20, 30], weights=w,
                   shaping_on_correct_only=False) == [0.0, 1.0, -0.5]
    kw = dict(lengths=[15, 16, 21], max_len=20, cache_len=5, weights={"correct": 1.0, "overlong": 1.0})
    assert compose([True, True, False], **kw) == [1.0, 0.8, 0.0]
    assert compose([True, True, False], shaping_on_correct_only=False, **kw) == [1.0, 0.8, -1.0]


def test_compose_language_and_think_in_prompt():
    assert compose([True], responses=[MIXED], weights={"language": 13.0}) == [7.0]
    assert compose([True], responses=[MIXED], weights={"language": 13.0}, lang="zh") == [6.0]
    assert compose([True], responses=["r</think>42"], weights={"format": 1.0}) == [0.0]
    assert compose([True], responses=["r</think>42"], weights={"format": 1.0},
                   think_in_prompt=True) == [1.0]


def test_compose_terms_logs_raw_values():
    rows = compose_terms(
        [True, False], responses=[GOOD, GOOD], lengths=[10, 30],
        weights={"correct": 2.0, "format": 0.5, "length": 1.0},
    )
    assert rows == [
        {"correct": 1.0, "format": 1.0, "length": 0.5, "total": 3.0},
        {"correct": 0.0, "format": 1.0, "length": -0.5, "total": 0.0},  # raw values, masked total
    ]
    assert list(rows[0]) == ["correct", "format", "length", "total"]
    assert compose([True, False], responses=[GOOD, GOOD], lengths=[10, 30],
                   weights={"correct": 2.0, "format": 0.5, "length": 1.0}) == [3.0, 0.0]
    assert set(TERMS) == {"correct", "format", "language", "length", "overlong"}


@pytest.mark.parametrize("kwargs, message", [
    (dict(weights={"correct": 1.0, "style": 1.0}), r"unknown terms \['style'\]"),
    (dict(weights={"correct": float("nan")}), "weight for 'correct' must be a finite number"),
    (dict(weights={"format": 1.0}), "'format' needs argument.*responses"),
    (dict(weights={"language": 1.0}), "'language' needs argument.*responses"),
    (dict(weights={"length": 1.0}), "'length' needs argument.*lengths"),
    (dict(weights={"overlong": 1.0}, lengths=[1, 2]), "'overlong' needs argument.*max_len, cache_len"),
    (dict(weights={"overlong": 1.0}, lengths=[1, 2], max_len=20), "needs argument.*cache_len"),
    (dict(lengths=[1, 2, 3]), "lengths has 3 entries but correct has 2"),
    (dict(responses=[GOOD]), "responses has 1 entries but correct has 2"),
    (dict(weights={"language": 1.0}, responses=[GOOD, GOOD], lang="xx"), "unknown language code"),
    (dict(weights={"overlong": 1.0}, lengths=[1, 2], max_len=5, cache_len=5), "must be greater than"),
])
def test_compose_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        compose([True, False], **kwargs)

# ----------------------------------------------------------------------------- imports


def test_import_does_not_pull_torch():
    code = ("import sys, verifiers.rewards; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_module_imports_only_stdlib_or_numpy():
    tree = ast.parse(MODULE.read_text())
    roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert roots <= set(sys.stdlib_module_names) | {"numpy"}, roots


def test_language_consistency_is_linear_on_degenerate_output():
    # repetition loops happen in RL; unclosed math openers must not make the reward quadratic
    import time
    for text in ("\\(" * 30000, "\\[" * 30000, "$" * 60001):
        t0 = time.monotonic()
        assert language_consistency(text) == 1.0
        assert time.monotonic() - t0 < 2.0
