"""The trainer adapters called directly: TRL's reward signature, verl's compute_score, OpenRLHF's
reward_func, and the labels that route a row to math or code."""
import json
import pickle
import subprocess
import sys

import pytest

from verifiers import check
from verifiers.adapters import (CodeReward, FormatReward, LanguageReward, LengthReward, MathReward,
                                OverlongReward, completion_text, compute_score, compute_score_batch,
                                reward_func, score_queries)
from verifiers.tasks import code_spec, task_of

KEYS = {"score", "acc", "task", "reason", "pred", "tests_passed", "tests_total"}


def test_import_verifiers_adapters_stays_light():
    code = ("import sys, verifiers.adapters, verifiers.tasks, verifiers.server; "
            "print(sorted(m for m in ('torch', 'transformers', 'sympy', 'sandbox', 'starlette', 'uvicorn') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_math_reward_trl_signature_plain_and_conversational():
    f = MathReward("answer")
    completions = [r"so $\boxed{4}$", [{"role": "assistant", "content": "Answer: 5"}],
                   [{"role": "assistant", "content": [{"type": "text", "text": r"\boxed{4}"}]}], "x"]
    logged = {}
    out = f(["p"] * 4, completions, completion_ids=[[1]] * 4, answer=["4", "4", "4", None],
            trainer_state=object(), log_extra=logged.__setitem__, log_metric=lambda *a: None)
    assert out == [1.0, 0.0, 1.0, None]
    assert logged == {"math_reason": ["exact", "numeric", "exact", None]}
    assert f.__name__ == "math" and MathReward("gold", name="acc").__name__ == "acc"


def test_trl_rewards_are_picklable_and_keep_their_names():
    for f in (MathReward("answer"), CodeReward("tests"), FormatReward(), LanguageReward("zh"),
              OverlongReward(100, 20), LengthReward("answer")):
        g = pickle.loads(pickle.dumps(f))
        assert g.__name__ == f.__name__ and type(g) is type(f)


def test_trl_reward_missing_column_names_it():
    with pytest.raises(ValueError, match=r"reads dataset column\(s\) \['solution'\], but the dataset has \['answer'\]"):
        MathReward("solution")(["p"], ["x"], answer=["1"], trainer_state=None)
    with pytest.raises(ValueError, match="3 rows for 2 completions"):
        MathReward("answer")(["p", "p"], ["x", "y"], answer=["1", "2", "3"])
    with pytest.raises(ValueError, match="completion must be a str"):
        MathReward("answer")(["p"], [42], answer=["1"])
    with pytest.raises(ValueError, match="must be a str or a number, got list"):
        MathReward("answer")(["p"], ["1"], answer=[[1]])


def test_shaped_trl_rewards():
    think = "<think>because</think> 4"
    assert FormatReward()(["p", "p"], [think, "4"]) == [1.0, 0.0]
    assert LanguageReward("en")(["p"], ["<think>this is english 这</think>4"]) == [0.75]
    with pytest.raises(ValueError, match="unknown language code"):
        LanguageReward("xx")
    assert OverlongReward(10, 4)(["p"] * 3, ["a", "b", "c"], completion_ids=[[0] * 6, [0] * 8, [0] * 11]) == [0.0, -0.5, -1.0]
    with pytest.raises(ValueError, match="greater than cache_len"):
        OverlongReward(4, 4)
    # Kimi k1.5 within each prompt's group: shortest correct +0.5, longest correct -0.5, wrong <= 0
    out = LengthReward("answer")(["a", "a", "a", "b", "b"],
                                 ["Answer: 4", "so the answer is 4", "Answer: 5", "Answer: 1", "Answer: 2"],
                                 answer=["4", "4", "4", "1", None])
    assert out == [0.5, -0.5, pytest.approx(min(0.0, 0.5 - (9 - 9) / (18 - 9))), 0.0, None]


def test_code_labels_and_routing():
    assert code_spec("42") is None and code_spec("{1, 2}") is None and code_spec(3) is None
    assert code_spec({"tests": "assert f() == 1", "entry_point": "f"}) == {"tests": "assert f() == 1", "entry_point": "f"}
    assert code_spec(json.dumps({"io": [{"input": "1\n", "output": "1\n"}]})) == {"io": [{"input": "1\n", "output": "1\n"}]}
    assert code_spec({"inputs": ["1 2\n", ["3", "4"]], "outputs": ["3\n", 7]}) == {
        "io": [{"input": "1 2\n", "output": "3\n"}, {"input": "3\n4\n", "output": "7"}]}
    with pytest.raises(ValueError, match="fn_name"):
        code_spec({"inputs": [[1]], "outputs": [[1]], "fn_name": "f"})
    with pytest.raises(ValueError, match="exactly one of tests, io, call"):
        code_spec({"tests": "x", "io": []})
    with pytest.raises(ValueError, match="exactly one of"):
        code_spec('{"answer": 3}')
    assert task_of("7") == "math" and task_of({"tests": "assert 1"}) == "code"
    with pytest.raises(ValueError, match="task is code but the label is not a code spec"):
        task_of("7", "code")
    with pytest.raises(ValueError, match="unknown task"):
        task_of("7", "chess")


def test_verl_compute_score_math():
    out = compute_score("openai/gsm8k", "... so she pays #### 72", "72", extra_info={"index": 0})
    assert set(out) == KEYS and out["score"] == 1.0 and out["pred"] == "72" and out["task"] == "math"
    out = compute_score("lighteval/MATH", r"\boxed{\frac{1}{2}}", "0.5")
    assert out["score"] == 1.0
    assert compute_score("lighteval/MATH", "I could not finish this one.", "0.5")["reason"] == "no_answer"
    with pytest.raises(ValueError, match="task is code but the label is not a code spec"):
        compute_score("codecontests", "print(1)", "1")
    rows = compute_score_batch(["a", "b", "c"], [r"\boxed{2}", r"\boxed{3}", "Answer: x+1"], ["2", "2", "1+x"],
                               [None, None, None])
    assert [r["score"] for r in rows] == [1.0, 0.0, 1.0]
    assert all(set(r) == KEYS for r in rows)


def test_openrlhf_reward_func_strips_the_prompt():
    prompts = ["Q: 2+2? Answer: 5. A:", "Q: 1+1? A:"]
    queries = [prompts[0] + " Answer: 4", prompts[1] + " Answer: 2"]
    out = score_queries(queries, prompts, ["4", "3"])
    # the prompt's "Answer: 5" is not the response's answer
    assert out["rewards"] == [check(" Answer: 4", "4").reward, 0.0] == [1.0, 0.0]
    assert out["extra_logs"] == {"acc": [1.0, 0.0], "timeout": [0.0, 0.0]}
    torch = pytest.importorskip("torch")
    t = reward_func(queries, prompts, ["4", "3"])
    assert torch.equal(t["rewards"], torch.tensor([1.0, 0.0])) and torch.equal(t["scores"], t["rewards"])
    with pytest.raises(ValueError, match="2 queries, 1 prompts"):
        score_queries(queries, prompts[:1], ["4"])


def test_completion_text_rejects_odd_messages():
    assert completion_text([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
                            {"role": "assistant", "content": "b"}]) == "a\nb"
    with pytest.raises(ValueError):
        completion_text([{"role": "assistant", "content": 3}])
