"""Shared by the Docker tests: a client or a backend, else skip (fail in CI) with how to get one.

On a user's machine without Docker the Docker tests skip with a message; in CI (CI set, as
.ci/run does) they fail, so a CI run without the engine or the image cannot pass silently.
"""
import os

import pytest

IMAGE = os.environ.get("RLVR_SANDBOX_IMAGE", "rlvr-sandbox")
START = ("start it with `sudo systemctl start docker` or, as root, "
         "`dockerd --bridge=none --iptables=false --ip-forward=false &` (see README)")


def _problem():
    """None when the engine answers and the image exists, else what is missing."""
    from sandbox.docker_backend import DockerUnavailable, docker_client
    from sandbox.image import image_exists
    try:
        client = docker_client(timeout=10)
    except DockerUnavailable as e:
        return None, f"Docker engine not running ({e.reason}): {START}"
    if not image_exists(client, IMAGE):
        return client, f"Docker image {IMAGE} missing: build it with `python -m sandbox image build`"
    return client, None


def skip_module_without_docker():
    """At a test module's top: one skip for the whole module on a machine without Docker. In CI
    nothing is skipped here; each test then fails in its fixture."""
    if not os.environ.get("CI"):
        _, why = _problem()
        if why:
            pytest.skip(why, allow_module_level=True)


def docker_client_or_skip():
    client, why = _problem()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"Docker is required in CI: {why}")
        pytest.skip(why)
    return client


def docker_backend_or_skip(**opts):
    client = docker_client_or_skip()
    from sandbox.docker_backend import DockerBackend
    opts.setdefault("image", IMAGE)
    return DockerBackend(client=client, **opts)
