"""The GRPO loop: sample G completions per prompt, score them, group-relative advantages, clipped
policy-gradient steps. One process or many under torchrun (DDP, or FSDP2 with `fsdp`); each rank
owns whole groups."""
import contextlib
import copy
import json
import math
import os
import shutil
import time

import torch
import torch.distributed as dist

from . import algo
from .config import Config
from .data import encode_prompts, load_rows
from .model import GENERATORS, CompletionLogProbs, check_logprobs, completion_mask, load_policy, packing_works
from .rewards import check_columns, reward_name, score


# ---------------------------------------------------------------- distributed helpers

def setup_dist(device="auto"):
    """(rank, world, device) from torchrun's environment; gloo on CPU, NCCL on GPU."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    rank, local = int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0))
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device is cuda but torch sees no CUDA device")
    cuda = torch.cuda.is_available() and device != "cpu"
    device = torch.device(f"cuda:{local}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return rank, world, device


def all_sum(x, world):
    """Sum a float or a tensor of floats over ranks (a no-op in one process)."""
    t = torch.as_tensor(x, dtype=torch.float64).clone()
    if world > 1:
        dist.all_reduce(t)
    return t if t.dim() else float(t)


def shard(model, device="cpu"):
    """FSDP2 over all ranks: each decoder layer (the classes in the model's _no_split_modules) is one
    unit, the root holds the rest (embeddings, final norm, head). A model on the CPU moves to `device`
    one unit at a time, as shards. The root's parameters stay gathered after its
    forward (FSDP2's default for the root) until the backward; that is what lets CompletionLogProbs
    apply the head outside the model's forward. Every forward is then a collective: all ranks must
    call it equally often (the samplers' `lockstep`)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(torch.device(device).type, (dist.get_world_size(),))
    names = set(getattr(model, "_no_split_modules", None) or ())
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        raise ValueError(f"fsdp: {type(model).__name__} names no decoder layer classes (_no_split_modules)")
    for m in layers:
        fully_shard(m, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def make_generator(cfg, model, tok, rank, bf16):
    """The sampler behind the generator interface; vllm gets an engine of its own in this process,
    which starts from the policy's weights as they are now (a resumed checkpoint, LoRA folded in)."""
    if cfg.generator != "vllm":
        return GENERATORS[cfg.generator](model, tok, lockstep=cfg.fsdp)
    from .vllm_generator import VLLMGenerator

    longest = cfg.max_prompt_len + cfg.max_new_tokens
    limit = getattr(model.config, "max_position_embeddings", None) or longest
    return VLLMGenerator(model, tok, cfg.model, seed=cfg.seed + rank, dtype="bfloat16" if bf16 else "float32",
                         max_model_len=min(limit, longest), gpu_memory=cfg.vllm_memory)


# ---------------------------------------------------------------- rollouts

class Prompts:
    """An endless, seeded stream of dataset rows: a fresh permutation every epoch, a cursor to resume."""

    def __init__(self, rows, seed, cursor=0):
        self.rows, self.seed, self.cursor = rows, seed, cursor
        self._epoch, self._perm = None, None

    def take(self, n):
        out = []
        for _ in range(n):
            epoch, i = divmod(self.cursor, len(self.rows))
            if epoch != self._epoch:  # one permutation per epoch, derived from (seed, epoch) alone
                g = torch.Generator().manual_seed(self.seed + epoch)
                self._epoch, self._perm = epoch, torch.randperm(len(self.rows), generator=g).tolist()
            out.append(self.rows[self._perm[i]])
            self.cursor += 1
        return out


def generate(gen, tok, rows, cfg, device, n, greedy=False):
    """Completions for `rows`, n per row (rows repeated group after group), decoded and masked."""
    p_ids, p_mask = encode_prompts(rows, tok, cfg.prompt_column, cfg.max_prompt_len, device)
    c_ids = gen.generate(p_ids, p_mask, n, cfg.max_new_tokens, cfg.temperature, cfg.top_p, cfg.top_k, greedy)
    c_ids, c_mask, truncated = completion_mask(c_ids, tok.eos_token_id, tok.pad_token_id)
    texts = tok.batch_decode(c_ids, skip_special_tokens=True)
    return c_ids, c_mask, truncated, texts


def reward_inputs(rows, texts, n, column):
    """TRL's convention: prompts and dataset columns repeated per completion; a chat prompt gets
    its completion as [{"role": "assistant", "content": ...}]."""
    rep = [r for r in rows for _ in range(n)]
    prompts = [r[column] for r in rep]
    chat = not isinstance(prompts[0], str)
    completions = [[{"role": "assistant", "content": t}] for t in texts] if chat else list(texts)
    cols = {k: [r.get(k) for r in rep] for k in rows[0] if k != column}
    return prompts, completions, cols


def rollout(gen, tok, stream, funcs, weights, cfg, rank, world, device):
    """One step's groups for this rank. With dynamic sampling (DAPO), groups whose rewards are all
    equal are dropped and more prompts sampled, up to max_sampling_rounds; a batch still short
    after that is filled with dropped groups (zero advantage, so zero gradient). Also returns the
    seconds spent generating and scoring."""
    G, need = cfg.group_size, cfg.batch_size // cfg.group_size // world
    kept, dropped, rounds = [], [], 0
    times = dict(time_generate=0.0, time_score=0.0)
    while True:
        rows = stream.take(need * world)[rank * need:(rank + 1) * need]
        rounds += 1
        if len(kept) < need or cfg.fsdp:  # under FSDP every rank generates in every round (lockstep)
            t0 = time.perf_counter()
            c_ids, c_mask, trunc, texts = generate(gen, tok, rows, cfg, device, G)
            t1 = time.perf_counter()
            prompts, completions, cols = reward_inputs(rows, texts, G, cfg.prompt_column)
            ids = [row[:int(m.sum())] for row, m in zip(c_ids.tolist(), c_mask)]  # as TRL: up to eos
            table, total = score(funcs, weights, prompts, completions, ids, cols)
            times["time_generate"] += t1 - t0
            times["time_score"] += time.perf_counter() - t1
            for g, row in enumerate(rows):
                s = slice(g * G, (g + 1) * G)
                group = dict(row=row, c_ids=c_ids[s], c_mask=c_mask[s], trunc=trunc[s], texts=texts[s],
                             table=table[s], total=total[s])
                equal = bool((total[s] == total[s][0]).all())
                (dropped if cfg.dynamic_sampling and equal else kept).append(group)
        short = 0 if len(kept) >= need else 1
        if not cfg.dynamic_sampling or rounds >= cfg.max_sampling_rounds or all_sum(short, world) == 0:
            break
    n_kept = min(len(kept), need)
    groups = (kept + dropped)[:need]
    return groups, n_kept, rounds, times


def collate(groups, tok, cfg, device):
    rows = [g["row"] for g in groups]
    p_ids, p_mask = encode_prompts(rows, tok, cfg.prompt_column, cfg.max_prompt_len, device)
    cat = lambda k: torch.cat([g[k] for g in groups])
    c_ids, c_mask = cat("c_ids"), cat("c_mask")
    width = max(int(c_mask.sum(1).max()), 1)  # drop columns that are padding in every completion
    return dict(p_ids=p_ids, p_mask=p_mask, c_ids=c_ids[:, :width], c_mask=c_mask[:, :width], trunc=cat("trunc"),
                table=cat("table"), total=cat("total"))


# ---------------------------------------------------------------- evaluation

@torch.no_grad()
def evaluate(gen, tok, rows, funcs, cfg, rank, world, device, chunk=128):
    """Greedy pass@1 and sampled mean@k over the held-out rows, split over ranks. A completion is
    correct when the first reward function gives it full marks (>= 1). Under FSDP every rank runs
    as many chunks as the others: a rank one row short runs a padding row, not counted."""
    mine = rows[rank::world]
    n_mine = len(mine)
    if cfg.fsdp:
        mine += rows[:-(-len(rows) // world) - n_mine]
    sums = torch.zeros(3)
    for s in range(0, len(mine), chunk):
        part = mine[s:s + chunk]
        real = max(0, min(len(part), n_mine - s))
        for j, (n, greedy) in enumerate([(1, True), (cfg.eval_k, False)]):
            _, _, _, texts = generate(gen, tok, part, cfg, device, n, greedy)
            prompts, completions, cols = reward_inputs(part, texts, n, cfg.prompt_column)
            table, _ = score(funcs[:1], [1.0], prompts, completions, [[]] * len(texts), cols)
            sums[j] += float((table[:, 0] >= 1).float().reshape(len(part), n)[:real].sum()) / n
    sums[2] = n_mine
    a, b, n = all_sum(sums, world).tolist()
    return {"pass@1": a / n, f"mean@{cfg.eval_k}": b / n}


# ---------------------------------------------------------------- checkpoints

def _param_names(model, opt):
    """The optimizer's parameters by name, in the order opt.state_dict() numbers them."""
    name = {p: n for n, p in model.named_parameters()}
    return [name[p] for g in opt.param_groups for p in g["params"]]


def opt_state(model, opt, fsdp):
    """opt.state_dict(); under FSDP gathered from the shards into the same format (states keyed by
    parameter number, full tensors), on rank 0 only (a collective: every rank calls it)."""
    if not fsdp:
        return opt.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    sd = get_optimizer_state_dict(model, opt, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    index = {n: i for i, n in enumerate(_param_names(model, opt))}
    return dict(state={index[n]: v for n, v in sd["state"].items()},
                param_groups=[{**g, "params": [index[n] for n in g["params"]]} for g in sd["param_groups"]]) if sd else {}


def load_opt_state(model, opt, sd, fsdp):
    """The inverse of opt_state: every rank reads the full state and keeps its shard."""
    if not fsdp:
        return opt.load_state_dict(sd)
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    names = _param_names(model, opt)
    sd = dict(state={names[i]: v for i, v in sd["state"].items()},
              param_groups=[{**g, "params": [names[i] for i in g["params"]]} for g in sd["param_groups"]])
    set_optimizer_state_dict(model, opt, sd, options=StateDictOptions(full_state_dict=True))


def save_checkpoint(cfg, step, model, tok, opt, sched, stream, rank, world):
    """checkpoint-N/: the model as save_pretrained writes it (a LoRA run: the adapters only, see
    `train`), the tokenizer, trainer_state.pt (optimizer, scheduler, step, data cursor) and each
    rank's RNG state. The same files with or without FSDP (rank 0 writes the gathered weights)."""
    path = os.path.join(cfg.output_dir, f"checkpoint-{step}")
    tmp = path + ".tmp"
    weights = None
    if cfg.fsdp:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        weights = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        tied = {n for n, _ in model.named_parameters(remove_duplicate=False)} - {n for n, _ in model.named_parameters()}
        weights = {k: v for k, v in weights.items() if k not in tied}  # as save_pretrained drops tied copies
    state = dict(step=step, opt=opt_state(model, opt, cfg.fsdp), sched=sched.state_dict(), cursor=stream.cursor)
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        model.save_pretrained(tmp, state_dict=weights)
        tok.save_pretrained(tmp)
        torch.save(state, os.path.join(tmp, "trainer_state.pt"))
    if world > 1:
        dist.barrier()
    rng = dict(cpu=torch.get_rng_state(), cuda=torch.cuda.get_rng_state() if torch.cuda.is_available() else None)
    torch.save(rng, os.path.join(tmp, f"rng-{rank}.pt"))
    if world > 1:
        dist.barrier()
    if rank == 0:
        shutil.rmtree(path, ignore_errors=True)
        os.rename(tmp, path)  # a checkpoint exists only once complete
    if world > 1:
        dist.barrier()


def latest_checkpoint(out_dir):
    steps = [int(d.split("-")[1]) for d in os.listdir(out_dir) if d.startswith("checkpoint-")
             and not d.endswith(".tmp")] if os.path.isdir(out_dir) else []
    return os.path.join(out_dir, f"checkpoint-{max(steps)}") if steps else None


# ---------------------------------------------------------------- the loop

def pack_length(cfg, model, tok):
    """CompletionLogProbs' pack_len: the hidden size, if this model packs correctly (packing_works).
    Under FSDP every forward is a collective, so all ranks must take the same path in every step:
    there groups are packed always (the longest possible one fits) or never."""
    hidden = model.get_output_embeddings().weight.shape[1]
    longest = cfg.max_prompt_len + cfg.group_size * (cfg.max_new_tokens - 1)
    return hidden if cfg.shared_prompt and (longest <= hidden or not cfg.fsdp) and packing_works(model, tok) else 0


def lr_lambda(cfg):
    def f(step):
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return {"constant": 1.0, "linear": 1.0 - t, "cosine": 0.5 * (1 + math.cos(math.pi * t))}[cfg.lr_schedule]
    return f


def _preflight(funcs, weights, rows, cfg):
    """Call every reward function once on two rows with empty completions: a wrong return shape
    is reported before the model is loaded."""
    prompts, completions, cols = reward_inputs(rows[:2], [""] * 2, 1, cfg.prompt_column)
    try:
        score(funcs, weights, prompts, completions, [[]] * 2, cols)
    except ValueError as e:
        if "no reward function scored" not in str(e):
            raise


def train(config: Config, reward_funcs, rows=None, eval_rows=None):
    """Train config.model with GRPO on config.data (or `rows`); returns the last step's metrics.

    Each checkpoint-N/ (and the last one is the final model) loads with from_pretrained. A LoRA run
    saves its adapters only, unmerged (peft's save_pretrained: adapter_model.safetensors and
    adapter_config.json, whose base_model_name_or_path is config.model): load them with
    peft.AutoPeftModelForCausalLM.from_pretrained(checkpoint), and .merge_and_unload() for a plain
    model. `resume` works the same with and without LoRA and FSDP."""
    funcs = list(reward_funcs) if isinstance(reward_funcs, (list, tuple)) else [reward_funcs]
    owned = not dist.is_initialized()  # a process group we start, we also end
    rank, world, device = setup_dist(config.device)
    cfg = config.resolved()
    cfg.validate(world)
    weights = [float(w) for w in cfg.reward_weights] or [1.0] * len(funcs)
    if len(weights) != len(funcs):
        raise ValueError(f"{len(weights)} reward_weights for {len(funcs)} reward functions")
    rows = rows if rows is not None else load_rows(cfg.data, cfg.prompt_column)
    if cfg.eval_every and eval_rows is None:
        if not cfg.eval_data:
            raise ValueError("eval_every is set but eval_data is empty")
        eval_rows = load_rows(cfg.eval_data, cfg.prompt_column, cfg.eval_size)
    check_columns(funcs, set(rows[0]) - {cfg.prompt_column})
    _preflight(funcs, weights, rows, cfg)

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed + rank)
    ckpt = latest_checkpoint(cfg.output_dir) if cfg.resume else None
    lora = dict(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules=cfg.lora_targets) if cfg.lora_r else None
    at = torch.device("cpu") if cfg.fsdp else device  # FSDP: to the device shard by shard (see shard)
    if lora:  # the checkpoint holds the adapters: the base model, then its adapters
        model, tok = load_policy(cfg.model, at, None, cfg.gradient_checkpointing, lora, adapters=ckpt)
    else:
        model, tok = load_policy(ckpt or cfg.model, at, None, cfg.gradient_checkpointing)
    check_logprobs(model, tok)
    pack_len = pack_length(cfg, model, tok)
    bf16 = cfg.bf16 in (True, "true") or (cfg.bf16 == "auto" and device.type == "cuda")
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    ref = None
    if cfg.beta:
        ref = model if lora else copy.deepcopy(model).eval().requires_grad_(False)
    if cfg.fsdp:
        shard(model, device)
        if ref is not None:
            shard(ref, device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.adam_betas), weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg))
    logp_of = CompletionLogProbs(model, cfg.temperature, cfg.logprob_chunk,
                                 cfg.shared_prompt and not cfg.gradient_checkpointing, pack_len)
    if world > 1 and not cfg.fsdp:
        logp_of = torch.nn.parallel.DistributedDataParallel(logp_of, device_ids=[device.index] if device.type == "cuda" else None)
    gen = make_generator(cfg, model, tok, rank, bf16)
    stream, start = Prompts(rows, cfg.seed), 0
    if ckpt:
        st = torch.load(os.path.join(ckpt, "trainer_state.pt"), weights_only=True)
        load_opt_state(model, opt, st["opt"], cfg.fsdp)
        sched.load_state_dict(st["sched"])
        stream.cursor, start = st["cursor"], st["step"]
        rng = torch.load(os.path.join(ckpt, f"rng-{rank}.pt"), weights_only=True)
        torch.set_rng_state(rng["cpu"])
        if rng["cuda"] is not None:
            torch.cuda.set_rng_state(rng["cuda"])

    log = _Logger(cfg, rank, start)
    if cfg.eval_every and start == 0:
        log.write(dict(step=0, **{"eval/" + k: v for k, v in
                                  evaluate(gen, tok, eval_rows, funcs, cfg, rank, world, device).items()}))
    bar = _progress(cfg, rank, start)
    metrics = {}
    for step in range(start + 1, cfg.steps + 1):
        t0 = time.perf_counter()
        model.eval()
        with torch.no_grad(), autocast():
            groups, n_kept, rounds, times = rollout(gen, tok, stream, funcs, weights, cfg, rank, world, device)
        b = collate(groups, tok, cfg, device)
        t1 = time.perf_counter()
        model.train()
        metrics = train_step(cfg, b, logp_of, model, ref, opt, sched, autocast, world)
        t2 = time.perf_counter()
        gen.update(model)  # vllm: copy the new weights into the engine (the others share the model)
        t3 = time.perf_counter()
        metrics.update(_rollout_metrics(b, funcs, n_kept, rounds, cfg, world))
        metrics.update(step=step, time_rollout=t1 - t0, **times, time_train=t2 - t1,
                       tokens_per_s=metrics["completion_tokens"] / (t3 - t0))
        if cfg.generator == "vllm":
            metrics["time_sync"] = t3 - t2
        if cfg.eval_every and (step % cfg.eval_every == 0 or step == cfg.steps):
            ev = evaluate(gen, tok, eval_rows, funcs, cfg, rank, world, device)
            metrics.update({"eval/" + k: v for k, v in ev.items()})
        log.write(metrics, groups[:cfg.log_samples] if cfg.log_samples else ())
        bar.update(1)
        bar.set_postfix(reward=f"{metrics['reward']:.3f}", refresh=False)
        if cfg.save_every and step % cfg.save_every == 0 or step == cfg.steps:
            save_checkpoint(cfg, step, model, tok, opt, sched, stream, rank, world)
    bar.close()
    if rank == 0 and cfg.plot:
        from .plot import plot_metrics

        plot_metrics(log.path, os.path.join(cfg.output_dir, "metrics.png"))
    if world > 1:
        dist.barrier()
    if hasattr(gen, "close"):
        gen.close()  # vllm: its engine shuts down, and takes torch.distributed's process group with it
    if world > 1 and owned and dist.is_initialized():
        dist.destroy_process_group()  # leaving gloo's threads to die at interpreter exit can abort the process
    return metrics


def train_step(cfg, b, logp_of, model, ref, opt, sched, autocast, world):
    """mu optimizer steps on one generation batch; returns the step's training metrics."""
    G, N = cfg.group_size, b["c_ids"].shape[0]
    mb = cfg.micro_batch_size or N
    mask = b["c_mask"] * (~b["trunc"]).unsqueeze(1) if cfg.mask_truncated else b["c_mask"]
    adv = algo.advantages(b["total"], G, "none" if cfg.scale_rewards == "batch" else cfg.scale_rewards)
    if cfg.scale_rewards == "batch":  # std over the batch of all ranks
        s, s2, n = all_sum(torch.stack([b["total"].sum(), (b["total"] ** 2).sum(), torch.tensor(float(N))]), world).tolist()
        adv = adv / (math.sqrt(max(s2 - s * s / n, 0.0) / max(n - 1, 1)) + 1e-4)
    adv = adv.to(mask.device)
    n_seqs, n_toks = all_sum(torch.tensor([float((mask.sum(1) > 0).sum()), float(mask.sum())]), world).tolist()
    w = algo.token_weights(mask, cfg.loss, cfg.max_new_tokens, int(n_seqs), n_toks)
    chunks = [(slice(i // G, (i + mb) // G), slice(i, i + mb)) for i in range(0, N, mb)]

    def logps(net, grad):
        with torch.set_grad_enabled(grad), autocast():
            return [net(b["p_ids"][g], b["p_mask"][g], b["c_ids"][c], b["c_mask"][c]) for g, c in chunks]

    old = logps(logp_of, False) if cfg.mu > 1 else None
    ref_lp = None
    if ref is not None:
        inner = getattr(logp_of, "module", logp_of)
        ctx = ref.disable_adapter() if ref is model else contextlib.nullcontext()
        with ctx:
            ref_lp = logps(CompletionLogProbs(ref, inner.temperature, inner.chunk, inner.shared_prompt, inner.pack_len),
                            False)
    tm = mask.float() / max(n_toks, 1.0)  # token mean over the step, for the metrics
    sums = torch.zeros(4, dtype=torch.float64)  # loss, then token means of clipped, kl, entropy
    for it in range(cfg.mu):
        for k, (g, c) in enumerate(chunks):
            sync = k == len(chunks) - 1 or not hasattr(logp_of, "no_sync")  # FSDP: reduce-scatter each micro-batch
            with (contextlib.nullcontext() if sync else logp_of.no_sync()):
                with autocast():
                    lp, ent = logp_of(b["p_ids"][g], b["p_mask"][g], b["c_ids"][c], b["c_mask"][c])
                old_lp = old[k][0] if old else lp.detach()
                rl = ref_lp[k][0] if ref_lp else None
                l, clipped = algo.policy_loss(lp, old_lp, adv[c], cfg.eps_low, cfg.eps_high, rl, cfg.beta)
                loss = (w[c] * l).sum()
                (loss * world).backward()  # DDP and FSDP average over ranks; the weights divide by the global count
            if it == 0:
                kl = algo.kl_k3(lp.detach(), rl).mul(tm[c]).sum() if rl is not None else torch.tensor(0.0)
                sums += torch.stack([loss.detach(), (clipped * tm[c]).sum(), kl, (ent * tm[c]).sum()]).double().cpu()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        gnorm = gnorm.full_tensor() if hasattr(gnorm, "full_tensor") else gnorm  # FSDP: a DTensor
        opt.step()
        opt.zero_grad(set_to_none=True)
    lr = sched.get_last_lr()[0]
    sched.step()
    loss, clip, kl, ent = all_sum(sums, world).tolist()
    return dict(loss=loss, clip_frac=clip, kl=kl, entropy=ent, grad_norm=float(gnorm), lr=lr)


def _rollout_metrics(b, funcs, n_kept, rounds, cfg, world):
    t = b["table"]
    has = ~torch.isnan(t)
    vals = [t.nan_to_num().sum(0), has.sum(0).double(), b["total"].sum().reshape(1),
            (t[:, 0] >= 1).sum().reshape(1), b["c_mask"].sum().reshape(1), b["trunc"].sum().reshape(1),
            torch.tensor([float(len(b["total"])), float(n_kept * cfg.group_size)])]
    v = all_sum(torch.cat([x.double().reshape(-1) for x in vals]), world).tolist()
    F = len(funcs)
    per, cnt, (tot, acc, toks, trunc, n, kept) = v[:F], v[F:2 * F], v[2 * F:]
    m = {f"reward/{reward_name(f)}": per[j] / cnt[j] if cnt[j] else float("nan") for j, f in enumerate(funcs)}
    m.update(reward=tot / n, accuracy=acc / n, completion_len=toks / n, truncated_frac=trunc / n,
             completion_tokens=toks)
    if cfg.dynamic_sampling:
        m.update(kept_frac=kept / n, sampling_rounds=rounds)
    return m


class _Logger:
    """metrics.jsonl (one line per step, resumed runs drop lines past their checkpoint) and
    samples.jsonl, written by rank 0."""

    def __init__(self, cfg, rank, start):
        self.rank = rank
        self.path = os.path.join(cfg.output_dir, "metrics.jsonl")
        self.samples = os.path.join(cfg.output_dir, "samples.jsonl")
        if rank:
            return
        os.makedirs(cfg.output_dir, exist_ok=True)
        for p in (self.path, self.samples):
            keep = []
            if start and os.path.exists(p):
                keep = [l for l in open(p) if json.loads(l)["step"] <= start]
            with open(p, "w") as f:
                f.writelines(keep)

    def write(self, metrics, groups=()):
        if self.rank:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(metrics) + "\n")
        with open(self.samples, "a") as f:
            for g in groups:
                f.write(json.dumps(dict(step=metrics["step"], row=g["row"], completion=g["texts"][0],
                                        reward=float(g["total"][0]))) + "\n")


def _progress(cfg, rank, start):
    from tqdm.auto import tqdm

    return tqdm(total=cfg.steps, initial=start, disable=rank != 0 or not cfg.progress, desc="grpo", unit="step")
