#!/usr/bin/env python
"""Benchmark rlvr's math checker against math-verify on the labelled data in shared/data/math.

For each labelled file (and each way of asking) both checkers answer every case, one after
another in the main thread; the script prints accuracy, precision, recall (positive class:
label 1), checks per second and latency percentiles per checker, the throughput ratio
ours / math-verify, a Markdown table, and as its last line a JSON object with every number.

    python benchmarks/math_bench.py                      # all rows of every file
    python benchmarks/math_bench.py --limit 20           # quick run
    python benchmarks/math_bench.py --files hardverify_dev --list-misses
    python benchmarks/math_bench.py --out bench.json

Single process: ours extracts and does its cheap comparisons in the calling thread and its
symbolic step in one pre-warmed worker process (`get_pool(1)`); math-verify runs in the main
thread (its signal-based timeout works only there). Pool start-up, imports and one warm-up
call per checker are not timed. Latency is `time.perf_counter()` around each single call.

math-verify uses the open-r1 configuration: the gold is wrapped in `\\boxed{}` (bare golds
parse to nothing otherwise) and parsed with the default configuration; the response is parsed
with boxed-first LaTeX extraction (no un-anchored LaTeX) plus expression extraction. For the
NeMo-Skills pairs (bare answers on both sides) the predicted answer is wrapped in `\\boxed{}` too.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared/data/math"

# file stem -> how its rows become cases (see _cases)
FILES = ("hardverify_dev", "qwen_math_responses_dev", "mathverify_tests_cases",
         "nemo_skills_math_equal_pairs")


class BenchError(Exception):
    """A problem with the inputs or the environment: reported as one line, no traceback."""


# ---------------------------------------------------------------- cases


@dataclass
class Case:
    id: str
    label: int                      # 1 = the response / answer is correct
    ours: Callable[[], object]      # returns a verifiers.Verdict
    mv_gold: str                    # what math-verify gets (the gold is wrapped in \boxed{} later)
    mv_pred: str
    gold: str                       # for --list-misses
    shown: str                      # the response (or answer) shown by --list-misses


@dataclass
class RowSet:
    name: str
    file: str
    cases: list[Case] = field(default_factory=list)


def _read_jsonl(path: Path, limit: int | None) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise BenchError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if limit is not None and len(rows) >= limit:
                break
    return rows


def _need(row: dict, keys: tuple[str, ...], where: str) -> None:
    missing = [k for k in keys if k not in row]
    if missing:
        raise BenchError(f"{where}: row {row.get('id', '?')!r} lacks field(s) {', '.join(missing)}")


def _cases(stem: str, rows: list[dict], timeout: float, v) -> list[RowSet]:
    """Turn one file's rows into row sets of cases; `v` is the imported verifiers package."""
    check, answers_equal = v.check, v.answers_equal
    if stem == "hardverify_dev":
        boxed, dapo = RowSet("hardverify_dev", stem), RowSet("hardverify_dev (Answer:)", stem)
        for i, d in enumerate(rows):
            _need(d, ("response", "response_dapo", "gold", "label"), stem)
            rid, gold = str(d.get("id", i)), d["gold"]
            for rs, resp in ((boxed, d["response"]), (dapo, d["response_dapo"])):
                rs.cases.append(Case(rid, int(d["label"]),
                                     lambda r=resp, g=gold: check(r, g, timeout=timeout),
                                     gold, resp, gold, resp))
        return [boxed, dapo]
    if stem == "qwen_math_responses_dev":
        rs = RowSet(stem, stem)
        for i, d in enumerate(rows):
            _need(d, ("response", "gold", "label"), stem)
            resp, gold = d["response"], d["gold"]
            rs.cases.append(Case(str(d.get("id", i)), int(d["label"]),
                                 lambda r=resp, g=gold: check(r, g, timeout=timeout),
                                 gold, resp, gold, resp))
        return [rs]
    if stem == "mathverify_tests_cases":
        rs = RowSet(stem, stem)
        for i, d in enumerate(rows):
            _need(d, ("pred", "gold", "expected"), stem)
            pred, gold = d["pred"], d["gold"]
            rs.cases.append(Case(str(d.get("id", i)), int(d["expected"]),
                                 lambda r=pred, g=gold: check(r, g, timeout=timeout, fallback=True),
                                 gold, pred, gold, pred))
        return [rs]
    if stem == "nemo_skills_math_equal_pairs":
        rs = RowSet(stem, stem)
        for i, d in enumerate(rows):
            _need(d, ("a", "b", "expected"), stem)
            rid, a, b, lab = str(d.get("id", i)), d["a"], d["b"], int(d["expected"])
            # answers_equal(pred, gold): b is the prediction, a the gold; then the reverse
            directions = [(rid, b, a)] + ([(rid + " (reversed)", a, b)] if d.get("symmetric") else [])
            for cid, pred, gold in directions:
                rs.cases.append(Case(cid, lab,
                                     lambda p=pred, g=gold: answers_equal(p, g, timeout=timeout),
                                     gold, "\\boxed{" + pred + "}", gold, pred))
        return [rs]
    raise BenchError(f"no harness for {stem!r}")


# ---------------------------------------------------------------- math-verify


class _TimeoutCounter(logging.Handler):
    """Counts math-verify's 'Timeout during ...' warnings (it swallows the exception itself)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record):
        if record.getMessage().startswith("Timeout"):
            self.count += 1


def _math_verify(timeout: float):
    """The open-r1 accuracy check as one function mv(gold, response) -> bool."""
    try:
        from latex2sympy2_extended import NormalizationConfig
        from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
    except ImportError as exc:
        raise BenchError(f"cannot import math-verify ({exc}); install math-verify[antlr4_13_2]") from None
    counter = _TimeoutCounter()
    mv_log = logging.getLogger("math_verify")
    mv_log.addHandler(counter)
    mv_log.setLevel(logging.WARNING)
    mv_log.propagate = False
    # equations=True logs a deprecation warning on every normalisation (it is a no-op in 0.9.0)
    logging.getLogger("latex2sympy2_extended").setLevel(logging.ERROR)

    secs = max(1, math.ceil(timeout))  # signal.alarm takes whole seconds
    answer_config = [
        LatexExtractionConfig(
            normalization_config=NormalizationConfig(nits=False, malformed_operators=False, basic_latex=True,
                                                     equations=True, boxed="all", units=True),
            boxed_match_priority=0, try_extract_without_anchor=False),
        ExprExtractionConfig(),
    ]

    def mv(gold: str, response: str) -> bool:
        try:
            gold_parsed = parse("\\boxed{" + gold + "}", extraction_mode="first_match", parsing_timeout=secs)
            answer_parsed = parse(response, extraction_config=answer_config, extraction_mode="first_match",
                                  parsing_timeout=secs)
            return bool(verify(gold_parsed, answer_parsed, timeout_seconds=secs)) if gold_parsed else False
        except Exception:
            return False

    return mv, counter


# ---------------------------------------------------------------- timing and metrics


def _percentile(sorted_xs: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_xs:
        return float("nan")
    pos = (len(sorted_xs) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


def _metrics(labels: list[int], preds: list[bool], secs: list[float], timeouts: int, ids: list[str]) -> dict:
    tp = sum(1 for y, p in zip(labels, preds) if y == 1 and p)
    fp = sum(1 for y, p in zip(labels, preds) if y != 1 and p)
    fn = sum(1 for y, p in zip(labels, preds) if y == 1 and not p)
    tn = len(labels) - tp - fp - fn
    n, total = len(labels), sum(secs)
    lat = sorted(s * 1000.0 for s in secs)
    return {
        "n": n, "tp": tp, "fp": fp, "tn": tn, "fn": fn,
        "accuracy": (tp + tn) / n if n else None,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "checks_per_s": n / total if total > 0 else None,
        "total_s": total,
        "p50_ms": _percentile(lat, 0.50) if lat else None,
        "p99_ms": _percentile(lat, 0.99) if lat else None,
        "max_ms": lat[-1] if lat else None,
        "slowest_id": ids[max(range(n), key=secs.__getitem__)] if n else None,
        "timeouts": timeouts,
    }


def _run_ours(rs: RowSet, pool) -> tuple[dict, list[dict]]:
    preds, secs, details, timeouts = [], [], [], 0
    for c in rs.cases:
        t0 = time.perf_counter()
        try:
            v = c.ours()
            ok, pred, reason = bool(v.correct), v.pred, v.reason
        except Exception as exc:  # a checker bug must not stop the benchmark: count it as a miss
            ok, pred, reason = False, None, f"exception: {type(exc).__name__}: {exc}"
        secs.append(time.perf_counter() - t0)
        preds.append(ok)
        details.append({"pred": pred, "reason": reason})
        if reason in ("timeout", "crashed"):
            timeouts += reason == "timeout"
            try:
                pool.warmup(1)  # wait for the replacement worker outside the timed region
            except Exception:
                pass
    return _metrics([c.label for c in rs.cases], preds, secs, timeouts, [c.id for c in rs.cases]), [
        dict(d, correct=p) for d, p in zip(details, preds)]


def _run_mv(rs: RowSet, mv, counter) -> tuple[dict, list[bool]]:
    preds, secs = [], []
    before = counter.count
    for c in rs.cases:
        t0 = time.perf_counter()
        ok = mv(c.mv_gold, c.mv_pred)
        secs.append(time.perf_counter() - t0)
        preds.append(ok)
    return _metrics([c.label for c in rs.cases], preds, secs, counter.count - before,
                    [c.id for c in rs.cases]), preds


# ---------------------------------------------------------------- output


def _fmt(x, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _table(results: dict, timeout: float) -> str:
    lines = [
        f"Single process, checks one after another in the main thread (timeout {timeout:g} s). "
        "Ours runs its symbolic step in one worker process (`get_pool(1)`); math-verify (0.9.0, "
        "open-r1 configuration) runs in-process. Positive class: label 1.",
        "",
        "| rows | checker | n | accuracy | precision | recall | checks/s | p50 ms | p99 ms | max ms "
        "| timeouts | ours/mv throughput |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        for key, label in (("ours", "ours"), ("math_verify", "math-verify")):
            m = r[key]
            ratio = _fmt(r["throughput_ratio"], ".2f") + "x" if key == "ours" and r["throughput_ratio"] else ""
            lines.append(
                f"| {name} | {label} | {m['n']} | {_fmt(m['accuracy'], '.3f')} | {_fmt(m['precision'], '.3f')} "
                f"| {_fmt(m['recall'], '.3f')} | {_fmt(m['checks_per_s'], ',.0f')} | {_fmt(m['p50_ms'], '.2f')} "
                f"| {_fmt(m['p99_ms'], '.1f')} | {_fmt(m['max_ms'], '.1f')} | {m['timeouts']} | {ratio} |")
    return "\n".join(lines)


def _one_line(text: str, tail: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= tail else "..." + text[-tail:]


def _print_misses(rs: RowSet, which: str, ours_details: list[dict], mv_preds: list[bool]) -> None:
    for who in (("ours", "mv") if which == "both" else (which,)):
        if who == "ours":
            bad = [(c, d) for c, d in zip(rs.cases, ours_details) if d["correct"] != bool(c.label)]
        else:
            bad = [(c, {"correct": p, "pred": None, "reason": ""}) for c, p in zip(rs.cases, mv_preds)
                   if p != bool(c.label)]
        title = "ours" if who == "ours" else "math-verify"
        print(f"\n### {rs.name}: {len(bad)} disagreement(s) of {title} with the label")
        for c, d in bad:
            kind = "false positive" if d["correct"] else "false negative"
            print(f"- {c.id} [{kind}, label {c.label}] gold={_one_line(c.gold, 80)!r}")
            if who == "ours":
                pred = "None" if d["pred"] is None else repr(_one_line(d["pred"], 80))
                print(f"    pred={pred} reason={d['reason']}")
            print(f"    response tail: {_one_line(c.shown, 160)!r}")


# ---------------------------------------------------------------- main


def _parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA,
                    help=f"directory with the labelled .jsonl files (default: {DEFAULT_DATA})")
    ap.add_argument("--files", nargs="+", metavar="NAME",
                    help=f"subset of files (with or without .jsonl): {', '.join(FILES)}")
    ap.add_argument("--limit", type=int, metavar="N", help="first N rows of each file (quick runs)")
    ap.add_argument("--timeout", type=float, default=5.0, metavar="S",
                    help="per-check timeout in seconds for both checkers (default 5; math-verify "
                         "rounds up to whole seconds)")
    ap.add_argument("--out", type=Path, metavar="FILE.json", help="also write the JSON results here")
    ap.add_argument("--list-misses", nargs="?", const="ours", choices=("ours", "mv", "both"),
                    help="print every disagreement with the label (default: our checker's)")
    args = ap.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        ap.error("--limit must be at least 1")
    if not args.timeout > 0:
        ap.error("--timeout must be positive")
    return args


def _select_files(args) -> list[tuple[str, Path]]:
    data = args.data.expanduser()
    if not data.is_dir():
        raise BenchError(f"data directory not found: {data} (pass --data DIR; expected the "
                         f"labelled files {', '.join(f + '.jsonl' for f in FILES)})")
    if args.files:
        stems = []
        for name in args.files:
            stem = Path(name).name.removesuffix(".jsonl")
            if stem not in FILES:
                raise BenchError(f"unknown file {name!r}; choose from {', '.join(FILES)}")
            if stem not in stems:
                stems.append(stem)
        missing = [s for s in stems if not (data / f"{s}.jsonl").is_file()]
        if missing:
            raise BenchError(f"not found in {data}: {', '.join(m + '.jsonl' for m in missing)}")
        return [(s, data / f"{s}.jsonl") for s in stems]
    found = [(s, data / f"{s}.jsonl") for s in FILES if (data / f"{s}.jsonl").is_file()]
    for s in FILES:
        if not (data / f"{s}.jsonl").is_file():
            print(f"warning: {data / (s + '.jsonl')} not found, skipped", file=sys.stderr)
    if not found:
        raise BenchError(f"none of the labelled files is in {data}")
    return found


def main(argv=None) -> int:
    args = _parse_args(argv)
    t_start = time.perf_counter()
    files = _select_files(args)

    sys.path.insert(0, str(REPO))  # the checkout's verifiers, even without the editable install
    try:
        import verifiers
        from verifiers.mathcheck import get_pool
    except ImportError as exc:
        raise BenchError(f"cannot import rlvr's verifiers package ({exc}); "
                         "run from the repository's virtualenv") from None
    mv, counter = _math_verify(args.timeout)

    rowsets: list[RowSet] = []
    for stem, path in files:
        rowsets += _cases(stem, _read_jsonl(path, args.limit), args.timeout, verifiers)

    # Warm-up (not timed): one worker process, one symbolic check through it; one math-verify call.
    pool = get_pool(1)
    pool.warmup(1)
    verifiers.answers_equal("x^2+2x+1", "(x+1)^2", timeout=max(args.timeout, 30.0))
    verifiers.check("so $\\boxed{\\frac{1}{2}}$", "0.5", timeout=max(args.timeout, 30.0))
    mv("\\frac{1}{2}", "so $\\boxed{0.5}$")
    mv("(x+1)^2", "so $\\boxed{x^2+2x+1}$")

    results = {}
    try:
        for rs in rowsets:
            print(f"[{rs.name}] {len(rs.cases)} cases: ours ...", end="", file=sys.stderr, flush=True)
            ours, details = _run_ours(rs, pool)
            print(f" {ours['total_s']:.1f} s; math-verify ...", end="", file=sys.stderr, flush=True)
            theirs, mv_preds = _run_mv(rs, mv, counter)
            print(f" {theirs['total_s']:.1f} s", file=sys.stderr, flush=True)
            ratio = (ours["checks_per_s"] / theirs["checks_per_s"]
                     if ours["checks_per_s"] and theirs["checks_per_s"] else None)
            results[rs.name] = {"file": rs.file + ".jsonl", "ours": ours, "math_verify": theirs,
                                "throughput_ratio": ratio}
            if args.list_misses:
                _print_misses(rs, args.list_misses, details, mv_preds)
    finally:
        verifiers.shutdown_pool()

    wall = time.perf_counter() - t_start
    import math_verify
    summary = {
        "data": str(args.data.expanduser().resolve()),
        "limit": args.limit,
        "timeout_s": args.timeout,
        "math_verify_version": getattr(math_verify, "__version__", None) or _dist_version("math-verify"),
        "ours_workers": 1,
        "python": sys.version.split()[0],
        "wall_s": round(wall, 2),
        "results": results,
    }
    print()
    print(_table(results, args.timeout))
    print(f"\nwall time: {wall:.1f} s")
    if args.out:
        try:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise BenchError(f"cannot write {args.out}: {exc}") from None
    print(json.dumps(summary, separators=(",", ":")))
    return 0


def _dist_version(name: str):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return None


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"math_bench: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("math_bench: interrupted", file=sys.stderr)
        sys.exit(130)
