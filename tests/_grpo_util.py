"""Shared pieces of the GRPO tests: a tiny saved model, a toy task and its reward."""
import json
import random


def toy_rows(n=64, seed=0):
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randrange(10), rng.randrange(10)
        rows.append(dict(prompt=f"{a}+{b}=", answer=str(a + b)))
    return rows


def write_jsonl(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return str(path)


def exact(prompts, completions, answer, **kwargs):
    """1 for the exact answer, 0.5 for one with the right first digit, else 0 (so groups differ)."""
    return [1.0 if c == a else 0.5 if c[:1] == a[:1] else 0.0 for c, a in zip(completions, answer)]


def metric_steps(path):
    """metrics.jsonl without its wall-clock fields: equal for equal runs."""
    drop = ("time_rollout", "time_train", "tokens_per_s")
    return [{k: v for k, v in json.loads(l).items() if k not in drop} for l in open(path)]


def small_config(model_dir, out_dir, **kw):
    from grpo import Config

    base = dict(model=str(model_dir), data="(rows)", output_dir=str(out_dir), group_size=4, batch_size=16,
                max_prompt_len=8, max_new_tokens=4, steps=3, lr=1e-3, progress=False, plot=False, threads=1)
    base.update(kw)
    return Config(**base)
