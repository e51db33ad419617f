"""Shared pieces of the GRPO tests: a toy task and its reward, configs, torchrun command lines."""
import json
import os
import random
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


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
    return [{k: v for k, v in json.loads(l).items() if not k.startswith("time_") and k != "tokens_per_s"}
            for l in open(path)]


def small_config(model_dir, out_dir, **kw):
    from grpo import Config

    base = dict(model=str(model_dir), data="(rows)", output_dir=str(out_dir), group_size=4, batch_size=16,
                max_prompt_len=8, max_new_tokens=4, steps=3, lr=1e-3, progress=False, plot=False, threads=1)
    base.update(kw)
    return Config(**base)


def yaml_config(tmp_path, tiny_dir, out):
    """A run.yaml for `python -m grpo train` on the toy task (40 steps; flags cut it shorter)."""
    data = write_jsonl(tmp_path / "train.jsonl", toy_rows(64))
    ev = write_jsonl(tmp_path / "eval.jsonl", toy_rows(8, seed=1))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"model: {tiny_dir}\ndata: {data}\neval_data: {ev}\noutput_dir: {out}\n"
                   "group_size: 4\nbatch_size: 16\nmax_prompt_len: 8\nmax_new_tokens: 4\nlr: 0.001\n"
                   "lr_schedule: linear\nsteps: 40\nsave_every: 5\neval_every: 10\neval_k: 2\nthreads: 1\n"
                   "progress: false\nplot: false\n"
                   f"rewards: ['{os.path.join(HERE, '_grpo_util.py')}:exact']\n")
    return str(cfg)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(nproc, *args):
    """The command line of `torchrun --nproc_per_node nproc ARGS` on a free loopback port."""
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
            "--master_addr", "127.0.0.1", "--master_port", str(free_port()), *args]
