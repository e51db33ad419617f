"""Speed of the Docker backend: pool start, trivial programs/s, HumanEval canonical solutions,
against a fresh `docker run --rm` per program.

    python benchmarks/sandbox_bench.py [--image rlvr-sandbox] [--size 2] [--n 200] [--skip-humaneval]
"""
import argparse
import json
import subprocess
import sys
import warnings
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sandbox.docker_backend import DockerBackend, container_config, docker_client
from sandbox.local import LocalBackend
from sandbox.types import PASSED, AssertTests, Job, Limits

HUMANEVAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "code" / "humaneval" / "HumanEval.jsonl"
LIMITS = Limits(wall_s=10, cpu_s=10, memory_mb=512)


def rate(backend, jobs, threads):
    t0 = time.monotonic()
    if threads == 1:
        results = [backend.run(j, LIMITS) for j in jobs]
    else:
        with ThreadPoolExecutor(threads) as ex:
            results = list(ex.map(lambda j: backend.run(j, LIMITS), jobs))
    dt = time.monotonic() - t0
    bad = sum(r.status != PASSED for r in results)
    return len(jobs) / dt, dt, bad


def fresh_docker_run(image, n, threads):
    client = docker_client()
    cfg = container_config()   # the same hardening, one container per program
    for k in ("detach", "command", "auto_remove", "log_config"):   # output comes back by the log
        cfg.pop(k)

    def one(i):
        out = client.containers.run(image, ["python3", "-I", "-S", "-c", f"print({i} * 2)"], remove=True, **cfg)
        return out.strip() == str(i * 2).encode()
    t0 = time.monotonic()
    with ThreadPoolExecutor(threads) as ex:
        ok = sum(ex.map(one, range(n)))
    dt = time.monotonic() - t0
    return n / dt, dt, n - ok


def bare_subprocess(n):
    """The floor: a bare `python3 -I -S -c` per program on the host, no isolation at all."""
    t0 = time.monotonic()
    bad = sum(subprocess.run([sys.executable, "-I", "-S", "-c", f"print({i} * 2)"], capture_output=True,
                             text=True).stdout.strip() != str(i * 2) for i in range(n))
    dt = time.monotonic() - t0
    return n / dt, dt, bad


def humaneval_jobs():
    probs = [json.loads(line) for line in HUMANEVAL.open()]
    return [Job(code=p["prompt"] + p["canonical_solution"], asserts=AssertTests(p["test"], p["entry_point"]))
            for p in probs]


def main():
    warnings.simplefilter("ignore")          # the local backend's "weaker than Docker" notice
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", default="rlvr-sandbox")
    ap.add_argument("--size", type=int, default=2)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--skip-humaneval", action="store_true")
    args = ap.parse_args()
    rows = []
    t0 = time.monotonic()
    with DockerBackend(image=args.image, size=args.size) as b:
        rows.append(("pool start", f"{args.size} containers", f"{time.monotonic() - t0:.2f} s", ""))
        trivial = [Job(code=f"print({i} * 2)", stdin="") for i in range(args.n)]
        for threads in (1, 2, 4):
            r, dt, bad = rate(b, trivial, threads)
            rows.append(("trivial python, warm pool", f"{threads} thread(s)", f"{r:.0f} programs/s",
                         f"{args.n} in {dt:.2f} s, {bad} not passed"))
        if not args.skip_humaneval and HUMANEVAL.exists():
            jobs = humaneval_jobs()
            for threads in (1, 4):
                r, dt, bad = rate(b, jobs, threads)
                rows.append(("HumanEval canonical", f"{threads} thread(s)", f"{dt:.1f} s total",
                             f"{len(jobs)} problems, {bad} not passed, {r:.0f}/s"))
        rows.append(("stats", "", json.dumps(b.stats), ""))
    with LocalBackend(size=args.size) as lb:
        trivial = [Job(code=f"print({i} * 2)", stdin="") for i in range(args.n)]
        for threads in (1, 2):
            r, dt, bad = rate(lb, trivial, threads)
            rows.append(("trivial python, local backend", f"{threads} thread(s)", f"{r:.0f} programs/s",
                         f"{args.n} in {dt:.2f} s, {bad} not passed"))
        if not args.skip_humaneval and HUMANEVAL.exists():
            r, dt, bad = rate(lb, humaneval_jobs(), 2)
            rows.append(("HumanEval canonical, local backend", "2 threads", f"{dt:.1f} s total",
                         f"164 problems, {bad} not passed, {r:.0f}/s"))
    r, dt, bad = bare_subprocess(min(args.n, 100))
    rows.append(("bare host subprocess (no isolation)", "1 thread", f"{r:.0f} programs/s",
                 f"{min(args.n, 100)} in {dt:.2f} s, {bad} wrong"))
    for threads in (1, 2):
        r, dt, bad = fresh_docker_run(args.image, 20, threads)
        rows.append(("fresh docker run --rm", f"{threads} thread(s)", f"{r:.1f} programs/s",
                     f"20 in {dt:.1f} s, {bad} wrong"))
    print("| what | how | result | notes |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
