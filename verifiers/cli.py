"""`python -m verifiers math|code IN.jsonl -o OUT.jsonl [--workers N] ...`, `python -m verifiers serve`

math: each input line has `response` and `gold`; each output line is that object plus `reward`,
`correct`, `pred` and `reason`.
code: each input line has `response` and one of `tests` (assert code or a list of assert lines,
with an optional `entry_point`), `io` (a list of `{input, output}`) or `call` (a list of
`{func, args, expected, method}`); each output line adds `reward`, `passed`, `total`, `status` and
the per-test `verdicts`.
A malformed line is reported on stderr with its line number, written out with reward 0 and
`reason: "malformed: ..."`, and the run goes on. A JSON summary goes to stderr.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from .mathcheck import DEFAULT_TIMEOUT, check, get_pool

CHUNK = 2048   # lines read, scored and written at a time


class Malformed(ValueError):
    pass


def _math_scorer(args):
    pool = get_pool(args.workers)

    def score(rec: dict) -> dict:
        missing = [k for k in ("response", "gold") if k not in rec]
        if missing:
            raise Malformed(f"missing {', '.join(missing)}")
        if not isinstance(rec["response"], str):
            raise Malformed(f"response is {type(rec['response']).__name__}, not a string")
        if isinstance(rec["gold"], bool) or not isinstance(rec["gold"], (str, int, float)):
            raise Malformed(f"gold is {type(rec['gold']).__name__}, not a string or number")
        v = check(rec["response"], rec["gold"], timeout=args.timeout, fallback=args.fallback, pool=pool)
        return {"reward": v.reward, "correct": v.correct, "pred": v.pred, "reason": v.reason}
    return score, {"correct": False, "pred": None}


def _code_scorer(args):
    import sandbox                                   # only the code command needs the sandbox
    from .code import code_reward
    try:
        backend = sandbox.get_backend(args.backend, **({"size": args.workers} if args.workers else {}))
    except Exception as exc:                         # no Docker engine, no image, ...
        sys.exit(f"error: cannot start the {args.backend or 'default'} sandbox backend: {exc}")
    limits = sandbox.Limits(wall_s=args.timeout, cpu_s=args.timeout, memory_mb=args.memory)

    def score(rec: dict) -> dict:
        if not isinstance(rec.get("response"), str):
            raise Malformed("missing response" if "response" not in rec else "response is not a string")
        try:
            v = code_reward(rec["response"], tests=rec.get("tests"), io=rec.get("io"), call=rec.get("call"),
                            language=rec.get("language", "python"), entry_point=rec.get("entry_point"),
                            compare=rec.get("compare", "lines"), partial=args.partial, limits=limits,
                            backend=backend)
        except (ValueError, TypeError) as exc:
            raise Malformed(str(exc)) from None
        return {"reward": v.reward, "passed": v.passed, "total": v.total, "status": v.status,
                "verdicts": v.verdicts, "reason": v.status}
    return score, {"passed": 0, "total": 0, "verdicts": []}


def _score_line(score, blank: dict, lineno: int, line: str) -> tuple[dict, str | None]:
    """(output record, error message or None) for one input line."""
    try:
        rec = json.loads(line)
        if not isinstance(rec, dict):
            raise Malformed("not a JSON object")
        return {**rec, **score(rec)}, None
    except json.JSONDecodeError as exc:
        rec, problem = {"line": lineno}, f"not JSON ({exc.msg})"
    except Malformed as exc:
        rec = rec if isinstance(rec, dict) else {"line": lineno}
        problem = str(exc)
    return {**rec, "reward": 0.0, **blank, "reason": f"malformed: {problem}"}, problem


def run_jsonl(args, make_scorer) -> int:
    if args.workers is not None and args.workers < 1:
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
    score, blank = make_scorer(args)
    n = bad = 0
    total = 0.0
    reasons = collections.Counter()
    start = time.perf_counter()
    with src, ThreadPoolExecutor(max_workers=args.workers or os.cpu_count() or 1) as ex:
        lines = enumerate(src, 1)
        while True:
            chunk = [(i, line) for i, line in (next(lines, (None, None)) for _ in range(CHUNK)) if i is not None]
            work = [(i, line) for i, line in chunk if line.strip()]
            if not chunk:
                break
            for (i, _), (rec, err) in zip(work, ex.map(lambda il: _score_line(score, blank, *il), work)):
                if err:
                    bad += 1
                    print(f"{args.input}:{i}: malformed line: {err}; scored 0", file=sys.stderr)
                n += 1
                total += rec["reward"]
                reasons[str(rec["reason"]).split(":")[0]] += 1
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
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["serve"]:
        from .server import main as serve
        return serve(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m verifiers", description="rlvr verifiers")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("serve", help="serve rewards over HTTP (OpenRLHF's protocol and /score); serve --help")
    m = sub.add_parser("math", help="score math responses against gold answers (JSONL in, JSONL out)")
    c = sub.add_parser("code", help="run code responses against tests in the sandbox (JSONL in, JSONL out)")
    for p in (m, c):
        p.add_argument("input", help="JSONL file ('-' for stdin)")
        p.add_argument("-o", "--output", help="output JSONL (default: stdout)")
    m.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="checker processes (default: cores)")
    m.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per check (default: %(default)s)")
    m.add_argument("--fallback", action="store_true",
                   help="answer unmarked responses by their last math span or number")
    c.add_argument("--backend", choices=("docker", "local"), default=None,
                   help="sandbox backend (default: docker when an engine answers, else local)")
    c.add_argument("--workers", type=int, default=None, help="sandbox slots (default: cores)")
    c.add_argument("--timeout", type=float, default=10.0, help="seconds per test (default: %(default)s)")
    c.add_argument("--memory", type=int, default=512, help="MB per program (default: %(default)s)")
    c.add_argument("--partial", action="store_true", help="reward the fraction of tests passed")
    args = ap.parse_args(argv)
    return run_jsonl(args, _math_scorer if args.cmd == "math" else _code_scorer)
