"""`python -m verifiers serve`: rlvr's rewards over HTTP (Starlette on uvicorn).

    POST /get_reward   OpenRLHF's remote reward protocol:
                       {"query": [...], "prompts": [...], "labels": [...]}
                       -> {"rewards": [...], "scores": [...], "extra_logs": {"acc": [...], "timeout": [...]}}
    POST /score        rlvr's batch format: {"items": [{"response": str, "label": ..., "task": "math"|"code"}]}
                       -> {"results": [{"score", "acc", "task", "reason", "pred", "tests_passed", "tests_total"}]}
    GET  /health       {"status": "ok", "workers": [pids], "served": n, "failed": n}

A label is a math gold answer or a code label (see `verifiers.tasks`); a query is OpenRLHF's
prompt + response, and the response is what follows the prompt. Every row is scored on its own
thread with its own deadline (math checks run in the pre-warmed worker pool and are killed when
they overrun, code runs in the sandbox under its limits), so a slow or hanging row never holds up
the others. A worker killed mid-check is replaced and the check rerun once. Malformed requests
get a 4xx with {"error": message}; an infrastructure failure (no sandbox) a 503, never a silent 0.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor

from verifiers.adapters import openrlhf_answer, openrlhf_responses
from verifiers.mathcheck import DEFAULT_TIMEOUT, get_pool, shutdown_pool
from verifiers.tasks import CODE_TIMEOUT, TASKS, check_labels, score

MAX_BYTES = 32 << 20          # request body
MAX_ROWS = 8192               # rows per request


class BadRequest(ValueError):
    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


def _list(body: dict, key: str) -> list:
    if key not in body:
        raise BadRequest(f"missing {key!r}")
    v = body[key]
    if not isinstance(v, list):
        raise BadRequest(f"{key!r} must be a list, got {type(v).__name__}")
    return v


def parse_openrlhf(body: dict) -> tuple[list[str], list, list]:
    """(responses, labels, tasks) from OpenRLHF's {"query", "prompts", "labels"}."""
    queries, prompts, labels = (_list(body, k) for k in ("query", "prompts", "labels"))
    try:
        return openrlhf_responses(queries, prompts, labels), labels, [None] * len(labels)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def parse_items(body: dict) -> tuple[list[str], list, list]:
    """(responses, labels, tasks) from {"items": [{"response", "label", "task"?}]}."""
    items = _list(body, "items")
    responses, labels, tasks = [], [], []
    for i, it in enumerate(items):
        if not isinstance(it, dict):
            raise BadRequest(f"items[{i}] must be an object")
        missing = [k for k in ("response", "label") if k not in it]
        if missing:
            raise BadRequest(f"items[{i}] lacks {', '.join(missing)}")
        if not isinstance(it["response"], str):
            raise BadRequest(f"items[{i}].response must be a string")
        if it.get("task") not in (None, *TASKS):
            raise BadRequest(f"items[{i}].task must be one of {', '.join(TASKS)}")
        responses.append(it["response"])
        labels.append(it["label"])
        tasks.append(it.get("task"))
    return responses, labels, tasks


def create_app(*, workers: int = 2, threads: int = 64, timeout: float = DEFAULT_TIMEOUT,
               code_timeout: float = CODE_TIMEOUT, sandbox: str | None = None, partial: bool = False,
               max_bytes: int = MAX_BYTES, max_rows: int = MAX_ROWS):
    """The ASGI app. workers: pre-warmed math checker processes; threads: rows scored at once."""
    from starlette.applications import Starlette
    from starlette.requests import ClientDisconnect
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="score")
    counts = {"served": 0, "failed": 0}
    # a code row gets the sandbox's shared backend of that name, started on the first code row
    score_row = functools.partial(score, timeout=timeout, partial=partial, code_timeout=code_timeout,
                                  backend=sandbox)

    async def read_json(request) -> dict:
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > max_bytes:
            raise BadRequest(f"body of {size} bytes is over the {max_bytes}-byte limit", 413)
        chunks, n = [], 0
        async for chunk in request.stream():
            n += len(chunk)
            if n > max_bytes:
                raise BadRequest(f"body is over the {max_bytes}-byte limit", 413)
            chunks.append(chunk)
        try:
            body = json.loads(b"".join(chunks))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadRequest(f"body is not JSON: {exc}", 400) from None
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object", 400)
        return body

    async def scored(request, parse) -> list[dict]:
        responses, labels, tasks = parse(await read_json(request))
        if len(responses) > max_rows:
            raise BadRequest(f"{len(responses)} rows is over the limit of {max_rows} per request", 413)
        try:
            check_labels(labels, tasks)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        loop = asyncio.get_running_loop()
        futures = [loop.run_in_executor(executor, functools.partial(score_row, r, lab, task=t))
                   for r, lab, t in zip(responses, labels, tasks)]
        try:
            return await asyncio.gather(*futures)
        except ValueError as exc:                     # a label only the scorer could reject
            raise BadRequest(str(exc)) from None

    def endpoint(parse, shape):
        async def handle(request):
            try:
                out = shape(await scored(request, parse))
            except BadRequest as exc:
                counts["failed"] += 1
                return JSONResponse({"error": str(exc)}, status_code=exc.status)
            except ClientDisconnect:
                counts["failed"] += 1
                return JSONResponse({"error": "client disconnected"}, status_code=400)
            except Exception as exc:                  # the sandbox or a worker pool is down
                counts["failed"] += 1
                return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=503)
            counts["served"] += 1
            return JSONResponse(out)
        return handle

    async def health(request):
        return JSONResponse({"status": "ok", "workers": get_pool(workers).pids(), **counts})

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await asyncio.get_running_loop().run_in_executor(None, get_pool, workers)  # pre-warm
        yield
        executor.shutdown(wait=False, cancel_futures=True)
        shutdown_pool()

    return Starlette(routes=[
        Route("/get_reward", endpoint(parse_openrlhf, openrlhf_answer), methods=["POST"]),
        Route("/score", endpoint(parse_items, lambda results: {"results": results}), methods=["POST"]),
        Route("/health", health, methods=["GET"]),
    ], lifespan=lifespan)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m verifiers serve", description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    ap.add_argument("--port", type=int, default=5000, help="port (default: %(default)s)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="pre-warmed math checker processes (default: cores)")
    ap.add_argument("--threads", type=int, default=64, help="rows scored at once (default: %(default)s)")
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per math check")
    ap.add_argument("--code-timeout", type=float, default=CODE_TIMEOUT, help="seconds per test program")
    ap.add_argument("--sandbox", choices=("docker", "local"), default=None,
                    help="sandbox backend for code labels (default: docker when an engine answers)")
    ap.add_argument("--partial", action="store_true", help="code: reward the fraction of tests passed")
    ap.add_argument("--max-bytes", type=int, default=MAX_BYTES, help="request body limit")
    args = ap.parse_args(argv)
    for name in ("workers", "threads", "port", "max_bytes"):
        if getattr(args, name) < (0 if name == "port" else 1):
            sys.exit(f"error: --{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.timeout <= 0 or args.code_timeout <= 0:
        sys.exit("error: timeouts must be positive")
    try:
        import uvicorn
    except ImportError:
        sys.exit("error: the server needs uvicorn and starlette (dependencies of rlvr): pip install uvicorn starlette")
    app = create_app(workers=args.workers, threads=args.threads, timeout=args.timeout,
                     code_timeout=args.code_timeout, sandbox=args.sandbox, partial=args.partial,
                     max_bytes=args.max_bytes)
    # keep-alive well past a trainer's pause between batches: a client that reuses a connection the
    # server has just closed sees a ReadError (a lost request) instead of an answer
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False,
                timeout_keep_alive=300)
    return 0
