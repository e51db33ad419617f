"""Policy loading, completion log-probs in chunks, and generation behind a small interface."""
import inspect

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


def load_policy(path, device="cpu", dtype=None, gradient_checkpointing=False, lora=None, adapters=None):
    """Any AutoModelForCausalLM (local path or hub name) and its tokenizer, left padding for prompts.

    lora: LoraConfig arguments; the model gets fresh trainable adapters. adapters: a directory that a
    LoRA run saved (adapter_model.safetensors, as peft's save_pretrained writes it); its weights
    replace the fresh ones, so a run resumes with the adapters it had.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging

    logging.disable_progress_bar()
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "left"
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise ValueError(f"tokenizer of {path} has neither a pad nor an eos token")
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32).to(device)
    model.generation_config.pad_token_id = tok.pad_token_id
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if lora:
        from peft import LoraConfig, get_peft_model  # the `lora` extra

        model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **lora))
        if adapters:
            import os

            from peft import set_peft_model_state_dict
            from safetensors.torch import load_file

            res = set_peft_model_state_dict(model, load_file(os.path.join(adapters, "adapter_model.safetensors")))
            if res.unexpected_keys:
                raise ValueError(f"{adapters}: adapters do not fit this LoRA config: {res.unexpected_keys[:3]}")
    return model, tok


def _token_logp(head, hidden, targets, temperature, chunk):
    """log softmax(head(h) / T)[target] and the entropy, for hidden [N, T, H], `chunk` positions at a time.

    Each chunk's logits are recomputed in backward (activation checkpointing), so at most
    [N, chunk, vocab] logits exist at once, never [N, T, vocab]. A vocabulary no larger than the
    hidden size (tiny test models) makes logits no bigger than the hidden states: one piece, kept.
    """
    def piece(h, y):
        logp = (head(h).float() / temperature).log_softmax(-1)
        with torch.no_grad():
            entropy = -(logp.exp() * logp).sum(-1)
        return torch.gather(logp, -1, y.unsqueeze(-1)).squeeze(-1), entropy

    if head.weight.shape[0] <= hidden.shape[-1]:  # vocab <= hidden size: logits no bigger than hidden
        return piece(hidden, targets)
    out = []
    for s in range(0, hidden.shape[1], chunk):
        h, y = hidden[:, s:s + chunk], targets[:, s:s + chunk]
        out.append(checkpoint(piece, h, y, use_reentrant=False) if torch.is_grad_enabled() else piece(h, y))
    return torch.cat([o[0] for o in out], 1), torch.cat([o[1] for o in out], 1)


def _cache_arg(model):
    """The KV cache's keyword: transformers 5.2x renamed past_key_values to cache (the old name
    goes in 5.40); older versions only know past_key_values."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def _cache_of(out):
    return out.get("cache", out.get("past_key_values"))


def _positions(mask):
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


class CompletionLogProbs(torch.nn.Module):
    """log pi(o_t | q, o_<t) at temperature T, and the policy's entropy, for every completion
    token; one module so DDP sees one forward.

    A step's N completions come in groups of G per prompt. Three ways to run them, all giving the
    same log-probs:
    - packed (when the packed sequence is at most pack_len tokens): one sequence per group,
      [q; o_1; ...; o_G], with an attention mask that lets each o_i see q and its own earlier
      tokens only, and positions restarting after q. One forward of num_groups * |q| + N * |o|
      tokens instead of the two below (per-call overhead is most of a small model's step on a
      CPU). The trainer sets pack_len to the hidden size: the dense attention over the packed
      length then costs at most about a sixth of the layers' matrix multiplies.
    - two-pass (shared_prompt=True): each prompt once, then its G completions attending to the
      cached prompt keys/values (repeated G times; the repeat's backward sums the G gradients). Same
      tokens, two forwards; needs the KV cache, which gradient checkpointing turns off.
    - plain: one pass over [q; o] for each of the N completions.
    """

    def __init__(self, model, temperature=1.0, chunk=256, shared_prompt=True, pack_len=0):
        super().__init__()
        self.model, self.temperature, self.chunk = model, temperature, chunk
        self.shared_prompt, self.pack_len = shared_prompt, pack_len
        self.past = _cache_arg(model)  # the two-pass path hands the prompt's cache on under this name

    def hidden(self, **kw):
        out = self.model(**kw, output_hidden_states=True, logits_to_keep=1)
        return out.hidden_states[-1], _cache_of(out)

    def forward(self, prompt_ids, prompt_mask, completion_ids, completion_mask):
        (B, P), (N, W) = prompt_ids.shape, completion_ids.shape
        G = N // B
        if G > 1 and P + G * (W - 1) <= self.pack_len:
            h = self._packed(prompt_ids, prompt_mask, completion_ids, G)
        elif G > 1 and self.shared_prompt:
            h_q, cache = self.hidden(input_ids=prompt_ids, attention_mask=prompt_mask,
                                     position_ids=_positions(prompt_mask), use_cache=True)
            cache.batch_repeat_interleave(G)
            mask = torch.cat([prompt_mask.repeat_interleave(G, 0), completion_mask], 1)
            pos = _positions(mask)[:, P:-1]
            h_o, _ = self.hidden(input_ids=completion_ids[:, :-1], attention_mask=mask[:, :-1],
                                 position_ids=pos, use_cache=True, **{self.past: cache})
            h = torch.cat([h_q[:, -1:].repeat_interleave(G, 0), h_o], 1)
        else:
            ids = torch.cat([prompt_ids.repeat_interleave(G, 0), completion_ids], 1)
            mask = torch.cat([prompt_mask.repeat_interleave(G, 0), completion_mask], 1)
            h_all, _ = self.hidden(input_ids=ids, attention_mask=mask, position_ids=_positions(mask),
                                   use_cache=False)
            h = h_all[:, P - 1:-1]
        return _token_logp(self.model.get_output_embeddings(), h, completion_ids, self.temperature, self.chunk)

    def _packed(self, prompt_ids, prompt_mask, completion_ids, G):
        """Hidden states for the completions of each group packed as [q; o_1[:-1]; ...; o_G[:-1]]."""
        (B, P), W, dev = prompt_ids.shape, completion_ids.shape[1] - 1, prompt_ids.device
        seg = torch.cat([torch.full((P,), -1, device=dev), torch.arange(G, device=dev).repeat_interleave(W)])
        i = torch.arange(P + G * W, device=dev)
        see = (i[None] <= i[:, None]) & ((seg[None] == seg[:, None]) | (seg[None] < 0))  # causal, own o_i or q
        keys = torch.cat([prompt_mask.bool(), torch.ones(B, G * W, dtype=torch.bool, device=dev)], 1)
        mask = (see & keys[:, None]) | torch.eye(len(i), dtype=torch.bool, device=dev)  # padding sees itself
        if self.model.config._attn_implementation != "sdpa":  # eager and others add the mask to the scores
            mask = torch.zeros(mask.shape, device=dev).masked_fill(~mask, torch.finfo(torch.float32).min)
        pos = torch.cat([_positions(prompt_mask), prompt_mask.sum(1, keepdim=True) + torch.arange(W, device=dev).repeat(G)], 1)
        ids = torch.cat([prompt_ids, completion_ids[:, :-1].reshape(B, G * W)], 1)
        h, _ = self.hidden(input_ids=ids, attention_mask=mask[:, None], position_ids=pos, use_cache=False)
        return torch.cat([h[:, P - 1:P].repeat_interleave(G, 0), h[:, P:].reshape(B * G, W, -1)], 1)


def packing_works(model, tok):
    """Whether this model takes a 4D attention mask and, packed, gives the plain log-probs (checked
    once at start-up on a small batch; a model that does not falls back to the two-pass path)."""
    dev = model.device
    p = torch.tensor([[tok.pad_token_id, 1, 2], [3, 1, 2]], device=dev) % len(tok)  # the first left-padded
    pm = torch.tensor([[0, 1, 1], [1, 1, 1]], device=dev)
    c = torch.tensor([[1, 2, 3], [2, 3, 1], [3, 3, 2], [1, 1, 1]], device=dev) % len(tok)  # G = 2
    cm = torch.ones_like(c)
    try:
        with torch.no_grad():
            a = CompletionLogProbs(model, shared_prompt=False)(p, pm, c, cm)[0]
            b = CompletionLogProbs(model)._packed(p, pm, c, 2)
            b = _token_logp(model.get_output_embeddings(), b, c, 1.0, 256)[0]
    except Exception:  # noqa: BLE001 - any failure means: do not pack
        return False
    return bool(torch.allclose(a.float(), b.float(), atol=1e-4, rtol=1e-4))


def check_logprobs(model, tok):
    """Fail at start-up, not mid-run, if this architecture's last hidden state times the output
    embedding is not its logits (soft-capping, logit scaling): the chunked head would be wrong."""
    ids = torch.tensor([[tok.pad_token_id] + list(range(min(5, len(tok) - 1)))]).to(model.device)
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True)
        mine = model.get_output_embeddings()(out.hidden_states[-1]).float()
    if not torch.allclose(mine, out.logits.float(), atol=1e-3, rtol=1e-3):
        raise ValueError(f"{type(model).__name__}: logits are not lm_head(last hidden state); "
                         "this architecture post-processes its logits and is not supported")


def completion_mask(completion_ids, eos_id, pad_id):
    """Mask up to and including the first eos; `truncated` marks completions that never ended."""
    is_eos = completion_ids == eos_id
    has_eos = is_eos.any(1)
    first = torch.where(has_eos, is_eos.int().argmax(1), completion_ids.shape[1])
    idx = torch.arange(completion_ids.shape[1], device=completion_ids.device)
    mask = (idx[None, :] <= first[:, None]).long()
    ids = torch.where(mask.bool(), completion_ids, torch.full_like(completion_ids, pad_id))
    return ids, mask, ~has_eos


def _filter(logits, top_k, top_p):
    """Keep the top_k largest logits and the smallest set whose probability reaches top_p."""
    if top_k and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_, idx = logits.sort(dim=-1, descending=True)
        probs = sorted_.softmax(-1)
        drop = probs.cumsum(-1) - probs >= top_p  # tokens after the nucleus is full (as HF)
        logits = logits.masked_fill(drop.scatter(-1, idx, drop), float("-inf"))
    return logits


class CachedSampler:
    """Sampling on the policy's own forward with a KV cache, each prompt prefilled once and its
    cache repeated for its n completions (the default: about twice as fast as `generate` on small
    models, where per-call overhead dominates). Same distribution as `generate`: softmax of
    logits / T after top-k / top-p, stop at eos, pad after it. A completion that has ended leaves
    the batch (and the cache), so the next forwards run only the rows still going.

    lockstep=True (FSDP: every forward is a collective) keeps every row and stops only when every
    rank is done."""

    def __init__(self, model, tok, lockstep=False):
        self.model, self.tok, self.lockstep = model, tok, lockstep

    def update(self, model):
        self.model = model

    @torch.no_grad()
    def generate(self, prompt_ids, prompt_mask, n, max_new_tokens, temperature=1.0, top_p=1.0,
                 top_k=0, greedy=False):
        eos, pad = self.tok.eos_token_id, self.tok.pad_token_id
        out = self.model(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=_positions(prompt_mask),
                         use_cache=True, logits_to_keep=1)
        cache, past = _cache_of(out), _cache_arg(self.model)
        if n > 1:
            cache.batch_repeat_interleave(n)
        mask = prompt_mask.repeat_interleave(n, 0)
        logits = out.logits[:, -1].repeat_interleave(n, 0)
        pos = mask.sum(1, keepdim=True)
        c = torch.full((mask.shape[0], max_new_tokens), pad, dtype=torch.long, device=mask.device)
        rows = torch.arange(mask.shape[0], device=mask.device)  # the rows of c still going
        done = torch.zeros(mask.shape[0], dtype=torch.bool, device=mask.device)
        for t in range(max_new_tokens):
            if greedy:
                nxt = logits.argmax(-1)
            else:
                probs = _filter(logits.float() / temperature, top_k, top_p).softmax(-1)
                nxt = torch.multinomial(probs, 1).squeeze(1)
            nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
            c[rows, t] = nxt
            done = done | (nxt == eos)
            if t == max_new_tokens - 1 or self._all_done(done):
                break
            if not self.lockstep and done.any():  # ended rows leave the batch
                keep = (~done).nonzero().squeeze(1)
                cache.batch_select_indices(keep)
                rows, nxt, mask, pos, done = rows[keep], nxt[keep], mask[keep], pos[keep], done[keep]
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
            logits = self.model(input_ids=nxt[:, None], attention_mask=mask, position_ids=pos + t,
                                use_cache=True, **{past: cache}).logits[:, -1]
        return c

    def _all_done(self, done):
        d = done.all().float()
        if self.lockstep:
            dist.all_reduce(d, op=dist.ReduceOp.MIN)
        return bool(d)


class HFGenerator:
    """Sampling with transformers' `generate`; lockstep=True: `synced_gpus`, for FSDP."""

    def __init__(self, model, tok, lockstep=False):
        self.model, self.tok, self.lockstep = model, tok, lockstep

    def update(self, model):  # the policy is the same object: nothing to copy
        self.model = model

    @torch.no_grad()
    def generate(self, prompt_ids, prompt_mask, n, max_new_tokens, temperature=1.0, top_p=1.0,
                 top_k=0, greedy=False):
        was_training = self.model.training
        self.model.eval()
        kw = dict(do_sample=False) if greedy else dict(do_sample=True, temperature=temperature,
                                                       top_p=top_p, top_k=top_k or None)
        out = self.model.generate(input_ids=prompt_ids, attention_mask=prompt_mask,
                                  num_return_sequences=n, max_new_tokens=max_new_tokens,
                                  min_new_tokens=0, pad_token_id=self.tok.pad_token_id,
                                  eos_token_id=self.tok.eos_token_id, use_cache=True,
                                  synced_gpus=self.lockstep, **kw)
        self.model.train(was_training)
        c = out[:, prompt_ids.shape[1]:]
        if c.shape[1] < max_new_tokens:  # every sequence stopped early
            c = F.pad(c, (0, max_new_tokens - c.shape[1]), value=self.tok.pad_token_id)
        return c


GENERATORS = {"cached": CachedSampler, "hf": HFGenerator}
