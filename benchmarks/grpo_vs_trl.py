#!/usr/bin/env python
"""Training speed of our GRPO trainer (`grpo`, reported as "rlvr") against TRL's GRPOTrainer on the
same model, data, reward, group size, batch, generation length and optimizer.

    python benchmarks/grpo_vs_trl.py                        # tiny ~1M-param Llama on CPU, 10 + 200 steps
    python benchmarks/grpo_vs_trl.py --steps 40 --warmup 5 --threads 1   # steadier on a busy CPU
    python benchmarks/grpo_vs_trl.py --threads 2 --rounds 5   # rlvr, trl, rlvr, ...: median of 5 runs each
    python benchmarks/grpo_vs_trl.py --device cuda --model /path/to/Qwen2.5-0.5B --max-new-tokens 64
    python benchmarks/grpo_vs_trl.py --device cuda --size 0.5b --max-new-tokens 256   # no weights to download
    .venv-vllm/bin/python benchmarks/grpo_vs_trl.py --vllm   # both sample with a colocated vLLM engine

Each trainer runs in its own fresh subprocess (this script with --run rlvr|trl), one after the other,
so peak RSS (ru_maxrss of the child: imports, model, optimizer, everything) is per trainer and the
timings do not disturb each other; with --rounds R they alternate R times and each trainer's median
run (by steps/s) is reported, with the ratio of each round. On CUDA each child also reports its peak GPU memory
(torch.cuda.max_memory_allocated, as peak_gpu_mb). Both children set the same torch thread count before building
anything. The model is freshly built by grpo.tiny.save_tiny(seed=0) into a temp dir and given the
demo's supervised cold start for --sft-steps (300) steps, so that it answers with numbers as GRPO
models do in the demo (a random model writes junk that sends every check to sympy, and the reward,
the same on both sides, would be most of the step), unless --model is given; the rows are grpo.demo.arithmetic(0)'s training rows
(plain-string prompts such as "07+45=", no chat template); the reward is grpo.demo.correct.

Timing: W warm-up steps, then N timed steps; the time is the wall clock between the end of step W and
the end of step W+N (so everything a trainer does per step counts: generation, reward, loss,
optimizer, its own logging). TRL: a TrainerCallback records perf_counter at on_step_end. Ours has no
step hook, so the child wraps grpo.trainer._Logger.write (called once at the end of every step)
to record perf_counter; as a cross-check it also reports sum(time_rollout + time_train (+ time_sync)) from
metrics.jsonl ("inner_s"). Completion tokens (eos included, padding not) in the timed steps: ours
from metrics.jsonl "completion_tokens"; TRL by a wrapper of the reward function that sums the lengths
of its `completion_ids` (unpadded, up to and including eos). tokens/s = tokens / timed seconds.
On a shared CPU, multi-threaded timings swing widely while another process competes for the cores
(torch's worker threads get descheduled); --threads 1 is much steadier there.

Settings made equal: G=8, 128 completions per optimizer step (16 prompts), max 5 new tokens,
sampling temperature 1, top_p 1, top_k off, no min_p / repetition penalty; loss "dapo" (group-std
scaled advantages, eps 1e-4) or "dr_grpo" (scale_rewards none) on both; beta 0 (no reference model),
one optimizer step per generation batch (mu / num_iterations 1), clip eps 0.2 both sides, no
truncation masking; torch AdamW (non-fused; lr 1e-5, betas (0.9, 0.99), eps 1e-8, weight decay 0),
constant lr, no warmup, max_grad_norm 1; fp32 weights, no gradient checkpointing, whole batch in
one forward/backward; seed 0.

Differences that remain (not removable from the outside):
- Generation: ours samples with its prefix-shared KV-cache sampler (generator "cached", our default:
  each prompt prefilled once, per-step overhead of `generate` avoided); TRL calls `generate`.
- Our training forward shares each prompt among its G completions: a group is packed into one
  sequence [q; o_1; ...; o_G] with an attention mask that lets each completion see only the prompt
  and itself (grpo.model.CompletionLogProbs; on by default, since the packed length, 6 + 8 * 4,
  is below the hidden size); TRL runs the full [prompt; completion] for each of the 128 sequences.
  Our log-probs use a chunked, checkpointed output head plus an entropy pass; TRL uses its fused
  lm-head path (which also returns entropy).
- Our sampler drops a completion from the batch once it has ended; `generate` keeps computing it.
- Prompt length: TRL 1.16 has no max_prompt_length (prompts are never cut); ours raises on a prompt
  longer than max_prompt_len (16). The arithmetic prompts are 6 tokens, so neither acts.
  TRL tokenizes with add_special_tokens=True, ours with False; the char tokenizer (and Qwen2.5) adds
  no BOS, so the prompt ids are identical.
- End of a completion: TRL stops on the tokenizer's eos and on every eos id in the model's
  generation_config; ours on the tokenizer's eos only (one and the same token for the tiny model).
- Random streams differ (prompt order: our seeded permutation vs TRL's RepeatSampler; sampling RNG),
  so the completions and their lengths differ a little; tokens/s accounts for the lengths.
- Per-step bookkeeping differs: ours appends one metrics.jsonl line per step (no samples, no plot,
  no progress bar); TRL logs every step (logging_steps=1) into its in-memory log history, its
  console printer removed. Ours saves a checkpoint after the last step: outside the timed window.
- --vllm: both sample with a vLLM engine in the trainer's process (ours generator "vllm", TRL
  use_vllm with vllm_mode "colocate"), each given --vllm-memory of the GPU (on CPU, of RAM); both
  copy the new weights into it after every optimizer step. Needs vLLM and TRL in one environment
  (.venv-vllm plus `pip install trl`); the default comparison above uses neither.
- --device cuda: bf16 autocast on both (ours bf16="true", TRL bf16=True, fp32 master weights on
  both); ours also autocasts generation, TRL generates in the weights' dtype (fp32). The CUDA path
  is UNTESTED here (written on a CPU-only machine).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


# model shapes built offline by grpo.tiny.save_tiny (random weights): "0.5b" is a Llama of about 0.44B
# parameters with a 32k vocabulary, for timing a GPU where no weights can be downloaded
SIZES = {"tiny": {}, "0.5b": dict(extra_tokens=32000 - 19, hidden=1024, layers=24, heads=16, max_len=2048)}


def scale(a):
    return "none" if a.loss == "dr_grpo" else "group"


def run_rlvr(a, rows, out):
    import grpo.trainer as T
    from grpo import Config, train
    from grpo.demo import correct

    ends, write = [], T._Logger.write

    def timed_write(self, metrics, groups=()):  # the end of every step
        write(self, metrics, groups)
        ends.append(time.perf_counter())

    T._Logger.write = timed_write
    cuda = a.device == "cuda"
    cfg = Config(model=a.model, data="(arithmetic rows)", output_dir=out, seed=0, loss=a.loss,
                 scale_rewards=scale(a), group_size=a.group_size, batch_size=a.batch_size, micro_batch_size=0,
                 mu=1, eps_low=0.2, eps_high=0.2, beta=0.0, max_prompt_len=16, max_new_tokens=a.max_new_tokens,
                 temperature=1.0, top_p=1.0, top_k=0, steps=a.warmup + a.steps, lr=a.lr, lr_schedule="constant",
                 warmup_steps=0, weight_decay=0.0, adam_betas=(0.9, 0.99), max_grad_norm=1.0,
                 bf16="true" if cuda else "false", gradient_checkpointing=False, threads=a.threads,
                 log_samples=0, plot=False, progress=False, device=a.device, generator="vllm" if a.vllm else "cached",
                 vllm_memory=a.vllm_memory)
    train(cfg, [correct], rows=rows)
    m = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))][a.warmup:a.warmup + a.steps]
    tokens = sum(r["completion_tokens"] for r in m)
    inner = sum(r["time_rollout"] + r["time_train"] + r.get("time_sync", 0.0) for r in m)
    return ends, tokens, {"inner_s": round(inner, 3)}


def run_trl(a, rows, out):
    import datasets
    from transformers import AutoTokenizer, PrinterCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from grpo.demo import correct

    ends, tokens = [], []

    class StepEnd(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            ends.append(time.perf_counter())

    def correct_counted(prompts, completions, completion_ids, **kw):  # called once per step
        tokens.append(sum(len(c) for c in completion_ids))
        return correct(prompts, completions, **kw)

    cuda = a.device == "cuda"
    args = GRPOConfig(output_dir=out, seed=0, max_steps=a.warmup + a.steps, per_device_train_batch_size=a.batch_size,
                      gradient_accumulation_steps=1, num_generations=a.group_size,
                      max_completion_length=a.max_new_tokens, temperature=1.0, top_p=1.0, top_k=0, min_p=None,
                      repetition_penalty=1.0, loss_type=a.loss, scale_rewards=scale(a), beta=0.0,
                      num_iterations=1, epsilon=0.2, epsilon_high=0.2, mask_truncated_completions=False,
                      learning_rate=a.lr, optim="adamw_torch", adam_beta1=0.9, adam_beta2=0.99, adam_epsilon=1e-8,
                      weight_decay=0.0, lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=1.0,
                      bf16=cuda, use_cpu=not cuda, gradient_checkpointing=False, use_vllm=a.vllm,
                      vllm_mode="colocate", vllm_gpu_memory_utilization=a.vllm_memory,
                      model_init_kwargs={"dtype": "float32"}, report_to="none", logging_steps=1,
                      save_strategy="no", disable_tqdm=True, log_completions=False, dataloader_num_workers=0)
    tok = AutoTokenizer.from_pretrained(a.model, padding_side="left", truncation_side="left")
    trainer = GRPOTrainer(model=a.model, reward_funcs=[correct_counted], args=args, processing_class=tok,
                          train_dataset=datasets.Dataset.from_list(rows), callbacks=[StepEnd()])
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    return ends, sum(tokens[a.warmup:a.warmup + a.steps]), {}


def child(a):
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    from grpo.demo import arithmetic

    rows = arithmetic(0)[0]
    with tempfile.TemporaryDirectory() as out:
        ends, tokens, extra = (run_rlvr if a.run == "rlvr" else run_trl)(a, rows, out)
    if len(ends) != a.warmup + a.steps:
        raise RuntimeError(f"{a.run}: recorded {len(ends)} step ends, expected {a.warmup + a.steps}")
    sec = ends[-1] - ends[a.warmup - 1]
    res = dict(steps=a.steps, seconds=round(sec, 3), steps_per_s=round(a.steps / sec, 4),
               tokens_per_s=round(tokens / sec, 1), completion_len=round(tokens / (a.steps * a.batch_size), 3),
               peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
               threads=torch.get_num_threads(), **extra)
    if a.device == "cuda":
        res["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    print(json.dumps(res), flush=True)


def parent(a):
    with tempfile.TemporaryDirectory() as tmp:
        if not a.model:
            from transformers.utils import logging

            from grpo.demo import arithmetic, sft
            from grpo.tiny import save_tiny

            logging.disable_progress_bar()
            a.model = os.path.join(tmp, a.size)
            save_tiny(a.model, seed=0, **SIZES[a.size])
            if a.sft_steps and a.size == "tiny":  # a cold-started model answers with numbers, as in a real run
                sft(a.model, arithmetic(0)[0], 0, a.sft_steps)
        env = dict(os.environ, **({"CUDA_VISIBLE_DEVICES": ""} if a.device == "cpu" else {}))
        shared = ["--model", a.model] + ["--vllm"] * a.vllm
        for k in ("device", "steps", "warmup", "threads", "loss", "lr", "group_size", "batch_size",
                  "max_new_tokens", "vllm_memory"):
            shared += ["--" + k.replace("_", "-"), str(getattr(a, k))]
        runs = {"rlvr": [], "trl": []}
        for _ in range(a.rounds):  # rlvr, trl, rlvr, trl, ...: a slow spell of a shared CPU hits both
            for name in runs:  # each in a fresh process
                if runs[name] and "error" in runs[name][-1]:
                    continue
                argv = [sys.executable, os.path.abspath(__file__), "--run", name] + shared
                p = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True)
                if p.returncode:  # reported, and the other trainer still runs
                    print(f"{name} child failed (exit {p.returncode}):\n{p.stderr[-4000:]}", file=sys.stderr)
                    last = [l for l in p.stderr.strip().splitlines() if l.strip()][-1:] or [f"exit {p.returncode}"]
                    runs[name].append(dict(error=last[0][-300:]))
                    continue
                runs[name].append(json.loads(p.stdout.strip().splitlines()[-1]))
    # each trainer's median run by steps/s (with an even count, the slower of the middle two)
    results = {n: r[-1] if "error" in r[-1] else sorted(r, key=lambda x: x["steps_per_s"])[(len(r) - 1) // 2]
               for n, r in runs.items()}
    fresh = (f"grpo.tiny.save_tiny(seed=0) + {a.sft_steps} SFT steps" if a.size == "tiny"
             else f"grpo.tiny.save_tiny(seed=0, **SIZES[{a.size!r}]), random weights")
    config = dict(model=a.model if a.model_given else fresh, rounds=a.rounds,
                  device=a.device,
                  steps=a.steps, warmup=a.warmup, threads=results["rlvr"].get("threads", a.threads), loss=a.loss,
                  scale_rewards=scale(a), group_size=a.group_size, batch_size=a.batch_size,
                  max_new_tokens=a.max_new_tokens, lr=a.lr, generation="vllm" if a.vllm else "hf/cached")
    print(f"{'trainer':8} {'steps/s':>9} {'tokens/s':>10} {'len':>6} {'timed s':>9} {'peak RSS MB':>12} {'threads':>8}")
    for name, r in results.items():
        if "error" in r:
            print(f"{name:8} failed: {r['error']}")
            continue
        print(f"{name:8} {r['steps_per_s']:9.3f} {r['tokens_per_s']:10.1f} {r['completion_len']:6.2f} "
              f"{r['seconds']:9.2f} {r['peak_rss_mb']:12.1f} {r['threads']:8d}")
    ok = all("error" not in r for r in results.values())
    ratio = results["rlvr"]["steps_per_s"] / results["trl"]["steps_per_s"] if ok else None
    rounds = [round(x["steps_per_s"] / y["steps_per_s"], 3) for x, y in zip(runs["rlvr"], runs["trl"])] if ok else []
    if ok:
        print(f"rlvr/trl steps/s: {ratio:.2f}x   (rlvr inner time_rollout+time_train: {results['rlvr']['inner_s']} s)")
        if a.rounds > 1:
            print(f"{a.rounds} rounds, medians above; rlvr/trl in each round: {rounds}")
    print(json.dumps(dict(rlvr=results["rlvr"], trl=results["trl"], config=config,
                          rlvr_over_trl=round(ratio, 3) if ok else None, round_ratios=rounds)))
    if not ok:
        sys.exit(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=200, help="timed steps")
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps first (>= 1)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run rlvr and trl alternately this many times each; report each one's median run")
    ap.add_argument("--threads", type=int, default=0, help="torch threads in both children (0: torch's default)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--model", default="", help="model path/name (default: a fresh tiny Llama)")
    ap.add_argument("--size", choices=tuple(SIZES), default="tiny",
                    help="the fresh model's shape when --model is not given (0.5b: random weights, no SFT)")
    ap.add_argument("--sft-steps", type=int, default=300,
                    help="supervised steps on the fresh tiny model first (as the demo's cold start)")
    ap.add_argument("--loss", choices=("dapo", "dr_grpo"), default="dapo")
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=128, help="completions per optimizer step")
    ap.add_argument("--max-new-tokens", type=int, default=5)
    ap.add_argument("--vllm", action="store_true", help="both trainers sample with a colocated vLLM engine")
    ap.add_argument("--vllm-memory", type=float, default=0.1, help="vLLM's share of GPU memory (CPU: of RAM)")
    ap.add_argument("--run", choices=("rlvr", "trl"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.warmup < 1 or a.steps < 1 or a.rounds < 1:
        ap.error("--warmup, --steps and --rounds must be >= 1")
    a.model_given = bool(a.model)
    if a.device == "cuda" and not a.run:
        import torch

        if not torch.cuda.is_available():
            ap.error("--device cuda, but torch sees no CUDA device")
    child(a) if a.run else parent(a)


if __name__ == "__main__":
    main()
