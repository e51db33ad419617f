"""Start `python -m verifiers serve` on a free loopback port for a test, and stop it."""
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def start_server(*flags):
    """(process, base URL) of a server answering /health."""
    import httpx
    import reward_server_load as load
    port = load.free_port()
    proc = subprocess.Popen([sys.executable, "-m", "verifiers", "serve", "--port", str(port), *flags],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
        if proc.poll() is not None:
            pytest.fail(f"server exited: {proc.stderr.read()}")
    proc.kill()
    pytest.fail("server did not answer /health")


def stop_server(proc):
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("server did not stop on SIGINT")
