"""The GRPO family as pure functions on tensors: advantages, token weights, the clipped loss, KL.

Every loss here is written as sum_t w_t * l_t over all completion tokens of a step, with the
weights w_t fixed from the whole step's masks before the first micro-batch. That one form covers
the three aggregations and makes gradient accumulation and data parallelism exact: a micro-batch
contributes sum(w * l) over its own tokens, whatever the split.
"""
import torch

LOSSES = ("grpo", "dr_grpo", "dapo")
SCALES = ("group", "batch", "none")


def advantages(rewards, group_size, scale="group", eps=1e-4):
    """Group-relative advantages for rewards laid out group after group, shape [num_groups * G].

    scale="group": (r - mean_G) / (std_G + eps)  (DeepSeekMath, Shao et al. 2024)
    scale="none":  r - mean_G                    (Dr. GRPO, Liu et al. 2025)
    scale="batch": (r - mean_G) / (std_batch + eps)  (std over the whole batch, as in REINFORCE++)
    std is the unbiased sample std, as in DeepSeekMath's reference code and TRL.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    r = rewards.reshape(-1, group_size)
    a = r - r.mean(dim=1, keepdim=True)
    if scale == "group":
        a = a / (r.std(dim=1, keepdim=True) + eps)
    elif scale == "batch":
        a = a / (rewards.std() + eps)
    return a.reshape(-1)


def token_weights(mask, loss="grpo", max_len=None, num_seqs=None, num_tokens=None):
    """Weights w [N, T] such that the step's loss is sum(w * per_token_loss).

    grpo:    (1/N) sum_i (1/|o_i|) sum_t l_it        sequence-mean of token-means (DeepSeekMath)
    dr_grpo: (1/(N * L)) sum_i sum_t l_it           L = max completion length (Dr. GRPO)
    dapo:    (1 / sum_i |o_i|) sum_i sum_t l_it      token-mean over the whole batch (DAPO)
    N counts completions with at least one unmasked token; num_seqs / num_tokens override the
    counts taken from `mask`, so a rank can weight its share by the totals over all ranks.
    """
    mask = mask.float()
    lens = mask.sum(dim=1, keepdim=True)
    n = num_seqs if num_seqs is not None else int((lens > 0).sum())
    n = max(n, 1)
    if loss == "grpo":
        return mask / lens.clamp(min=1) / n
    if loss == "dr_grpo":
        if not max_len:
            raise ValueError("dr_grpo needs max_len (the maximum completion length)")
        return mask / (n * max_len)
    if loss == "dapo":
        t = num_tokens if num_tokens is not None else float(mask.sum())
        return mask / max(t, 1.0)
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


def kl_k3(logp, ref_logp):
    """Per-token KL(pi || ref) estimate k3 = exp(ref - logp) - (ref - logp) - 1 (Schulman 2020)."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1


def policy_loss(logp, old_logp, adv, eps_low=0.2, eps_high=0.2, ref_logp=None, beta=0.0):
    """Per-token clipped surrogate (PPO, Schulman et al. 2017; clip-higher from DAPO) plus beta * KL.

    l_t = -min(rho_t A, clip(rho_t, 1 - eps_low, 1 + eps_high) A) + beta * KL_t,
    rho_t = pi(o_t) / pi_old(o_t). logp, old_logp: [N, T]; adv: [N]. Returns (l [N, T], clipped [N, T]).
    """
    ratio = torch.exp(logp - old_logp)
    a = adv.unsqueeze(1)
    unclipped = ratio * a
    clipped_obj = torch.clamp(ratio, 1 - eps_low, 1 + eps_high) * a
    loss = -torch.min(unclipped, clipped_obj)
    if beta and ref_logp is not None:
        loss = loss + beta * kl_k3(logp, ref_logp)
    was_clipped = (clipped_obj < unclipped).float()
    return loss, was_clipped
