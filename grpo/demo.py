"""The built-in demo: a tiny model learns two-digit addition and subtraction from a reward alone.

1. build a ~1M-parameter Llama and a character tokenizer offline (save_pretrained);
2. a short supervised cold start on worked answers (as R1's pipeline starts from SFT);
3. GRPO with the math verifier's reward: the only signal is whether the answer is right.
Prints held-out greedy accuracy before and after GRPO; the last line is JSON.
"""
import json
import os
import random
import time

import torch

from .config import Config
from .model import _positions
from .tiny import save_tiny
from .trainer import train


def arithmetic(seed, n_eval=500):
    """All a+b and a-b for a, b in 0..99 written with two digits ("07+45="), shuffled; the first
    n_eval are held out."""
    rows = [dict(prompt=f"{a:02d}{op}{b:02d}=", answer=str(a + b if op == "+" else a - b))
            for a in range(100) for b in range(100) for op in "+-"]
    random.Random(seed).shuffle(rows)
    return rows[n_eval:], rows[:n_eval]


def correct(prompts, completions, answer, **kwargs):
    """1 if the completion's answer equals the gold answer (rlvr's math verifier), else 0."""
    from verifiers import math_reward

    return [math_reward(c, a) for c, a in zip(completions, answer)]


def sft(path, rows, seed, steps, lr=3e-3, batch=128):
    """Cold start: cross-entropy on the answer and eos tokens only; saves the model in place.

    Constant lr on purpose: decaying it to 0 here settled the model in a minimum so sharp that
    every GRPO step (Adam, lr 1e-5 to 3e-4) lowered the reward; from a constant-lr model GRPO learns."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    q = tok([r["prompt"] for r in rows], add_special_tokens=False).input_ids
    a = tok([r["answer"] for r in rows], add_special_tokens=False).input_ids
    L = max(len(x) + len(y) + 1 for x, y in zip(q, a))
    ids = torch.full((len(rows), L), tok.pad_token_id)
    labels = torch.full((len(rows), L), -100)
    for i, (x, y) in enumerate(zip(q, a)):  # left-padded prompt + answer + eos
        s = x + y + [tok.eos_token_id]
        ids[i, L - len(s):] = torch.tensor(s)
        labels[i, L - len(y) - 1:] = torch.tensor(y + [tok.eos_token_id])
    mask = (torch.arange(L)[None] >= L - torch.tensor([len(x) + len(y) + 1 for x, y in zip(q, a)])[:, None]).long()
    pos = _positions(mask)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99))
    g = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(steps):
        i = torch.randint(len(rows), (batch,), generator=g)
        loss = model(input_ids=ids[i], attention_mask=mask[i], position_ids=pos[i], labels=labels[i]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
    model.save_pretrained(path)
    return loss.item()


def demo(out="runs/demo", seed=0, loss="dr_grpo", sft_steps=1600, steps=1200, eval_every=200, threads=0,
         **overrides):
    from transformers.utils import logging

    logging.disable_progress_bar()
    t0 = time.time()
    if threads:
        torch.set_num_threads(threads)
    train_rows, eval_rows = arithmetic(seed)
    model_dir = os.path.join(out, "model")
    save_tiny(model_dir, seed=seed)
    torch.manual_seed(seed)
    sft_loss = sft(model_dir, train_rows, seed, sft_steps)
    print(f"cold start: {sft_steps} SFT steps, loss {sft_loss:.3f}, {time.time() - t0:.0f} s", flush=True)
    cfg = Config(model=model_dir, data="(demo rows)", output_dir=os.path.join(out, loss), seed=seed, loss=loss,
                 group_size=8, batch_size=128, max_prompt_len=16, max_new_tokens=5, temperature=1.0,
                 steps=steps, lr=1e-4, lr_schedule="linear", max_grad_norm=1.0, eval_every=eval_every,
                 eval_k=4, log_samples=1, threads=threads)
    if loss == "dapo":  # DAPO's recipe: clip-higher, dynamic sampling, overlong filtering
        cfg.eps_high, cfg.dynamic_sampling, cfg.mask_truncated = 0.28, True, True
    for k, v in overrides.items():
        setattr(cfg, k, v)
    train(cfg, [correct], rows=train_rows, eval_rows=eval_rows)
    evals = [json.loads(l) for l in open(os.path.join(cfg.output_dir, "metrics.jsonl")) if "eval/pass@1" in l]
    before, after = evals[0]["eval/pass@1"], evals[-1]["eval/pass@1"]
    print(f"held-out greedy accuracy ({len(eval_rows)} problems): before GRPO {before:.3f}, after {after:.3f}")
    result = dict(before=before, after=after, seconds=round(time.time() - t0, 1),
                  metrics=os.path.join(cfg.output_dir, "metrics.jsonl"),
                  plot=os.path.join(cfg.output_dir, "metrics.png"))
    print(json.dumps(result), flush=True)
    return result
