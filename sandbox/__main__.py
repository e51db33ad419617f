"""Command line: run one program in the sandbox, build or check the image, remove leftovers.

    python -m sandbox run FILE [--language python|cpp] [--stdin FILE] [--timeout S] [--memory MB]
                               [--backend docker|local] [--image NAME]
    python -m sandbox image build [--name NAME] [--offline] [--force] [--mirror URL]
    python -m sandbox image check [NAME]
    python -m sandbox cleanup            # remove containers left by dead runs

`run` prints the program's stdout (its stderr goes to stderr), then a verdict line such as
`verdict: passed (exit 0, 0.03 s)`. Exit status: 0 when the program ran OK, 1 when it did not,
2 when it could not be run at all (missing file, unknown language, no Docker engine).
"""
from __future__ import annotations

import argparse
import os
import sys

EXTENSIONS = {".py": "python", ".cpp": "cpp", ".cc": "cpp", ".cxx": "cpp", ".c++": "cpp"}


class CliError(Exception):
    pass


def _language(path: str, given: str | None) -> str:
    if given:
        return given
    lang = EXTENSIONS.get(os.path.splitext(path)[1].lower())
    if lang is None:
        raise CliError(f"cannot tell the language of {path} from its extension: "
                       f"use --language python|cpp")
    return lang


def _read(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read()
    except FileNotFoundError:
        raise CliError(f"no such {what}: {path}") from None
    except OSError as e:
        raise CliError(f"cannot read {what} {path}: {e.strerror}") from None


def verdict_line(result) -> str:
    t = result.tests[-1] if result.tests else None
    parts = []
    if t is not None and t.exit_code is not None:
        parts.append(f"exit {t.exit_code}")
    parts.append(f"{result.time_s:.2f} s")
    detail = (t.detail if t is not None else "") or ""
    if detail and not detail.startswith("exit code"):
        parts.append(detail.splitlines()[0][:200])
    return f"verdict: {result.status} ({', '.join(parts)})"


def cmd_run(args) -> int:
    import sandbox
    from sandbox.types import PASSED, Job, Limits
    code = _read(args.file, "file")
    language = _language(args.file, args.language)
    stdin = _read(args.stdin, "stdin file") if args.stdin else ""
    limits = Limits(wall_s=args.timeout, cpu_s=args.timeout, memory_mb=args.memory)
    job = Job(code=code, language=language, stdin=stdin)
    if args.backend == "docker":
        from sandbox.docker_backend import DockerBackend
        # the container holds the runner and a compiler besides the program
        backend = DockerBackend(image=args.image, size=1, memory_mb=args.memory + 512)
        try:
            result = sandbox.run(job, limits, backend=backend)
        finally:
            backend.close()
    else:
        result = sandbox.run(job, limits, backend="local")
    if result.compile_output:
        sys.stderr.write(result.compile_output.rstrip("\n") + "\n")
    for t in result.tests:
        sys.stdout.write(t.stdout)
        sys.stderr.write(t.stderr)
    sys.stdout.flush()
    print(verdict_line(result))
    return 0 if result.status == PASSED else 1


def cmd_image(args) -> int:
    from sandbox import image
    if args.action == "build":
        method = "debootstrap" if args.offline else args.method
        image.build(args.name, method=method, force=args.force, mirror=args.mirror)
        return 0
    return 0 if image.check(args.name) else 1


def cmd_cleanup(args) -> int:
    from sandbox.docker_backend import docker_client, remove_stale
    print(f"removed {remove_stale(docker_client())} leftover sandbox container(s)")
    return 0


def parser() -> argparse.ArgumentParser:
    from sandbox.image import DEFAULT_IMAGE, DEFAULT_MIRROR
    p = argparse.ArgumentParser(prog="python -m sandbox", description="rlvr code sandbox")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run one program and print its output and a verdict")
    r.add_argument("file")
    r.add_argument("--language", choices=["python", "cpp"], help="default: from the extension")
    r.add_argument("--stdin", metavar="FILE", help="feed this file on stdin (default: empty)")
    r.add_argument("--timeout", type=float, default=10.0, metavar="S", help="wall and CPU seconds")
    r.add_argument("--memory", type=int, default=512, metavar="MB")
    r.add_argument("--backend", choices=["docker", "local"], default="docker",
                   help="local runs without isolation: only your own code")
    r.add_argument("--image", default=DEFAULT_IMAGE)
    r.set_defaults(func=cmd_run)
    i = sub.add_parser("image", help="build or check the sandbox image")
    isub = i.add_subparsers(dest="action", required=True)
    b = isub.add_parser("build", help="build the default image (skipped when it exists)")
    b.add_argument("--name", default=DEFAULT_IMAGE)
    b.add_argument("--offline", action="store_true", help="debootstrap + docker import (no registry)")
    b.add_argument("--method", choices=["auto", "debootstrap", "dockerfile"], default="auto")
    b.add_argument("--force", action="store_true", help="rebuild even if the image exists")
    b.add_argument("--mirror", default=DEFAULT_MIRROR, help="Debian mirror for debootstrap")
    c = isub.add_parser("check", help="check that python3 and g++ run inside, with no network")
    c.add_argument("name", nargs="?", default=DEFAULT_IMAGE)
    i.set_defaults(func=cmd_image)
    k = sub.add_parser("cleanup", help="remove sandbox containers left by runs that died")
    k.set_defaults(func=cmd_cleanup)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    from sandbox.docker_backend import DockerUnavailable
    from sandbox.image import ImageError
    try:
        return args.func(args)
    except (CliError, DockerUnavailable, ImageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
