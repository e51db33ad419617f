"""The Docker backend for real: hardening, isolation, recovery, cleanup, CLI, throughput.

Needs a running Docker engine and the sandbox image (`python -m sandbox image build`); without
them these tests skip with a message, or fail when CI is set (see tests/_docker.py).
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sandbox.types import PASSED, SANDBOX_ERROR, AssertTests, IOTest, Job, Limits

from _docker import IMAGE, docker_backend_or_skip, docker_client_or_skip, skip_module_without_docker

skip_module_without_docker()

ROOT = Path(__file__).resolve().parents[1]
HUMANEVAL = ROOT.parent / "shared" / "data" / "code" / "humaneval" / "HumanEval.jsonl"
LIMITS = Limits(wall_s=5.0, cpu_s=5.0, memory_mb=256, output_bytes=64 * 1024)
PIDS = 128


@pytest.fixture(scope="module")
def client():
    return docker_client_or_skip()


@pytest.fixture(scope="module")
def one():
    """One container: what a program leaves behind is seen by the next one."""
    b = docker_backend_or_skip(size=1, pids=PIDS, memory_mb=768)
    yield b
    b.close()


@pytest.fixture(scope="module")
def pool():
    b = docker_backend_or_skip(size=2)
    yield b
    b.close()


def py(code, **kw):
    return Job(code=code, stdin=kw.pop("stdin", ""), **kw)


def run_ok(backend, code, limits=LIMITS):
    r = backend.run(py(code), limits)
    assert r.status == PASSED, r.to_dict()
    return r.tests[0].stdout


def processes(client, backend):
    """Command lines of every process in the backend's containers (`docker top`)."""
    return [p[-1] for cid in backend.container_ids()
            for p in client.api.top(cid)["Processes"]]


def labelled(client, key, value):
    return client.containers.list(all=True, filters={"label": f"{key}={value}"})


def wait_until(cond, within=20.0, step=0.2):
    end = time.monotonic() + within
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


# --- hardening -----------------------------------------------------------------------------------

def test_hardening_flags_applied(client, one):
    for cid in one.container_ids():
        info = client.api.inspect_container(cid)
        host, config = info["HostConfig"], info["Config"]
        assert host["NetworkMode"] == "none"
        assert host["ReadonlyRootfs"] is True
        assert host["CapDrop"] == ["ALL"]
        assert "no-new-privileges" in host["SecurityOpt"]
        assert config["User"] == "65533:65533"      # docker-init and the keep-alive; programs: 65534
        assert host["Init"] is True
        assert host["PidsLimit"] == PIDS
        assert host["Memory"] == host["MemorySwap"] == 768 * 2 ** 20
        assert host["NanoCpus"] > 0
        assert set(host["Tmpfs"]) == {"/work", "/tmp"} and "size=" in host["Tmpfs"]["/work"]
        assert host["LogConfig"]["Type"] == "none"  # nothing a program writes reaches the host's disk
        assert config["Labels"]["rlvr.sandbox"] == "1" and config["Labels"]["rlvr.sandbox.pool"] == one.pool


def test_runs_as_nobody_without_capabilities(one):
    out = run_ok(one, "import os\nprint(os.getuid(), os.getgid())\n"
                      "print([l for l in open('/proc/self/status') if l.startswith(('CapEff', 'NoNewPrivs'))])")
    assert out.startswith("65534 65534")
    assert "CapEff:\\t0000000000000000" in out and "NoNewPrivs:\\t1" in out


def test_program_cannot_touch_the_container_init(one):
    """PID 1 and the keep-alive run as another uid: no signal, no ptrace, no /proc/1/fd."""
    code = """
import ctypes, os, signal
libc = ctypes.CDLL(None, use_errno=True)
for pid in [int(p) for p in os.listdir("/proc") if p.isdigit()]:
    if open(f"/proc/{pid}/status").read().split("Uid:")[1].split()[0] != "65533":
        continue
    print(pid, "ptrace", libc.ptrace(16, pid, 0, 0))        # PTRACE_ATTACH
    try:
        os.kill(pid, signal.SIGKILL)
        print(pid, "KILLED")
    except PermissionError:
        print(pid, "kill refused")
try:
    open("/proc/1/fd/1", "w").write("spam")
    print("WROTE")
except PermissionError:
    print("fd refused")
"""
    out = run_ok(one, code)
    assert "KILLED" not in out and "WROTE" not in out and "ptrace 0" not in out, out
    assert out.count("kill refused") == 2 and out.count("ptrace -1") == 2 and "fd refused" in out, out
    assert run_ok(one, "print('still here')").strip() == "still here"


NETWORK_PROBE = """
import socket
def attempt(what, f):
    try:
        f()
        print(what, "CONNECTED")
    except OSError as e:
        print(what, "failed", type(e).__name__)
def tcp(host, port):
    s = socket.socket(); s.settimeout(2); s.connect((host, port)); s.close()
attempt("host-loopback", lambda: tcp("127.0.0.1", PORT))
attempt("host-ip", lambda: tcp(HOST_IP, PORT))
attempt("public", lambda: tcp("1.1.1.1", 80))
attempt("dns", lambda: socket.getaddrinfo("deb.debian.org", 80))
print("interfaces", [l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:]])
"""


def _host_ip():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.255.255.255", 1))   # UDP: picks the outgoing address, sends nothing
        return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"
    finally:
        s.close()


def test_no_network(one):
    srv = socket.create_server(("0.0.0.0", 0))     # a listener on the host that must stay unreachable
    port = srv.getsockname()[1]
    try:
        code = NETWORK_PROBE.replace("PORT", str(port)).replace("HOST_IP", repr(_host_ip()))
        out = run_ok(one, code, Limits(wall_s=15, cpu_s=5, memory_mb=256))
    finally:
        srv.close()
    assert "CONNECTED" not in out, out
    for what in ("host-loopback", "host-ip", "public", "dns"):
        assert f"{what} failed" in out, out
    assert "interfaces ['lo']" in out


def test_cannot_write_outside_work(one):
    code = """
import os
for path in ["/x", "/etc/x", "/usr/lib/x", "/home/x", "/var/tmp/x", "/root/x", "/proc/sys/kernel/x"]:
    try:
        open(path, "w").write("WROTE")
        print(path, "WROTE")
    except OSError as e:
        print(path, "refused", type(e).__name__)
open("/work/ok", "w").write("fine"); print("/work writable")
open("/tmp/ok", "w").write("fine"); print("/tmp writable")
"""
    out = run_ok(one, code)
    assert "WROTE" not in out and out.count("refused") == 7 and "/work writable" in out, out


# --- containment and recovery --------------------------------------------------------------------

def test_fork_bomb_contained_then_next_passes(client, one):
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    t0 = time.monotonic()
    r = one.run(py(bomb), Limits(wall_s=2, cpu_s=2, memory_mb=256))
    assert r.status != PASSED and time.monotonic() - t0 < 30
    assert run_ok(one, "print('alive')").strip() == "alive"
    assert wait_until(lambda: len(processes(client, one)) < 10, within=10), processes(client, one)


def test_double_forked_sleeper_is_gone_after_the_job(client, one):
    code = """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", "4242"])
    os._exit(0)
time.sleep(0.3)
print("spawned")
"""
    assert run_ok(one, code).strip() == "spawned"
    assert wait_until(lambda: not any("4242" in p for p in processes(client, one)), within=5), \
        processes(client, one)


def test_timeout_enforced_inside_the_container(client, one):
    code = "import subprocess, time\nsubprocess.Popen(['sleep', '4343'])\ntime.sleep(1000)\n"
    t0 = time.monotonic()
    r = one.run(py(code), Limits(wall_s=1.0, cpu_s=1.0, memory_mb=256))
    assert r.status == "timeout", r.to_dict()
    assert time.monotonic() - t0 < 10
    assert wait_until(lambda: not any("4343" in p for p in processes(client, one)), within=5), \
        processes(client, one)


def test_killing_the_runner_is_a_sandbox_error_then_recovers(one):
    before = set(one.container_ids())
    r = one.run(py("import os, signal\nos.kill(-1, signal.SIGKILL)\n"), LIMITS)
    assert r.status == SANDBOX_ERROR, r.to_dict()
    assert run_ok(one, "print('next')").strip() == "next"
    assert not before & set(one.container_ids())      # that container was replaced
    assert one.stats["recycled"] >= 1


MEMORY_BOMB = "a = []\nwhile True:\n    a.append(bytearray(50 * 2**20))\n"


@pytest.mark.slow
def test_stopped_runner_hits_the_host_deadline_then_recovers(one):
    """A program that SIGSTOPs the runner: the host-side deadline of the round trip ends it."""
    t0 = time.monotonic()
    r = one.run(py("import os, signal, time\nos.kill(os.getppid(), signal.SIGSTOP)\ntime.sleep(100)\n"),
                Limits(wall_s=1, cpu_s=1, memory_mb=256))
    assert r.status == SANDBOX_ERROR, r.to_dict()
    assert time.monotonic() - t0 < 40
    assert run_ok(one, "print('recovered')").strip() == "recovered"


def test_memory_bomb_hits_the_program_limit(one):
    r = one.run(py(MEMORY_BOMB), Limits(wall_s=10, cpu_s=10, memory_mb=256))
    assert r.status == "memory_limit", r.to_dict()
    assert run_ok(one, "print(sum(range(10)))").strip() == "45"


def test_memory_bomb_hits_the_container_limit(one):
    # a per-program limit above the container's (768 MB): the container's cgroup stops it
    r = one.run(py(MEMORY_BOMB), Limits(wall_s=10, cpu_s=10, memory_mb=8192))
    assert r.status in ("memory_limit", "runtime_error", "killed", SANDBOX_ERROR), r.to_dict()
    assert run_ok(one, "print(sum(range(10)))").strip() == "45"


def test_output_is_capped_and_flagged(one):
    r = one.run(py("import sys\nsys.stdout.write('x' * 10**7)\n"), Limits(output_bytes=4096))
    assert r.status == "output_limit", r.to_dict()
    assert 0 < len(r.tests[0].stdout) <= 4096


def test_files_left_behind_are_wiped(one):
    litter = ("for p in ['/work/litter', '/tmp/litter', '/dev/shm/litter', 'litter']:\n"
              "    open(p, 'w').write('x')\n")
    run_ok(one, litter)
    out = run_ok(one, "import os\nprint([os.listdir(d) for d in ('/tmp', '/dev/shm', '.')])")
    assert "litter" not in out, out


def test_stdio_tests_and_cpp(pool):
    r = pool.run(Job(code="a, b = map(int, input().split())\nprint(a + b)",
                     io=(IOTest("1 2\n", "3\n"), IOTest("-5 5\n", "0\n"))), LIMITS)
    assert r.status == PASSED and r.passed == 2, r.to_dict()
    cpp = "#include <iostream>\nint main(){long long a,b;std::cin>>a>>b;std::cout<<a+b<<'\\n';}\n"
    r = pool.run(Job(code=cpp, language="cpp", io=(IOTest("1000000000000000000 1\n", "1000000000000000001\n"),)),
                 LIMITS)
    assert r.status == PASSED, r.to_dict()


# --- cleanup -------------------------------------------------------------------------------------

def test_leftover_containers_of_dead_owners_removed_at_start(client):
    from sandbox.docker_backend import LABEL, MAIN_CMD, OWNER_LABEL, POOL_LABEL, DockerBackend, owner_id
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    boot = owner_id().split(":")[0]
    stale = client.containers.run(IMAGE, MAIN_CMD, detach=True, network_mode="none", labels={
        LABEL: "1", OWNER_LABEL: f"{boot}:{dead.pid}:1", POOL_LABEL: "stale"})
    live = client.containers.run(IMAGE, MAIN_CMD, detach=True, network_mode="none", labels={
        LABEL: "1", OWNER_LABEL: owner_id(), POOL_LABEL: "live-other"})
    try:
        with DockerBackend(image=IMAGE, size=1, client=client) as b:
            assert b.stats["stale_removed"] >= 1
            assert not labelled(client, POOL_LABEL, "stale")
            assert labelled(client, POOL_LABEL, "live-other")   # a live owner keeps its containers
        assert not labelled(client, POOL_LABEL, b.pool)         # close() removed its own
    finally:
        for c in (stale, live):
            try:
                c.remove(force=True)
            except Exception:
                pass


OWNER_SCRIPT = """
import time
from sandbox.docker_backend import DockerBackend
b = DockerBackend(image={image!r}, size=2)
print(b.pool, b._reaper.pid, flush=True)
time.sleep(600)
"""


def test_sigkilled_parent_leaves_no_container(client):
    from sandbox.docker_backend import POOL_LABEL
    owner = subprocess.Popen([sys.executable, "-c", OWNER_SCRIPT.format(image=IMAGE)],
                             stdout=subprocess.PIPE, text=True)
    try:
        pool_id, reaper_pid = owner.stdout.readline().split()
        assert len(labelled(client, POOL_LABEL, pool_id)) == 2
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    assert wait_until(lambda: not labelled(client, POOL_LABEL, pool_id), within=30), \
        "containers of a SIGKILLed owner survived"
    assert wait_until(lambda: not os.path.exists(f"/proc/{reaper_pid}") or
                      open(f"/proc/{reaper_pid}/stat").read().split(") ")[1].startswith("Z"), within=10)


def test_close_removes_containers(client):
    from sandbox.docker_backend import POOL_LABEL
    b = docker_backend_or_skip(size=1)
    assert len(labelled(client, POOL_LABEL, b.pool)) == 1
    b.close()
    assert not labelled(client, POOL_LABEL, b.pool)
    b.close()   # idempotent


# --- throughput (timings are printed, not asserted: see benchmarks/sandbox_bench.py) -----------

def test_throughput_trivial_programs(pool):
    n = 60
    t0 = time.monotonic()
    with ThreadPoolExecutor(4) as ex:
        results = list(ex.map(lambda i: pool.run(py(f"print({i} * 2)"), LIMITS), range(n)))
    dt = time.monotonic() - t0
    assert [r.status for r in results] == [PASSED] * n
    assert [r.tests[0].stdout.strip() for r in results] == [str(i * 2) for i in range(n)]
    print(f"\n{n} trivial programs through a pool of 2: {dt:.2f} s, {n / dt:.0f} programs/s")


# --- HumanEval -----------------------------------------------------------------------------------

def _humaneval():
    return [json.loads(line) for line in HUMANEVAL.open()] if HUMANEVAL.exists() else []


def _break(solution: str) -> str:
    """The canonical body with `raise ValueError` first: every test must then fail."""
    lines = solution.splitlines()
    first = next(line for line in lines if line.strip())
    indent = first[:len(first) - len(first.lstrip())]
    return f"{indent}raise ValueError('broken')\n" + solution


@pytest.mark.slow
def test_humaneval_canonical_solutions_pass_and_broken_ones_fail(pool):
    problems = _humaneval()
    if not problems:
        pytest.skip(f"{HUMANEVAL} not found")

    def judge(p, solution):
        job = Job(code=p["prompt"] + solution, asserts=AssertTests(code=p["test"], entry_point=p["entry_point"]))
        return pool.run(job, Limits(wall_s=10, cpu_s=10, memory_mb=512))

    t0 = time.monotonic()
    with ThreadPoolExecutor(4) as ex:
        good = list(ex.map(lambda p: judge(p, p["canonical_solution"]), problems))
    dt = time.monotonic() - t0
    bad = [p["task_id"] for p, r in zip(problems, good) if r.status != PASSED]
    assert not bad, [(t, r.to_dict()) for t, r in zip(bad, good) if r.status != PASSED][:3]
    print(f"\n{len(problems)} HumanEval canonical solutions: {dt:.1f} s")
    with ThreadPoolExecutor(4) as ex:
        broken = list(ex.map(lambda p: judge(p, _break(p["canonical_solution"])), problems))
    passed = [p["task_id"] for p, r in zip(problems, broken) if r.status == PASSED]
    assert not passed
    assert all(r.status != SANDBOX_ERROR for r in broken)


# --- image and CLI -------------------------------------------------------------------------------

def test_image_check(client):
    from sandbox.image import check
    assert check(IMAGE, client=client, log=lambda *a: None)


def cli(*args, **kw):
    env = {**os.environ, **kw.pop("env", {})}
    return subprocess.run([sys.executable, "-m", "sandbox", *args], capture_output=True, text=True,
                          env=env, timeout=120, cwd=kw.pop("cwd", None))


def test_cli_run(client, tmp_path):
    prog = tmp_path / "echo.py"
    prog.write_text("import sys\nprint(sys.stdin.read().upper(), end='')\n")
    inp = tmp_path / "in.txt"
    inp.write_text("hello\n")
    p = cli("run", str(prog), "--stdin", str(inp), "--image", IMAGE)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("HELLO\n")
    assert p.stdout.splitlines()[-1].startswith("verdict: passed (exit 0, ")


def test_cli_run_failures(client, tmp_path):
    slow = tmp_path / "slow.py"
    slow.write_text("import time\ntime.sleep(30)\n")
    p = cli("run", str(slow), "--timeout", "1", "--image", IMAGE)
    assert p.returncode == 1 and p.stdout.splitlines()[-1].startswith("verdict: timeout"), p.stdout + p.stderr
    p = cli("run", str(tmp_path / "missing.py"))
    assert p.returncode == 2 and "no such file" in p.stderr
    odd = tmp_path / "prog.rb"
    odd.write_text("puts 1")
    p = cli("run", str(odd))
    assert p.returncode == 2 and "--language" in p.stderr
    p = cli("run", str(slow), env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert p.returncode == 2 and "Docker engine" in p.stderr and "dockerd" in p.stderr
