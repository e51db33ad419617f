"""The reward server over real HTTP on loopback: OpenRLHF's protocol, /score, bad requests,
deadlines that keep a hanging check from holding up the others, code labels in Docker, and a
killed worker mid-load."""
import concurrent.futures
import json
import os
import time

import pytest

from verifiers import check

from _server import start_server as _start, stop_server as _stop

httpx = pytest.importorskip("httpx")


@pytest.fixture(scope="module")
def server():
    proc, base = _start("--workers", "2", "--timeout", "2", "--max-bytes", "200000")
    yield base
    _stop(proc)
    assert proc.returncode == 0


RESPONSES = [
    (r"So the probability is $\boxed{\frac{1}{4}}$.", "25\\%"),
    ("Answer: 9999", "10000"),
    (r"\boxed{\frac{\sqrt{2}}{2}}", r"\frac{1}{\sqrt{2}}"),
    (r"\boxed{(1,2)}", "[1,2]"),
    ("no answer at all", "3"),
]


def test_openrlhf_protocol_matches_check(server):
    prompts = [f"Problem {i}: " for i in range(len(RESPONSES))]
    body = {"query": [p + r for p, (r, _) in zip(prompts, RESPONSES)], "prompts": prompts,
            "labels": [g for _, g in RESPONSES]}
    r = httpx.post(server + "/get_reward", json=body, timeout=30)
    assert r.status_code == 200, r.text
    out = r.json()
    want = [check(resp, gold).reward for resp, gold in RESPONSES]
    assert want == [1.0, 0.0, 1.0, 0.0, 0.0]
    assert out["rewards"] == out["scores"] == want
    assert out["extra_logs"]["acc"] == want
    assert out["extra_logs"]["timeout"] == [0.0] * len(want)


def test_score_endpoint_returns_diagnostics(server):
    items = [{"response": "The answer is 42.", "label": 42}, {"response": r"\boxed{x^2}", "label": "x^2", "task": "math"}]
    r = httpx.post(server + "/score", json={"items": items}, timeout=30)
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert [x["score"] for x in res] == [1.0, 1.0]
    assert res[0]["pred"] == "42" and res[0]["task"] == "math"
    assert set(res[0]) == {"score", "acc", "task", "reason", "pred", "tests_passed", "tests_total"}


@pytest.mark.parametrize("body, status, words", [
    (b"not json", 400, "not JSON"),
    (b"[1, 2]", 400, "JSON object"),
    (json.dumps({"query": ["a"], "prompts": ["a"]}).encode(), 422, "missing 'labels'"),
    (json.dumps({"query": ["a", "b"], "prompts": ["a"], "labels": ["1"]}).encode(), 422, "2 queries, 1 prompts"),
    (json.dumps({"query": [3], "prompts": ["a"], "labels": ["1"]}).encode(), 422, "query[0] must be a string"),
    (json.dumps({"query": "a", "prompts": ["a"], "labels": ["1"]}).encode(), 422, "'query' must be a list"),
    (json.dumps({"query": ["a"], "prompts": ["a"], "labels": [[1]]}).encode(), 422, "label 0"),
    (json.dumps({"query": ["a"], "prompts": ["a"], "labels": ['{"io": []}']}).encode(), 422, "non-empty"),
    (json.dumps({"query": ["a"], "prompts": ["a"], "labels": ["1" * 300000]}).encode(), 413, "limit"),
])
def test_malformed_requests_get_4xx_with_a_message(server, body, status, words):
    r = httpx.post(server + "/get_reward", content=body, timeout=30)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]


def test_wrong_method_and_path(server):
    assert httpx.get(server + "/get_reward").status_code == 405
    assert httpx.post(server + "/nowhere", json={}).status_code == 404
    r = httpx.post(server + "/score", json={"items": [{"response": "1"}]})
    assert r.status_code == 422 and "lacks label" in r.json()["error"]


def test_health_lists_the_prewarmed_workers(server):
    h = httpx.get(server + "/health").json()
    assert h["status"] == "ok" and len(h["workers"]) >= 2
    for pid in h["workers"]:
        os.kill(pid, 0)                                    # alive


def test_a_hanging_check_does_not_hold_up_the_others(server):
    """A check that spins in sympy's C code answers timeout after the 2 s deadline; requests
    sent after it are answered first."""
    tower = {"query": [r"\boxed{5^{5^{5^{5^{5}}}}+1}"], "prompts": [""], "labels": [r"5^{5^{5^{5^{5}}}}"]}
    quick = {"query": [r"\boxed{\frac{3}{\sqrt{2}}}"], "prompts": [""], "labels": [r"\frac{3\sqrt{2}}{2}"]}
    done = []

    def post(name, body):
        r = httpx.post(server + "/get_reward", json=body, timeout=60)
        done.append(name)
        return r.json()

    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        slow = ex.submit(post, "slow", tower)
        time.sleep(0.3)
        fast = [ex.submit(post, f"fast{i}", quick) for i in range(3)]
        assert [f.result()["rewards"] for f in fast] == [[1.0]] * 3
        out = slow.result()
    assert out["rewards"] == [0.0] and out["extra_logs"]["timeout"] == [1.0]
    assert done[-1] == "slow", done


def test_killed_worker_mid_load_loses_no_request():
    """The benchmark's load with a math worker SIGKILLed halfway: every request answered, every
    reward right (the killed worker's check is rerun on a fresh one)."""
    import reward_server_load as load
    out = load.main(["--requests", "600", "--clients", "16", "--rows", "2", "--kill-worker"])
    assert out["killed"] is not None
    assert out["errors"] == 0 and out["wrong"] == 0, out


@pytest.mark.slow
def test_code_labels_run_in_the_sandbox():
    from _docker import docker_client_or_skip
    docker_client_or_skip()
    proc, base = _start("--workers", "1", "--sandbox", "docker")
    try:
        good = "```python\ndef add(a, b):\n    return a + b\n```"
        bad = "```python\ndef add(a, b):\n    return a - b\n```"
        label = {"tests": ["assert add(1, 2) == 3", "assert add(2, 2) == 4"]}
        apps = json.dumps({"inputs": ["1 2\n"], "outputs": ["3\n"]})
        io_prog = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
        items = [{"response": good, "label": label}, {"response": bad, "label": label},
                 {"response": io_prog, "label": apps}, {"response": "Answer: 3", "label": "3"}]
        r = httpx.post(base + "/score", json={"items": items}, timeout=120)
        assert r.status_code == 200, r.text
        res = r.json()["results"]
        assert [x["score"] for x in res] == [1.0, 0.0, 1.0, 1.0]
        assert [x["task"] for x in res] == ["code", "code", "code", "math"]
        assert res[1]["reason"] == "wrong_answer" and (res[1]["tests_passed"], res[1]["tests_total"]) == (0, 2)
        # OpenRLHF's protocol carries code labels as JSON text
        q = {"query": ["P" + good], "prompts": ["P"], "labels": [json.dumps(label)]}
        assert httpx.post(base + "/get_reward", json=q, timeout=120).json()["rewards"] == [1.0]
    finally:
        _stop(proc)
