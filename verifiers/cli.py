"""`python -m verifiers math IN.jsonl -o OUT.jsonl [--workers N] [--timeout S] [--fallback]`

Each input line is a JSON object with `response` and `gold`; each output line is that object plus
`reward`, `correct`, `pred` and `reason`. A malformed line is reported on stderr with its line
number, written out with reward 0 and `reason: "malformed: ..."`, and the run goes on. A summary
(count, mean reward, checks per second, reasons) goes to stderr.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from .mathcheck import DEFAULT_TIMEOUT, Verdict, check, get_pool

CHUNK = 2048   # lines read, scored and written at a time


def _score_line(lineno: int, line: str, timeout: float, fallback: bool, pool) -> tuple[dict, str | None]:
    """(output record, error message or None) for one input line."""
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as exc:
        return {"line": lineno, "reward": 0.0, "correct": False, "pred": None,
                "reason": f"malformed: not JSON ({exc.msg})"}, f"not JSON ({exc.msg})"
    if not isinstance(rec, dict):
        return {"line": lineno, "reward": 0.0, "correct": False, "pred": None,
                "reason": "malformed: not a JSON object"}, "not a JSON object"
    missing = [k for k in ("response", "gold") if k not in rec]
    problem = f"missing {', '.join(missing)}" if missing else None
    if problem is None and not isinstance(rec["response"], str):
        problem = f"response is {type(rec['response']).__name__}, not a string"
    if problem is None and not isinstance(rec["gold"], (str, int, float)) or isinstance(rec.get("gold"), bool):
        problem = problem or f"gold is {type(rec['gold']).__name__}, not a string or number"
    if problem:
        return {**rec, "reward": 0.0, "correct": False, "pred": None, "reason": f"malformed: {problem}"}, problem
    v: Verdict = check(rec["response"], rec["gold"], timeout=timeout, fallback=fallback, pool=pool)
    return {**rec, "reward": v.reward, "correct": v.correct, "pred": v.pred, "reason": v.reason}, None


def run_math(args) -> int:
    if args.workers < 1:
        sys.exit(f"error: --workers must be >= 1, got {args.workers}")
    if args.timeout <= 0:
        sys.exit(f"error: --timeout must be positive, got {args.timeout}")
    try:
        src = sys.stdin if args.input == "-" else open(args.input, encoding="utf-8")
    except OSError as exc:
        sys.exit(f"error: cannot read {args.input}: {exc.strerror}")
    try:
        dst = sys.stdout if args.output in (None, "-") else open(args.output, "w", encoding="utf-8")
    except OSError as exc:
        sys.exit(f"error: cannot write {args.output}: {exc.strerror}")
    pool = get_pool(args.workers)
    n = bad = 0
    total = 0.0
    reasons = collections.Counter()
    start = time.perf_counter()
    with src, ThreadPoolExecutor(max_workers=args.workers) as ex:
        lines = enumerate(src, 1)
        while True:
            chunk = [(i, line) for i, line in (next(lines, (None, None)) for _ in range(CHUNK)) if i is not None]
            work = [(i, line) for i, line in chunk if line.strip()]
            if not work:
                if not chunk:
                    break
                continue
            results = ex.map(lambda il: _score_line(il[0], il[1], args.timeout, args.fallback, pool), work)
            for (i, _), (rec, err) in zip(work, results):
                if err:
                    bad += 1
                    print(f"{args.input}:{i}: malformed line: {err}; scored 0", file=sys.stderr)
                n += 1
                total += rec["reward"]
                reasons[rec["reason"].split(":")[0]] += 1
                dst.write(json.dumps(rec, ensure_ascii=False) + "\n")
    if dst is not sys.stdout:
        dst.close()
    secs = time.perf_counter() - start
    summary = {"count": n, "mean_reward": round(total / n, 4) if n else 0.0, "malformed": bad,
               "checks_per_s": round(n / secs, 1) if secs > 0 else None, "seconds": round(secs, 2),
               "reasons": dict(reasons.most_common())}
    print(json.dumps(summary), file=sys.stderr)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m verifiers", description="rlvr verifiers")
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("math", help="score math responses against gold answers (JSONL in, JSONL out)")
    m.add_argument("input", help="JSONL file with `response` and `gold` per line ('-' for stdin)")
    m.add_argument("-o", "--output", help="output JSONL (default: stdout)")
    m.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="checker processes (default: cores)")
    m.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per check (default: %(default)s)")
    m.add_argument("--fallback", action="store_true",
                   help="answer unmarked responses by their last math span or number")
    args = ap.parse_args(argv)
    if args.cmd == "math":
        return run_math(args)
    return 2
