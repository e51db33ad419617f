"""The trainer with a real tiny transformers model: log-probs, steps, config and reward checks."""
import asyncio
import contextlib
import json
import math
import os

import pytest
import torch

from grpo import train
from grpo.model import (CachedSampler, CompletionLogProbs, HFGenerator, _filter, completion_mask, load_policy,
                        packing_works)
from grpo.tiny import save_tiny
from grpo.trainer import collate, pack_length, rollout, Prompts, train_step

from _grpo_util import exact, metric_steps, small_config, toy_rows


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny")
    save_tiny(path, seed=0)
    return path


def test_tokenizer_round_trips_characters(tiny):
    model, tok = load_policy(str(tiny))
    ids = tok("12+34=", add_special_tokens=False).input_ids
    assert len(ids) == 6 and tok.decode(ids) == "12+34="
    assert tok.decode(ids + [tok.eos_token_id, tok.pad_token_id], skip_special_tokens=True) == "12+34="


def _batch(tok, model, G=3):
    enc = tok(["12+34=", "5-7=", "99+9=", "1="], return_tensors="pt", padding=True)
    torch.manual_seed(0)
    c = HFGenerator(model, tok).generate(enc.input_ids, enc.attention_mask, G, 6)
    c, m, trunc = completion_mask(c, tok.eos_token_id, tok.pad_token_id)
    return enc.input_ids, enc.attention_mask, c, m


def _reference_logp(model, p, pm, c, m, G, T):
    ids = torch.cat([p.repeat_interleave(G, 0), c], 1)
    mask = torch.cat([pm.repeat_interleave(G, 0), m], 1)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, p.shape[1] - 1:-1] / T
    return logits.log_softmax(-1).gather(-1, c.unsqueeze(-1)).squeeze(-1)


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """The tiny model with 219 tokens, more than its hidden size of 128: the output head is then
    applied in checkpointed chunks (with fewer tokens than that it is taken in one piece)."""
    path = tmp_path_factory.mktemp("wide")
    save_tiny(path, seed=0, extra_tokens=200)
    return path


PATHS = {"plain": dict(shared_prompt=False), "two_pass": dict(shared_prompt=True),
         "packed": dict(shared_prompt=False, pack_len=10**9)}


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("which", ["tiny", "wide"])
def test_chunked_logprobs_equal_a_full_forward(tiny, wide, which, path, attn):
    model, tok = load_policy(str(tiny if which == "tiny" else wide))
    model.set_attn_implementation(attn)
    assert (model.get_output_embeddings().weight.shape[0] > model.config.hidden_size) == (which == "wide")
    p, pm, c, m = _batch(tok, model)
    assert (pm == 0).any(), "prompts of different lengths, so left padding is exercised"
    c[::4, 2] = tok.eos_token_id  # some completions end early (a random wide model rarely says eos)
    c, m, _ = completion_mask(c, tok.eos_token_id, tok.pad_token_id)
    assert ((m == 0).any(1) & (m == 1).any(1)).any(), "completions that end before the others"
    ref = _reference_logp(model, p, pm, c, m, 3, 0.7)
    lp_of = CompletionLogProbs(model, temperature=0.7, chunk=2, **PATHS[path])
    lp, ent = lp_of(p, pm, c, m)
    assert torch.allclose(lp * m, ref * m, atol=1e-5)
    assert ((ent > 0) | (m == 0)).all()
    # gradients through the shared prompt (cache or packed mask) equal those of the full forward
    (lp * m).sum().backward()
    g1 = [q.grad.clone() for q in model.parameters()]
    model.zero_grad()
    (ref * m).sum().backward()
    for a, b in zip(g1, model.parameters()):
        assert torch.allclose(a, b.grad, atol=1e-5)


def test_packing_is_checked_and_bounded_by_the_hidden_size(tiny, monkeypatch):
    model, tok = load_policy(str(tiny))
    assert packing_works(model, tok)
    cfg = lambda **kw: small_config(tiny, "unused", **kw).resolved()  # G = 4, max_prompt_len 8
    assert pack_length(cfg(max_new_tokens=4), model, tok) == 128  # the hidden size
    assert pack_length(cfg(max_new_tokens=40), model, tok) == 128  # packed when a batch fits
    assert pack_length(cfg(max_new_tokens=4, fsdp=True), model, tok) == 128  # 8 + 4 * 3 <= 128
    assert pack_length(cfg(max_new_tokens=40, fsdp=True), model, tok) == 0  # 8 + 4 * 39 > 128: never
    assert pack_length(cfg(max_new_tokens=4, shared_prompt=False), model, tok) == 0
    p, pm, c, m = _batch(tok, model)
    calls = []
    monkeypatch.setattr(CompletionLogProbs, "_packed", lambda self, *a: calls.append(a) or 1 / 0)
    with pytest.raises(ZeroDivisionError):  # 4 groups of [q; 3 x 5 tokens] = 22 <= 128: packed
        CompletionLogProbs(model, pack_len=128)(p, pm, c, m)
    long_c = torch.cat([c] * 10, 1)  # 3 x 59 completion tokens after q: longer than 128
    lp, _ = CompletionLogProbs(model, pack_len=128)(p, pm, long_c, torch.ones_like(long_c))
    assert len(calls) == 1 and lp.shape == long_c.shape
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    def causal_only(module, q, k, v, attention_mask, **kw):  # builds its own mask, as some kernels do
        return sdpa_attention_forward(module, q, k, v, None, **kw)

    AttentionInterface.register("causal_only", causal_only)
    model.set_attn_implementation("causal_only")
    assert not packing_works(model, tok)


def test_cached_sampler_greedy_equals_generate(tiny):
    model, tok = load_policy(str(tiny))
    with torch.no_grad():  # a louder eos, so that greedy completions end at different steps, and
        model.get_output_embeddings().weight[tok.eos_token_id] *= 8
        for layer in model.model.layers:  # sharper attention, so that positions matter
            layer.self_attn.q_proj.weight *= 4
            layer.self_attn.k_proj.weight *= 4
    enc = tok(["12+34=", "5-7=", "99+9=", "1=", "3+3=", "77-1=", "8", "40+2="], return_tensors="pt", padding=True)
    a = CachedSampler(model, tok).generate(enc.input_ids, enc.attention_mask, 1, 7, greedy=True)
    b = HFGenerator(model, tok).generate(enc.input_ids, enc.attention_mask, 1, 7, greedy=True)
    a, m, _ = completion_mask(a, tok.eos_token_id, tok.pad_token_id)
    assert len(set(m.sum(1).tolist())) >= 3, "rows leave the batch at different steps"
    assert torch.equal(a, completion_mask(b, tok.eos_token_id, tok.pad_token_id)[0])
    # n completions per prompt: each prompt's greedy completion, n times
    a3 = CachedSampler(model, tok).generate(enc.input_ids, enc.attention_mask, 3, 7, greedy=True)
    assert torch.equal(completion_mask(a3, tok.eos_token_id, tok.pad_token_id)[0], a.repeat_interleave(3, 0))


def test_cached_sampler_samples_the_models_distribution(tiny):
    model, tok = load_policy(str(tiny))
    enc = tok(["3+4=", "12+34="], return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**enc).logits[:, -1]
    n = 3000
    torch.manual_seed(0)
    for T in (1.0, 0.5):
        c = CachedSampler(model, tok).generate(enc.input_ids, enc.attention_mask, n, 2, temperature=T)
        for i in range(2):
            freq = torch.bincount(c[i * n:(i + 1) * n, 0], minlength=len(tok)).float() / n
            assert (freq - (logits[i] / T).softmax(-1)).abs().max() < 0.03


def test_top_k_and_top_p_filters():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    keep = lambda x: torch.isfinite(x)[0].tolist()
    assert keep(_filter(logits, 2, 1.0)) == [True, True, False, False]
    assert keep(_filter(logits, 0, 0.7)) == [True, True, False, False]   # 0.5 < 0.7 needs the 0.3
    assert keep(_filter(logits, 0, 0.5)) == [True, False, False, False]
    assert keep(_filter(logits, 0, 0.9)) == [True, True, True, False]
    shuffled = logits[:, [2, 0, 3, 1]]
    assert keep(_filter(shuffled, 0, 0.7)) == [False, True, False, True]


def test_cached_sampler_pads_after_eos(tiny):
    model, tok = load_policy(str(tiny))
    enc = tok(["1+1="], return_tensors="pt")
    torch.manual_seed(0)
    c = CachedSampler(model, tok).generate(enc.input_ids, enc.attention_mask, 64, 6)
    for row in c.tolist():
        if tok.eos_token_id in row:
            k = row.index(tok.eos_token_id)
            assert all(x == tok.pad_token_id for x in row[k + 1:])


def test_completion_mask_stops_at_first_eos():
    ids = torch.tensor([[5, 1, 7, 1], [5, 6, 7, 8], [1, 4, 4, 4]])
    out, mask, trunc = completion_mask(ids, eos_id=1, pad_id=0)
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    assert out.tolist() == [[5, 1, 0, 0], [5, 6, 7, 8], [1, 0, 0, 0]]
    assert trunc.tolist() == [False, True, False]


def test_a_step_raises_the_probability_of_rewarded_completions(tiny):
    cfg = small_config(tiny, "unused", loss="dr_grpo", lr=1e-2).resolved()
    model, tok = load_policy(str(tiny))
    torch.manual_seed(0)
    groups, _, _, _ = rollout(HFGenerator(model, tok), tok, Prompts(toy_rows(), 0), [exact], [1.0], cfg, 0, 1, "cpu")
    b = collate(groups, tok, cfg, "cpu")
    b["total"] = torch.tensor([1.0, 0, 0, 0] * 4)  # reward the first completion of each group
    logp = CompletionLogProbs(model)
    before = ((logp(b["p_ids"], b["p_mask"], b["c_ids"], b["c_mask"])[0] * b["c_mask"]).sum(1)).detach()
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    m = train_step(cfg, b, logp, model, None, opt, sched, contextlib.nullcontext, 1)
    after = ((logp(b["p_ids"], b["p_mask"], b["c_ids"], b["c_mask"])[0] * b["c_mask"]).sum(1)).detach()
    up = (after - before).reshape(4, 4)
    # in every group the rewarded completion gains the most; the others lose on average
    assert (up[:, 0] > 0).all() and (up[:, 0] > up[:, 1:].max(1).values).all() and up[:, 1:].mean() < 0
    assert m["grad_norm"] > 0 and m["clip_frac"] == 0.0


@pytest.mark.parametrize("pack", [False, True])
@pytest.mark.parametrize("which", ["tiny", "wide"])
def test_a_bf16_autocast_step_follows_the_fp32_step(tiny, wide, which, pack):
    """bf16 autocast (on by default on CUDA) on the CPU: the same update as fp32 up to bf16's
    precision, through the one-piece and the chunked output head, packed and in two passes."""
    path = str(tiny if which == "tiny" else wide)
    cfg = small_config(path, "unused", loss="dapo").resolved()
    model, tok = load_policy(path)
    torch.manual_seed(0)
    groups, _, _, _ = rollout(CachedSampler(model, tok), tok, Prompts(toy_rows(), 0), [exact], [1.0], cfg, 0, 1, "cpu")
    b = collate(groups, tok, cfg, "cpu")
    b["total"] = torch.tensor([1.0, 0, 0.5, 0] * 4)

    def grad(autocast):
        m, _ = load_policy(path)
        opt = torch.optim.SGD(m.parameters(), lr=1.0)
        before = [p.detach().clone() for p in m.parameters()]
        out = train_step(cfg, b, CompletionLogProbs(m, chunk=2, pack_len=10**9 if pack else 0), m, None, opt,
                         torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0), autocast, 1)
        return torch.cat([(q - p.detach()).reshape(-1) for q, p in zip(before, m.parameters())]), out

    g32, m32 = grad(contextlib.nullcontext)
    g16, m16 = grad(lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    rel = float((g32 - g16).norm() / g32.norm())
    assert 1e-4 < rel < 0.05, rel  # bf16 did compute the products (about 0.8% here), and closely
    assert torch.nn.functional.cosine_similarity(g32, g16, dim=0) > 0.99
    assert m16["grad_norm"] == pytest.approx(m32["grad_norm"], rel=0.05) and math.isfinite(m16["loss"])


def test_gradient_checkpointing_gives_the_same_steps(tiny, tmp_path):
    """Checkpointing recomputes activations in backward; packing needs no KV cache, so the prompt is
    still shared. Two steps with and without it: the same losses, gradients and weights."""
    runs = {}
    for gc in (False, True):
        cfg = small_config(tiny, tmp_path / str(gc), gradient_checkpointing=gc, steps=2)
        runs[gc] = train(cfg, [exact], rows=toy_rows())
        runs[gc]["w"] = load_policy(str(tmp_path / str(gc) / "checkpoint-2"))[0].model.embed_tokens.weight
    for k in ("loss", "grad_norm", "reward", "entropy"):
        assert runs[True][k] == pytest.approx(runs[False][k], rel=1e-4, abs=1e-6), k
    assert torch.allclose(runs[True]["w"], runs[False]["w"], atol=1e-5)
    model, tok = load_policy(str(tiny), gradient_checkpointing=True)
    model.train()
    assert model.is_gradient_checkpointing
    p, pm, c, m = _batch(tok, model)
    lp, _ = CompletionLogProbs(model, temperature=0.7, pack_len=10**9)(p, pm, c, m)
    assert torch.allclose(lp * m, _reference_logp(model, p, pm, c, m, 3, 0.7) * m, atol=1e-5)


@pytest.mark.parametrize("loss", ["grpo", "dr_grpo", "dapo"])
def test_real_training_steps_write_metrics_samples_and_a_checkpoint(tiny, tmp_path, loss):
    extra = dict(dynamic_sampling=True, mask_truncated=True, eps_high=0.28) if loss == "dapo" else {}
    cfg = small_config(tiny, tmp_path, loss=loss, mu=2, beta=0.04, micro_batch_size=8, eval_every=2,
                       eval_k=2, plot=True, **extra)
    last = train(cfg, [exact], rows=toy_rows(), eval_rows=toy_rows(8, seed=1))
    lines = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
    steps = [l for l in lines if "reward" in l]
    assert [l["step"] for l in steps] == [1, 2, 3]
    for key in ("reward/exact", "accuracy", "completion_len", "clip_frac", "kl", "entropy", "grad_norm", "lr",
                "time_rollout", "time_generate", "time_score", "time_train", "tokens_per_s"):
        assert key in last, key
    assert lines[0]["step"] == 0 and "eval/pass@1" in lines[0] and "eval/mean@2" in lines[0]
    assert 0 <= last["completion_len"] <= 4 and last["grad_norm"] > 0
    assert 0 < last["time_generate"] and 0 < last["time_score"]
    assert last["time_generate"] + last["time_score"] <= last["time_rollout"]
    assert last["kl"] > 0  # mu = 2: the second update moves away from the reference
    if loss == "dapo":
        assert 0 < last["kept_frac"] <= 1
    assert os.path.exists(tmp_path / "checkpoint-3" / "model.safetensors")
    assert os.path.getsize(tmp_path / "metrics.png") > 10_000
    s = [json.loads(l) for l in open(tmp_path / "samples.jsonl")]
    assert s and {"step", "row", "completion", "reward"} <= set(s[0])
    trained = load_policy(str(tmp_path / "checkpoint-3"))[0]
    fresh = load_policy(str(tiny))[0]
    assert not torch.equal(trained.model.embed_tokens.weight, fresh.model.embed_tokens.weight)


def test_async_reward_functions_are_awaited(tiny, tmp_path):
    async def later(prompts, completions, **kw):
        await asyncio.sleep(0)
        return [float(len(c)) / 4 for c in completions]

    last = train(small_config(tiny, tmp_path, steps=1), [exact, later], rows=toy_rows())
    assert "reward/later" in last and last["reward/later"] > 0


# ---------------------------------------------------------------- rejected before any work


def _never_loaded(tmp_path, **kw):
    return small_config("/nonexistent/model", tmp_path / "out", **kw)


@pytest.mark.parametrize("kw, msg", [
    (dict(batch_size=10, group_size=4), "group_size 4 does not divide batch_size 10"),
    (dict(group_size=1, batch_size=4), "group_size must be >= 2"),
    (dict(micro_batch_size=6), "micro_batch_size 6 must be a multiple of group_size 4"),
    (dict(loss="ppo"), "loss must be one of"),
    (dict(temperature=0.0), "temperature must be > 0"),
    (dict(fsdp=True), "fsdp shards the model over torchrun's processes"),
    (dict(fsdp=True, lora_r=4), "fsdp with LoRA is not supported"),
])
def test_bad_configs_are_rejected_with_a_message(tmp_path, kw, msg):
    with pytest.raises(ValueError, match=msg):
        train(_never_loaded(tmp_path, **kw), [exact], rows=toy_rows())
    assert not os.path.exists(tmp_path / "out")


def test_vllm_generator_without_vllm_names_the_extra(tmp_path, monkeypatch):
    import importlib.util

    find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else find(name, *a))
    with pytest.raises(ValueError, match=r"generator vllm needs vLLM: pip install 'rlvr\[vllm\]'"):
        train(_never_loaded(tmp_path, generator="vllm"), [exact], rows=toy_rows())


def test_reward_of_the_wrong_length_is_rejected_before_loading(tmp_path):
    def short(prompts, completions, **kw):
        return [0.0]

    with pytest.raises(ValueError, match="'short' returned 1 values for 2 completions"):
        train(_never_loaded(tmp_path), [short], rows=toy_rows())


def test_reward_needing_a_missing_column_is_rejected(tmp_path):
    def needs_solution(prompts, completions, solution, **kw):
        return [0.0] * len(completions)

    with pytest.raises(ValueError, match="needs column 'solution'.*columns: \\['answer'\\]"):
        train(_never_loaded(tmp_path), [needs_solution], rows=toy_rows())


def test_reward_returning_nan_or_text_is_rejected(tmp_path):
    def bad(prompts, completions, **kw):
        return ["1"] * len(completions)

    with pytest.raises(ValueError, match="returned '1' for completion 0"):
        train(_never_loaded(tmp_path), [bad], rows=toy_rows())


def test_missing_prompt_column_and_weights_mismatch(tmp_path):
    from grpo.data import load_rows

    p = tmp_path / "d.jsonl"
    p.write_text('{"question": "1+1=", "answer": "2"}\n')
    with pytest.raises(ValueError, match="no 'prompt' column"):
        load_rows(str(p))
    with pytest.raises(ValueError, match="2 reward_weights for 1 reward functions"):
        train(_never_loaded(tmp_path, reward_weights=[1, 2]), [exact], rows=toy_rows())


def test_entropy_and_clip_metrics_are_token_means_whatever_the_loss(tiny):
    model, tok = load_policy(str(tiny))
    torch.manual_seed(0)
    cfg0 = small_config(tiny, "unused").resolved()
    groups, _, _, _ = rollout(CachedSampler(model, tok), tok, Prompts(toy_rows(), 0), [exact], [1.0], cfg0, 0, 1, "cpu")
    b = collate(groups, tok, cfg0, "cpu")
    with torch.no_grad():
        _, ent = CompletionLogProbs(model)(b["p_ids"], b["p_mask"], b["c_ids"], b["c_mask"])
    expect = float((ent * b["c_mask"]).sum() / b["c_mask"].sum())
    for loss in ("grpo", "dr_grpo", "dapo"):
        cfg = small_config(tiny, "unused", loss=loss, lr=0.0).resolved()
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        m = train_step(cfg, b, CompletionLogProbs(model), model, None, opt,
                       torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0), contextlib.nullcontext, 1)
        assert m["entropy"] == pytest.approx(expect, rel=1e-5), loss


def test_lora_trains_adapters_only_resumes_exactly_and_loads(tiny, tmp_path):
    cfg = dict(lora_r=4, beta=0.04, mu=2, lr=1e-2, save_every=2)
    last = train(small_config(tiny, tmp_path / "full", steps=4, **cfg), [exact], rows=toy_rows())
    kls = [json.loads(l)["kl"] for l in open(tmp_path / "full" / "metrics.jsonl")]
    assert kls[0] == 0.0  # step 1: the policy is still the reference (LoRA's B starts at 0)
    assert last["kl"] > 1e-3  # after updates, KL to the adapter-free model is measured
    from safetensors.torch import load_file

    adapters = load_file(tmp_path / "full" / "checkpoint-4" / "adapter_model.safetensors")
    assert adapters and all("lora_" in k for k in adapters)
    assert any(v.abs().max() > 0 for k, v in adapters.items() if "lora_B" in k)
    # stopped after the step-2 checkpoint, resumed: the same metrics and adapters, bit for bit
    train(small_config(tiny, tmp_path / "cut", steps=2, **cfg), [exact], rows=toy_rows())
    train(small_config(tiny, tmp_path / "cut", steps=4, resume=True, **cfg), [exact], rows=toy_rows())
    assert metric_steps(tmp_path / "full" / "metrics.jsonl") == metric_steps(tmp_path / "cut" / "metrics.jsonl")
    resumed = load_file(tmp_path / "cut" / "checkpoint-4" / "adapter_model.safetensors")
    assert all(torch.equal(adapters[k], resumed[k]) for k in adapters)
    # the saved adapters load on their base model (the path in adapter_config.json)
    from peft import AutoPeftModelForCausalLM

    model = AutoPeftModelForCausalLM.from_pretrained(str(tmp_path / "full" / "checkpoint-4"))
    _, tok = load_policy(str(tmp_path / "full" / "checkpoint-4"))
    ids = torch.tensor([[5, 6, 7]])
    fresh = load_policy(str(tiny))[0]
    with torch.no_grad():
        assert not torch.allclose(model(input_ids=ids).logits, fresh(input_ids=ids).logits)
        merged = model.merge_and_unload()
        assert torch.allclose(merged(input_ids=ids).logits, model(input_ids=ids).logits, atol=1e-5)
