"""python -m grpo train CONFIG.yaml [--flag value ...] | python -m grpo demo [...]"""
import argparse
import gc
import importlib
import importlib.util
import sys

from . import config


def _reward_funcs(specs):
    """'module:function' (or 'path/to/file.py:function') -> the callables."""
    funcs = []
    for spec in specs:
        mod, _, name = spec.rpartition(":")
        if not mod or not name:
            raise ValueError(f"reward {spec!r}: expected module:function or file.py:function")
        if mod.endswith(".py"):
            spec_ = importlib.util.spec_from_file_location(f"_reward_{len(funcs)}", mod)
            m = importlib.util.module_from_spec(spec_)
            spec_.loader.exec_module(m)
        else:
            try:
                m = importlib.import_module(mod)
            except ImportError as e:
                raise ValueError(f"reward {spec!r}: cannot import {mod}: {e}") from None
        if not hasattr(m, name):
            raise ValueError(f"reward {spec!r}: {mod} has no {name!r}")
        funcs.append(getattr(m, name))
    return funcs


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m grpo", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train", help="train from a YAML config; flags override the file")
    tr.add_argument("config", nargs="?", help="YAML file of Config fields")
    tr.add_argument("--reward", action="append", default=None,
                    help="reward function as module:function or file.py:function (repeatable); "
                         "the YAML key `rewards:` lists the same")
    config.add_flags(tr)
    de = sub.add_parser("demo", help="tiny model, SFT cold start, then GRPO on arithmetic (CPU, ~10 min)")
    de.add_argument("--out", default="runs/demo")
    de.add_argument("--seed", type=int, default=0)
    de.add_argument("--loss", default="dr_grpo", choices=["grpo", "dr_grpo", "dapo"])
    de.add_argument("--steps", type=int, default=None)
    de.add_argument("--sft-steps", type=int, default=None, help="cold-start steps (default 1600)")
    de.add_argument("--threads", type=int, default=0)
    de.add_argument("--generator", default=None, choices=["cached", "hf", "vllm"], help="sampler (default cached)")
    args = ap.parse_args(argv)

    if args.cmd == "demo":
        from .demo import demo

        kw = {k: v for k, v in dict(steps=args.steps, sft_steps=args.sft_steps, generator=args.generator).items()
              if v is not None}
        demo(out=args.out, seed=args.seed, loss=args.loss, threads=args.threads, **kw)
        return 0

    from .trainer import train

    overrides = {k: v for k, v in vars(args).items() if k not in ("cmd", "config", "reward")}
    try:
        raw = {}
        if args.config:
            import yaml

            with open(args.config) as f:
                raw = yaml.safe_load(f) or {}
            if not isinstance(raw, dict):
                raise ValueError(f"{args.config}: expected a mapping of config keys")
        rewards = args.reward or raw.pop("rewards", None) or []
        rewards = [rewards] if isinstance(rewards, str) else list(rewards)
        raw.pop("rewards", None)
        cfg = config.load(None, {**raw, **{k: v for k, v in overrides.items() if v is not None}})
        if not rewards:
            raise ValueError("no reward function: pass --reward module:function or list them under `rewards:`")
        train(cfg, _reward_funcs(rewards))
        gc.collect()  # FSDP's cyclic state holds gloo work: free it now, not in interpreter teardown
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0

if __name__ == "__main__":
    sys.exit(main())
