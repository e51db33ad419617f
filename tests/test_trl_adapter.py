"""verifiers.adapters' rewards inside TRL's real GRPOTrainer, on a tiny CPU model.

A tiny Llama (grpo.tiny) with a character tokenizer plus three word tokens ("```python\\n",
"print(", ")\\n```") is first fitted (plain next-token loss, about a second) to answer `m<d>=`
with `d` or `d+1` (right half the time) and `c<d>=` with a fenced `print(d)`, `print(d+1)` or a
bare `d` (no code block), so the completions TRL samples get both 0 and 1 rewards.
Each test then runs a few GRPO steps and checks, per reward call, that the rewards TRL logged are
the ones our reward functions returned, and that each returned reward is what the math checker
or the code sandbox gives the same completion independently.
"""
import copy
import json
import re

import pytest

pytest.importorskip("trl")
torch = pytest.importorskip("torch")

from verifiers import check                                      # noqa: E402
from verifiers.adapters import CodeReward, MathReward            # noqa: E402
from verifiers.code import code_reward                           # noqa: E402
from verifiers.tasks import code_spec                            # noqa: E402

from _docker import docker_backend_or_skip                        # noqa: E402

pytestmark = pytest.mark.slow

WORDS = ("```python\n", "print(", ")\n```", *"0123456789mc=")
STEPS = 3
G = 4                          # completions per prompt
PROMPTS_PER_STEP = 4
CHAT_TEMPLATE = "{% for m in messages %}{{ m['content'] }}{% endfor %}"


def _fence(d):
    return f"```python\nprint({d})\n```"


def _math_prompt(d):
    return f"m{d}="


def _code_prompt(d):
    return f"c{d}="


def _code_label(d, form="json"):
    """A code row's tests: its JSON text, or the dict (a struct column in `datasets`)."""
    label = {"io": [{"input": "", "output": str(d)}]}
    return json.dumps(label) if form == "json" else label


def _tokenizer():
    """grpo.tiny.build_tokenizer's kind (WordLevel, one token per piece, <pad>/<eos>, left
    padding) with the code fence and `print(` as single tokens, so a program is 4 tokens."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    t = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    pieces = "|".join(re.escape(w) for w in WORDS if len(w) > 1) + r"|[\s\S]"
    t.pre_tokenizer = pre_tokenizers.Split(Regex(pieces), behavior="isolated")
    t.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=t, pad_token="<pad>", eos_token="<eos>",
                                   padding_side="left")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Two torch threads on two busy cores run these tiny models ten times slower than one."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny():
    """(model, tokenizer) fitted to a 50/50 right/wrong math answer and a 1/3 passing, 1/3
    failing, 1/3 code-less code answer."""
    from grpo.tiny import build_model

    tok = _tokenizer()
    text = _code_prompt(3) + _fence(4)
    ids = tok(text, add_special_tokens=False).input_ids
    assert len(ids) == 7 and tok.decode(ids) == text
    pairs = []
    for d in range(10):
        pairs += [(_math_prompt(d), str(d)), (_math_prompt(d), str((d + 1) % 10))]
        pairs += [(_code_prompt(d), _fence(d)), (_code_prompt(d), _fence((d + 1) % 10)),
                  (_code_prompt(d), str(d))]
    enc = lambda s: tok(s, add_special_tokens=False).input_ids   # noqa: E731
    seqs = [(enc(p), enc(t) + [tok.eos_token_id]) for p, t in pairs]
    width = max(len(p) + len(t) for p, t in seqs)
    ids = torch.full((len(seqs), width), tok.pad_token_id)
    labels = torch.full((len(seqs), width), -100)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (p, t) in enumerate(seqs):          # prompts are all 3 tokens: right padding only
        ids[i, :len(p) + len(t)] = torch.tensor(p + t)
        labels[i, len(p):len(p) + len(t)] = torch.tensor(t)
        mask[i, :len(p) + len(t)] = 1
    torch.manual_seed(0)
    model = build_model(len(tok), seed=0, hidden=32, layers=2, heads=4, max_len=64)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(200):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    # the optimum, 0.293, is the entropy of the answer mixtures (log 2 per math answer, and per code
    # program on its printed digit; 0.64 on the first token of a code answer) over 160 tokens
    assert loss.item() < 0.35, f"the tiny model did not fit its answers (loss {loss.item():.3f})"
    return model, tok


class Recorded:
    """Mixin: keeps (completions, labels, returned rewards) of every call TRL makes."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def __call__(self, prompts, completions, completion_ids=None, **kwargs):
        out = super().__call__(prompts, completions, completion_ids, **kwargs)
        self.calls.append({"step": kwargs["trainer_state"].global_step, "prompts": list(prompts),
                           "completions": copy.deepcopy(list(completions)),
                           "labels": list(kwargs[self.columns[0]]), "rewards": list(out)})
        return out


class RecordedMath(Recorded, MathReward):
    pass


class RecordedCode(Recorded, CodeReward):
    pass


def _train(tiny, tmp_path, rows, reward_funcs, chat=False):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    model, tok = tiny
    tok = copy.deepcopy(tok)
    if chat:
        tok.chat_template = CHAT_TEMPLATE
    args = GRPOConfig(
        output_dir=str(tmp_path / "out"), max_steps=STEPS, learning_rate=1e-4, logging_steps=1,
        per_device_train_batch_size=G * PROMPTS_PER_STEP, gradient_accumulation_steps=1, num_generations=G,
        max_completion_length=8, temperature=1.0, beta=0.0, seed=0, shuffle_dataset=False,
        bf16=False, fp16=False, gradient_checkpointing=False, use_cpu=True, use_vllm=False,
        report_to="none", save_strategy="no", dataloader_num_workers=0, disable_tqdm=True)
    trainer = GRPOTrainer(model=copy.deepcopy(model), reward_funcs=reward_funcs, args=args,
                          train_dataset=Dataset.from_list(rows), processing_class=tok)
    trainer.train()
    return trainer


def _text(completion):
    if isinstance(completion, str):
        return completion
    assert isinstance(completion, list) and [m["role"] for m in completion] == ["assistant"], completion
    return completion[0]["content"]


def _logged(trainer, name):
    """TRL's `rewards/<name>/mean` of each training step, in step order (None: no value that step)."""
    logs = [h for h in trainer.state.log_history if "loss" in h or f"rewards/{name}/mean" in h]
    assert [h["step"] for h in logs] == list(range(1, STEPS + 1)), trainer.state.log_history
    return [h.get(f"rewards/{name}/mean") for h in logs]


def _check_logged_means(trainer, reward):
    """One reward call per step here (no gradient accumulation, steps_per_generation 1): the mean
    TRL logged for the step is the mean of the non-None rewards we returned."""
    assert len(reward.calls) == STEPS
    assert [c["step"] for c in reward.calls] == list(range(STEPS))
    for logged, call in zip(_logged(trainer, reward.__name__), reward.calls):
        assert len(call["rewards"]) == len(call["completions"]) == G * PROMPTS_PER_STEP
        given = [r for r in call["rewards"] if r is not None]
        if not given:
            assert logged is None
        else:
            assert logged == pytest.approx(sum(given) / len(given), abs=1e-6)


def _check_math(reward):
    seen = []
    for call in reward.calls:
        for completion, gold, r in zip(call["completions"], call["labels"], call["rewards"]):
            if gold is None:
                assert r is None
                continue
            assert r == check(_text(completion), gold).reward, (completion, gold, r)
            seen.append(r)
    assert 0.0 in seen and 1.0 in seen, f"math rewards should differ between completions: {seen}"
    return seen


def _math_rows(chat=False):
    rows = []
    for d in range(8):
        p = _math_prompt(d)
        rows.append({"prompt": [{"role": "user", "content": p}] if chat else p, "answer": str(d)})
    return rows


def test_grpo_trainer_logs_our_math_rewards(tiny, tmp_path):
    reward = RecordedMath("answer")
    trainer = _train(tiny, tmp_path, _math_rows(), [reward])
    assert trainer.reward_func_names == ["math"]
    _check_logged_means(trainer, reward)
    assert all(isinstance(c, str) for call in reward.calls for c in call["completions"])
    _check_math(reward)
    # TRL's own "reward" (the weighted sum over reward functions) is ours too, there being one
    sums = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    assert sums == pytest.approx([sum(c["rewards"]) / len(c["rewards"]) for c in reward.calls], abs=1e-6)


def test_grpo_trainer_conversational_prompts(tiny, tmp_path):
    reward = RecordedMath("answer")
    trainer = _train(tiny, tmp_path, _math_rows(chat=True), [reward], chat=True)
    _check_logged_means(trainer, reward)
    for call in reward.calls:
        assert all(isinstance(p, list) and p[0]["role"] == "user" for p in call["prompts"])
        assert all(isinstance(c, list) for c in call["completions"])
    _check_math(reward)


@pytest.fixture(scope="module")
def docker_backend():
    b = docker_backend_or_skip(size=2)
    yield b
    b.close()


@pytest.mark.parametrize("form", ["json", "dict"])
def test_grpo_trainer_mixed_math_and_code(tiny, tmp_path, docker_backend, form):
    rows = []
    for d in range(8):                        # alternating, so every step has both tasks
        rows.append({"prompt": _math_prompt(d), "answer": str(d), "tests": None})
        rows.append({"prompt": _code_prompt(d), "answer": None, "tests": _code_label(d, form)})
    math_r, code_r = RecordedMath("answer"), RecordedCode("tests", backend=docker_backend)
    trainer = _train(tiny, tmp_path, rows, [math_r, code_r])
    assert trainer.reward_func_names == ["math", "code"]
    _check_logged_means(trainer, math_r)
    _check_logged_means(trainer, code_r)

    # both functions saw the same rows, and every row has exactly one reward (TRL's None handling)
    for m, c in zip(math_r.calls, code_r.calls):
        assert m["completions"] == c["completions"]
        for a, t, rm, rc in zip(m["labels"], c["labels"], m["rewards"], c["rewards"]):
            assert (a is None) != (t is None)
            assert (rm is None) == (a is None) and (rc is None) == (t is None)
    _check_math(math_r)

    seen, statuses, cache = [], set(), {}
    for call in code_r.calls:
        call["reasons"] = []
        for completion, label, r in zip(call["completions"], call["labels"], call["rewards"]):
            if label is None:
                call["reasons"].append(None)
                continue
            if form == "dict":
                assert isinstance(label, dict), label
            key = (completion, json.dumps(label, sort_keys=True))
            if key not in cache:
                cache[key] = code_reward(completion, backend=docker_backend, **code_spec(label))
            v = cache[key]
            assert r == v.reward, (completion, label, r, v)
            seen.append(r)
            statuses.add(v.status)
            call["reasons"].append(v.status)
    assert 0.0 in seen and 1.0 in seen, f"code rewards should differ between completions: {statuses}"
    assert {"passed", "wrong_answer", "no_code"} <= statuses, statuses

    # the reasons our rewards sent through TRL's log_extra reached its completions table (a
    # private buffer, holding the last generation batch; not checked where a TRL lacks it)
    extra = getattr(trainer, "_logs", {}).get("extra")
    if extra is not None:
        last_m = math_r.calls[-1]
        assert list(extra["math_reason"]) == [None if a is None else check(_text(c), a).reason
                                              for c, a in zip(last_m["completions"], last_m["labels"])]
        assert list(extra["code_reason"]) == code_r.calls[-1]["reasons"]

    # TRL's summed reward: each row's single non-None reward
    for h, m, c in zip([h for h in trainer.state.log_history if "reward" in h], math_r.calls, code_r.calls):
        per_row = [rm if rm is not None else rc for rm, rc in zip(m["rewards"], c["rewards"])]
        assert h["reward"] == pytest.approx(sum(per_row) / len(per_row), abs=1e-6)
