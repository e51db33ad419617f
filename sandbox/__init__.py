"""Run untrusted, model-written programs and judge them against tests.

    >>> import sandbox
    >>> from sandbox import Job, IOTest
    >>> sandbox.run(Job("print(int(input()) * 2)", io=(IOTest("21\\n", "42\\n"),))).status
    'passed'

Backends: "docker" (warm hardened containers, the safe one) and "local" (subprocesses with
rlimits and, as root, namespaces; weaker, refuses host-unsafe programs). `get_backend()` picks
docker when an engine answers, else local with a warning. Every backend runs the same in-sandbox
runner (see session.py): verdicts come from per-test records the program cannot forge, and the
expected outputs never enter the sandbox.

Importing this package is cheap: docker is imported only when the docker backend is asked for.
"""
from __future__ import annotations

import os
import threading
import warnings

from .types import (COMPILE_ERROR, KILLED, LANGUAGES, MEMORY_LIMIT, OUTPUT_LIMIT, PASSED, RUNTIME_ERROR,
                    SANDBOX_ERROR, STATUSES, TIMEOUT, WRONG_ANSWER, AssertTests, CallTest, IOTest, Job,
                    Limits, RunResult, TestResult)
from .local import HostUnsafeRefused, LocalBackend

__all__ = ["run", "run_code", "get_backend", "close_backends", "docker_available", "LocalBackend",
           "HostUnsafeRefused", "Limits", "IOTest", "CallTest", "AssertTests", "Job", "TestResult",
           "RunResult", "STATUSES", "LANGUAGES", "PASSED", "WRONG_ANSWER", "RUNTIME_ERROR", "TIMEOUT",
           "MEMORY_LIMIT", "OUTPUT_LIMIT", "COMPILE_ERROR", "KILLED", "SANDBOX_ERROR"]

_backends: dict = {}
_lock = threading.Lock()


def docker_available(timeout: float = 2.0) -> bool:
    """True when a Docker engine answers a ping within `timeout` seconds."""
    try:
        import docker
        client = docker.from_env(timeout=max(1, int(timeout)))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def get_backend(name: str | None = None, **opts):
    """The shared backend `name` ("docker" or "local"), created on first use with `opts`
    (DockerBackend / LocalBackend keyword arguments). name=None: $RLVR_SANDBOX_BACKEND, else
    docker when an engine answers within 2 s, else local (with a warning)."""
    name = name or os.environ.get("RLVR_SANDBOX_BACKEND") or None
    if name is None:
        name = "docker" if docker_available() else "local"
        if name == "local":
            warnings.warn("sandbox: no Docker engine answered; using the local backend",
                          RuntimeWarning, stacklevel=2)
    if name not in ("docker", "local"):
        raise ValueError(f"unknown sandbox backend {name!r}: 'docker' or 'local'")
    try:
        key = (name, tuple(sorted(opts.items())))
        hash(key)
    except TypeError:
        key = (name, repr(sorted(opts.items())))
    with _lock:
        backend = _backends.get(key)
        if backend is None or getattr(backend, "_closed", False):
            if name == "docker":
                from .docker_backend import DockerBackend
                backend = DockerBackend(**opts)
            else:
                backend = LocalBackend(**opts)
            _backends[key] = backend
        return backend


def close_backends() -> None:
    """Close every shared backend (also done at exit)."""
    with _lock:
        backends = list(_backends.values())
        _backends.clear()
    for b in backends:
        b.close()


def run(job: Job, limits: Limits | None = None, *, backend=None, unsafe: bool = False) -> RunResult:
    """Judge `job` under `limits` on `backend` (a backend object, a name, or None for the
    default shared one). `unsafe=True` marks a program as unsafe outside a sandbox: the local
    backend refuses it (HostUnsafeRefused)."""
    if backend is None or isinstance(backend, str):
        backend = get_backend(backend)
    return backend.run(job, limits or Limits(), unsafe=unsafe)


def run_code(code: str, language: str = "python", stdin: str | None = None,
             limits: Limits | None = None, *, backend=None, unsafe: bool = False) -> RunResult:
    """A plain run: the program once with `stdin`; status passed means it exited 0 within the
    limits. Its output is in `result.tests[0].stdout` / `.stderr`."""
    return run(Job(code=code, language=language, stdin=stdin or ""), limits, backend=backend,
               unsafe=unsafe)
