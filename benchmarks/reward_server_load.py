"""Load test of `python -m verifiers serve` over loopback: concurrent clients, OpenRLHF's protocol.

    python benchmarks/reward_server_load.py [--requests 10000] [--clients 32] [--rows 4]
                                            [--workers 2] [--kill-worker]

Starts the server in a subprocess on 127.0.0.1, then `--clients` asyncio clients (httpx) send
`--requests` POST /get_reward requests of `--rows` rows each. Rows mix real Qwen2.5-Math responses
to MATH problems (../shared/data/math/qwen_math_responses_dev.jsonl, answered in-process or from
the verdict cache after their first check) with distinct symbolic pairs that always need a sympy
worker (k/sqrt(2) against k*sqrt(2)/2, half of them wrong). Every reward is compared with the
expected one (the symbolic pairs by construction, the real responses by an in-process check
before the load), so a lost, failed or wrong answer is counted, never hidden.
--kill-worker SIGKILLs one math worker process (pid from /health) when half the requests are
done. Prints a table; the last line is JSON:
{"requests", "rows", "clients", "seconds", "requests_per_s", "p50_ms", "p99_ms", "errors", "wrong", "killed"}.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "math" / "qwen_math_responses_dev.jsonl"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(*flags, stderr=None) -> tuple[subprocess.Popen, str]:
    """`python -m verifiers serve` on a free loopback port: (process, base URL) once /health
    answers; RuntimeError if it exits or does not answer within 30 s."""
    import httpx
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "verifiers", "serve", "--port", str(port), *flags],
                            cwd=ROOT, stderr=stderr, text=True)
    base = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}: "
                               f"{proc.stderr.read() if proc.stderr else ''}")
    proc.kill()
    raise RuntimeError("the server did not answer /health within 30 s")


def stop_server(proc: subprocess.Popen) -> bool:
    """SIGINT (uvicorn's graceful stop); True if it exited within 20 s, else it is killed."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        return False


def make_rows(n: int) -> list[tuple[str, str, str, float]]:
    """n (query, prompt, label, expected reward) rows; every other row is a fresh symbolic pair."""
    sys.path.insert(0, str(ROOT))
    from verifiers import check
    real = [json.loads(line) for line in DATA.open()] if DATA.exists() else []
    expected = [check(r["response"], r["gold"]).reward for r in real]
    rows = []
    for i in range(n):
        if i % 2 and real:
            r = real[(i // 2) % len(real)]
            rows.append((f"Problem {r['id']}\n" + r["response"], f"Problem {r['id']}\n", r["gold"],
                         expected[(i // 2) % len(real)]))
        else:
            k, right = i + 2, (i // 2) % 2 == 0
            pred = rf"\frac{{{k}\sqrt{{2}}}}{{2}}" if right else rf"\frac{{{k}\sqrt{{3}}}}{{2}}"
            rows.append((f"Q{i}: " + rf"so the answer is $\boxed{{{pred}}}$", f"Q{i}: ",
                         rf"\frac{{{k}}}{{\sqrt{{2}}}}", 1.0 if right else 0.0))
    return rows


async def load(url: str, batches, clients: int, kill_at: int | None, health: str):
    import httpx
    latencies, errors, wrong, killed = [], [], 0, None
    todo = iter(range(len(batches)))
    done = 0

    async def client(http):
        nonlocal done, wrong, killed
        for i in todo:
            rows = batches[i]
            body = {"query": [r[0] for r in rows], "prompts": [r[1] for r in rows], "labels": [r[2] for r in rows]}
            t0 = time.perf_counter()
            try:
                resp = await http.post(url, json=body)
                latencies.append(time.perf_counter() - t0)
                if resp.status_code != 200:
                    errors.append(f"{resp.status_code}: {resp.text[:200]}")
                else:
                    got = resp.json()["rewards"]
                    wrong += sum(g != r[3] for g, r in zip(got, rows)) + abs(len(got) - len(rows))
            except Exception as exc:                  # a lost request
                errors.append(f"request {i} ({done} done): {type(exc).__name__}: {exc!r}")
            done += 1
            if kill_at is not None and done >= kill_at and killed is None:
                killed = -1                           # claimed: the other clients go on
                killed = (await http.get(health)).json()["workers"][0]
                os.kill(killed, signal.SIGKILL)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        return time.perf_counter() - t0, latencies, errors, wrong, killed


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--rows", type=int, default=4, help="rows (responses) per request")
    ap.add_argument("--workers", type=int, default=2, help="server's math worker processes")
    ap.add_argument("--kill-worker", action="store_true", help="SIGKILL a math worker halfway")
    args = ap.parse_args(argv)
    rows = make_rows(args.requests * args.rows)
    batches = [rows[i * args.rows:(i + 1) * args.rows] for i in range(args.requests)]
    try:
        server, base = start_server("--workers", str(args.workers))
    except RuntimeError as exc:
        sys.exit(f"error: {exc}")
    try:
        secs, lat, errors, wrong, killed = asyncio.run(load(
            base + "/get_reward", batches, args.clients, args.requests // 2 if args.kill_worker else None,
            base + "/health"))
    finally:
        stop_server(server)
    lat.sort()
    pct = lambda q: round(1000 * lat[min(len(lat) - 1, int(q * len(lat)))], 1) if lat else None
    out = {"requests": args.requests, "rows": args.requests * args.rows, "clients": args.clients,
           "seconds": round(secs, 2), "requests_per_s": round(args.requests / secs, 1),
           "p50_ms": pct(0.50), "p99_ms": pct(0.99), "errors": len(errors), "wrong": wrong,
           "killed": killed}
    print(f"| requests | rows/request | clients | seconds | req/s | p50 ms | p99 ms | errors | wrong | worker killed |")
    print(f"|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {args.requests} | {args.rows} | {args.clients} | {out['seconds']} | {out['requests_per_s']} | "
          f"{out['p50_ms']} | {out['p99_ms']} | {len(errors)} | {wrong} | {'yes' if killed else 'no'} |")
    for e in errors[:5]:
        print("error:", e, file=sys.stderr)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
