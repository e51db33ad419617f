"""One train_step on a fixed batch, in one process or under `torchrun --nproc_per_node 2` (DDP, or
FSDP2 when argv[4] is "fsdp"); rank 0 saves the parameter update (SGD, lr 1, no clipping: minus the
gradient) to argv[1]."""
import contextlib
import gc
import sys

import torch

from grpo import Config
from grpo.model import CompletionLogProbs
from grpo.tiny import build_model, build_tokenizer
from grpo.trainer import setup_dist, shard, train_step


def fixed_batch(tok, groups=4, G=4, C=5):
    g = torch.Generator().manual_seed(1)
    prompts = ["1+2=", "13+4=", "7-9=", "99+99="][:groups]
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    c_ids = torch.randint(2, len(tok), (groups * G, C), generator=g)
    lens = torch.randint(1, C + 1, (groups * G,), generator=g)
    c_mask = (torch.arange(C)[None] < lens[:, None]).long()
    trunc = lens == C
    total = torch.randint(0, 3, (groups * G,), generator=g).float() / 2
    return dict(p_ids=enc.input_ids, p_mask=enc.attention_mask, c_ids=c_ids, c_mask=c_mask, trunc=trunc,
                total=total)


def main(out, loss, scale, mode="ddp"):
    rank, world, device = setup_dist()
    tok = build_tokenizer()
    model = build_model(len(tok), seed=0)
    b = fixed_batch(tok)
    G, n = 4, b["p_ids"].shape[0] // world
    b = {k: (v[rank * n:(rank + 1) * n] if k.startswith("p_") else v[rank * n * G:(rank + 1) * n * G]) for k, v in b.items()}
    cfg = Config(model="-", data="-", loss=loss, scale_rewards=scale, group_size=G, batch_size=16, micro_batch_size=4,
                 max_new_tokens=5, mask_truncated=True, max_grad_norm=1e9, fsdp=mode == "fsdp").resolved()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    if mode == "fsdp":
        shard(model, device)
    logp_of = CompletionLogProbs(model, temperature=0.9, chunk=2)
    if world > 1 and mode == "ddp":
        logp_of = torch.nn.parallel.DistributedDataParallel(logp_of)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    metrics = train_step(cfg, b, logp_of, model, None, opt, sched, contextlib.nullcontext, world)
    after = {n: p.full_tensor() if hasattr(p, "full_tensor") else p.detach() for n, p in model.named_parameters()}
    if rank == 0:
        delta = torch.cat([(after[n] - q).reshape(-1) for n, q in before.items()])
        torch.save(dict(delta=delta, metrics=metrics), out)
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
    gc.collect()  # free FSDP's cyclic state (which holds gloo work) now, not during interpreter teardown
