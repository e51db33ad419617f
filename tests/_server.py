"""Start `python -m verifiers serve` on a free loopback port for a test, and stop it (the load
benchmark's own helpers, failing the test instead of raising)."""
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import reward_server_load as load  # noqa: E402


def start_server(*flags):
    """(process, base URL) of a server answering /health."""
    try:
        return load.start_server(*flags, stderr=subprocess.PIPE)
    except RuntimeError as exc:
        pytest.fail(str(exc))


def stop_server(proc):
    if not load.stop_server(proc):
        pytest.fail("server did not stop on SIGINT")
