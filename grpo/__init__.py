"""A lean GRPO / Dr. GRPO / DAPO trainer on torch + transformers.

    from grpo import Config, train
    train(Config(model="path/or/name", data="train.jsonl", loss="dr_grpo"), [my_reward])

A reward function is f(prompts, completions, **dataset_columns) -> list[float | None] (TRL's shape).
"""
from .config import Config
from .trainer import train

__all__ = ["Config", "train"]
