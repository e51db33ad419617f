"""Our adapters called by verl's and OpenRLHF's own code (installed with `pip install --no-deps
verl==0.9.1 openrlhf==0.11.2`, see the README's test command).

verl: `load_reward_manager` loads `compute_score` from verifiers/adapters.py by path, exactly as
`reward.custom_reward_function.path/name` does in a run, and its NaiveRewardManager scores a real
DataProto batch. OpenRLHF: `SingleTurnAgentExecutor`, the rollout's reward client, posts to our
server (`--reward.remote_url http://.../get_reward`) and loads adapters.py as a reward-function
file. vLLM cannot run on CPU, so the generation engine handed to `execute` is a stand-in that
returns fixed token ids; the tokenizer, the HTTP client and the reward parsing are OpenRLHF's.
"""
import asyncio
import json
from types import SimpleNamespace

import numpy as np
import pytest

import verifiers.adapters
from _server import start_server, stop_server

ADAPTERS = verifiers.adapters.__file__
KEYS = ["score", "acc", "task", "reason", "pred", "tests_passed", "tests_total"]
ADD = "```python\ndef add(a, b):\n    return a + b\n```"
SUB = "```python\ndef add(a, b):\n    return a - b\n```"
TESTS = {"tests": ["assert add(1, 2) == 3", "assert add(2, 5) == 7"]}


def _tokenizer():
    """A character tokenizer over printable ASCII (newlines included), built offline."""
    import string

    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    vocab = {"<pad>": 0, "<eos>": 1, **{c: i + 2 for i, c in enumerate(dict.fromkeys(string.printable))}}
    t = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    t.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    t.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=t, pad_token="<pad>", eos_token="<eos>")


def _verl_batch(tok, rows):
    """A DataProto as verl's rollout hands it to the reward manager: left-padded prompts,
    right-padded responses ending in eos, data_source / reward_model / extra_info columns."""
    import torch
    from verl import DataProto
    P = max(len(tok(p, add_special_tokens=False)["input_ids"]) for _, p, _, _ in rows)
    R = max(len(tok(r, add_special_tokens=False)["input_ids"]) for _, _, r, _ in rows) + 1
    ps, rs, pm, rm = [], [], [], []
    for _, p, r, _ in rows:
        pi = tok(p, add_special_tokens=False)["input_ids"]
        ri = tok(r, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        ps.append([0] * (P - len(pi)) + pi)
        pm.append([0] * (P - len(pi)) + [1] * len(pi))
        rs.append(ri + [0] * (R - len(ri)))
        rm.append([1] * len(ri) + [0] * (R - len(ri)))
    prompts, responses = torch.tensor(ps), torch.tensor(rs)
    return DataProto.from_dict(
        tensors={"prompts": prompts, "responses": responses, "input_ids": torch.cat([prompts, responses], 1),
                 "attention_mask": torch.cat([torch.tensor(pm), torch.tensor(rm)], 1)},
        non_tensors={"data_source": np.array([d for d, _, _, _ in rows], dtype=object),
                     "reward_model": np.array([{"ground_truth": g, "style": "rule"} for *_, g in rows], dtype=object),
                     "extra_info": np.array([{"index": i, "split": "train"} for i in range(len(rows))], dtype=object)})


def _verl_scores(rows):
    """(reward per row at its last response token, reward_extra_info columns) from verl's
    trainer-path reward manager with our compute_score loaded by path."""
    pytest.importorskip("verl", reason="verl is installed by the README's test command")
    from omegaconf import OmegaConf
    from verl.trainer.ppo.reward import load_reward_manager
    tok = _tokenizer()
    data = _verl_batch(tok, rows)
    cfg = OmegaConf.create({"reward": {
        "custom_reward_function": {"path": ADAPTERS, "name": "compute_score", "reward_kwargs": {}},
        "reward_manager": {"source": "register", "name": "naive"}, "sandbox_fusion": None}})
    mgr = load_reward_manager(cfg, tok)
    outs = [mgr.loop.run_until_complete(mgr.run_single(data[i:i + 1])) for i in range(len(data))]
    rm_scores = type(mgr).assemble_rm_scores(data, [o["reward_score"] for o in outs])
    last = data.batch["attention_mask"][:, data.batch["prompts"].shape[1]:].sum(1) - 1
    assert rm_scores.sum().item() == rm_scores[range(len(rows)), last].sum().item()  # one reward per row
    infos = [o["reward_extra_info"] for o in outs]
    keys = list(infos[0])                              # as RewardLoopManager.compute_rm_score stacks them
    return rm_scores[range(len(rows)), last].tolist(), {k: np.array([i[k] for i in infos]) for k in keys}


def test_verl_reward_manager_scores_math_with_our_compute_score():
    rows = [("openai/gsm8k", "Q: 7*8? ", "7*8 = 56\n#### 56", "56"),
            ("openai/gsm8k", "Q: 7*9? ", "#### 62", "63"),
            ("lighteval/MATH", "Q: half? ", r"It is $\boxed{\frac{1}{2}}$.", "0.5"),
            ("lighteval/MATH", "Q: roots? ", r"so $x \in \boxed{\{-1, 1\}}$", r"\{1,-1\}")]
    rewards, info = _verl_scores(rows)
    assert rewards == [1.0, 0.0, 1.0, 1.0]
    assert list(info) == KEYS
    assert info["pred"].tolist() == ["56", "62", r"\frac{1}{2}", r"\{-1, 1\}"]
    assert info["task"].tolist() == ["math"] * 4


@pytest.mark.slow
def test_verl_reward_manager_routes_code_sources_to_the_sandbox():
    from _docker import docker_client_or_skip
    docker_client_or_skip()
    apps = json.dumps({"inputs": ["2 3\n"], "outputs": ["5\n"]})
    io_prog = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    rows = [("codecontests", "Write add. ", ADD, json.dumps(TESTS)),
            ("codecontests", "Write add. ", SUB, json.dumps(TESTS)),
            ("apps", "Sum two ints. ", io_prog, apps),
            ("openai/gsm8k", "Q: 2+2? ", "#### 4", "4")]
    rewards, info = _verl_scores(rows)
    assert rewards == [1.0, 0.0, 1.0, 1.0]
    assert info["task"].tolist() == ["code", "code", "code", "math"]
    assert info["tests_passed"].tolist() == [2, 0, 1, 0] and info["reason"][1] == "wrong_answer"


# ----------------------------------------------------------------------------- OpenRLHF

class _Engine:
    """Stands in for vLLM (GPU only): returns the token ids of a fixed response, then eos."""

    def __init__(self, tok, response):
        self.ids = tok(response, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        out = SimpleNamespace(token_ids=self.ids, text="", finish_reason="stop", logprobs=None)
        return SimpleNamespace(outputs=[out])


@pytest.fixture(scope="module")
def server():
    pytest.importorskip("openrlhf", reason="OpenRLHF is installed by the README's test command")
    proc, base = start_server("--workers", "2")
    yield base
    stop_server(proc)


def _execute(executor, tok, prompt, label, response):
    params = SimpleNamespace(max_tokens=len(response) + 4, logprobs=None)
    return asyncio.run(executor.execute(prompt, label, params, max_length=512, hf_tokenizer=tok,
                                        llm_engine=_Engine(tok, response)))


@pytest.mark.parametrize("remote", ["http", "file"])
def test_openrlhf_rollout_client_gets_our_rewards(server, remote):
    """OpenRLHF's rollout decodes prompt + response with the special tokens kept (the query ends
    in <eos>) and asks the reward server or file; the reward it records must be ours."""
    from openrlhf.utils.agent import SingleTurnAgentExecutor
    tok = _tokenizer()
    url = server + "/get_reward" if remote == "http" else ADAPTERS
    ex = SingleTurnAgentExecutor(remote_rm_url=[url])
    cases = [("Q: 12*12? A: ", "144", "144", 1.0),
             ("Q: 12*12? A: ", "140", "144", 0.0),
             ("Q: Answer: 3 or 4? ", r"The answer is $\boxed{4}$.", "4", 1.0),   # the prompt's answer is not read
             ("Q: Answer: 3 or 4? ", "I do not know.", "3", 0.0)]
    for prompt, response, label, want in cases:
        out = _execute(ex, tok, prompt, label, response)
        reward = out["reward"]
        reward = reward.tolist() if hasattr(reward, "tolist") else reward
        assert reward == [want], (prompt, response, out)
        acc = out["extra_logs"]["acc"]
        assert (acc.tolist() if hasattr(acc, "tolist") else acc) == [want]


@pytest.mark.slow
def test_openrlhf_code_label_through_the_server(server):
    from _docker import docker_client_or_skip
    docker_client_or_skip()
    from openrlhf.utils.agent import SingleTurnAgentExecutor
    ex = SingleTurnAgentExecutor(remote_rm_url=server + "/get_reward")
    out = asyncio.run(ex._fetch_rewards_via_http(["P" + ADD, "P" + SUB], ["P", "P"], [json.dumps(TESTS)] * 2))
    assert [o["rewards"] for o in out] == [[1.0, 0.0]]
