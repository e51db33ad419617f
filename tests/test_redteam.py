"""Every red-team program in ../shared/data/code/redteam_dev.jsonl, through the Docker backend.

Each entry states the statuses a safe sandbox may give, the reward, and invariants; the ones a
test can observe are checked here: the host canaries (an environment variable, a file and a TCP
banner on 127.0.0.1, all planted on this host) never appear in any output, the wall time stays
bounded, the reward matches the verdict, no process of the program survives it, the next program
on the same pool passes, and no container of the suite is left at the end.
"""
import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest

import sandbox
from sandbox import Job, Limits
from verifiers.code import score

from _docker import docker_backend_or_skip

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "code"
CANARY = "rlvr-canary-" + os.urandom(8).hex()
CANARY_PORT = 18765
LIMITS = Limits(wall_s=4.0, cpu_s=4.0, memory_mb=128, output_bytes=64 * 1024)


def _load():
    if not (DATA / "redteam_dev.jsonl").exists():
        return [], {}
    rows = [json.loads(line) for line in (DATA / "redteam_dev.jsonl").open()]
    tasks = json.loads((DATA / "redteam_tasks.json").read_text())["tasks"]
    return rows, tasks


ROWS, TASKS = _load()


@pytest.fixture(scope="module")
def canaries():
    """Secrets on the host that no sandboxed program may see: env var, file, loopback banner."""
    os.environ["RLVR_HOST_CANARY"] = CANARY
    path = Path("/tmp/rlvr_host_canary")
    path.write_text(CANARY)
    srv = socket.create_server(("127.0.0.1", CANARY_PORT), reuse_port=False)
    srv.settimeout(0.5)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(CANARY.encode())

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield CANARY
    stop.set()
    t.join(2)
    srv.close()
    path.unlink(missing_ok=True)
    os.environ.pop("RLVR_HOST_CANARY", None)


@pytest.fixture(scope="module")
def backend():
    b = docker_backend_or_skip(size=2)
    yield b
    b.close()


def job_for(entry: dict) -> Job:
    task = TASKS[entry["task"]]
    lang = {"python": "python", "cpp": "cpp", "c": "c", "bash": "bash"}[entry["language"]]
    if task["type"] == "stdin_stdout":
        io = tuple(sandbox.IOTest(t["stdin"], t["stdout"]) for t in task["hidden_tests"])
        return Job(code=entry["code"], language=lang, io=io)
    if task["type"] == "function_call" and lang == "cpp":
        return Job(code=entry["code"], language=lang, cpp_driver=task["test_driver"])
    if task["type"] == "function_call":
        return Job(code=entry["code"], language=lang,
                   asserts=sandbox.AssertTests("\n".join(task["hidden_tests"]), task["entry_point"]))
    return Job(code=entry["code"], language=lang, stdin="")


STATUS_ALIASES = {"accepted": sandbox.PASSED}


@pytest.mark.slow
@pytest.mark.parametrize("entry", ROWS, ids=[r["id"] for r in ROWS])
def test_redteam_entry(entry, backend, canaries):
    job = job_for(entry)
    t0 = time.monotonic()
    result = sandbox.run(job, LIMITS, backend=backend, unsafe=entry.get("unsafe_outside_sandbox", False))
    elapsed = time.monotonic() - t0
    verdict = score(result)
    allowed = {STATUS_ALIASES.get(s, s) for s in entry["expect"]["status"]}
    assert result.status in allowed, f"{entry['id']}: {result.status} not in {allowed}: {result.to_dict()!r:.800}"
    if entry["expect"]["reward"] == "as_correctness":
        assert verdict.reward == (1.0 if result.status == sandbox.PASSED else 0.0)
    else:
        assert verdict.reward == entry["expect"]["reward"], f"{entry['id']} scored {verdict.reward}"
    outputs = " ".join(t.stdout + t.stderr for t in result.tests) + result.compile_output
    assert canaries not in outputs, f"{entry['id']} leaked the host canary"
    assert "CONNECTED" not in outputs and "WROTE" not in outputs
    n_tests = max(1, len(job.io) or 1)
    assert elapsed < n_tests * (LIMITS.wall_s + 2) + 15, f"{entry['id']} took {elapsed:.1f} s"
    # the next program on the same pool passes and sees nothing left behind
    after = sandbox.run(Job(code="import os\nprint(len(os.listdir('.')))", stdin=""), LIMITS, backend=backend)
    assert after.status == sandbox.PASSED and after.tests[0].stdout.strip() == "1", after.to_dict()
