"""rlvr's verifiers: math-answer checking and reward functions for RL with verifiable rewards.

Note: this is the `verifiers` package of the `rlvr` distribution, unrelated to the PyPI
distribution named `verifiers`. `import verifiers` never imports torch or transformers, nor
sympy: symbolic checks run in worker processes.
"""
from .extract import extract_answer
from .mathcheck import DEFAULT_TIMEOUT, Verdict, answers_equal, check, math_reward, score_batch, shutdown_pool
from .rewards import compose, compose_terms, format_reward, language_consistency, length_penalty, overlong_penalty

__all__ = [
    "DEFAULT_TIMEOUT", "Verdict", "answers_equal", "check", "math_reward", "score_batch", "shutdown_pool",
    "extract_answer", "compose", "compose_terms", "format_reward", "language_consistency", "length_penalty",
    "overlong_penalty",
]
