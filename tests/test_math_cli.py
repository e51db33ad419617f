"""Tests for `python -m verifiers math IN.jsonl -o OUT.jsonl`, run as a real subprocess."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SAMPLE = FIXTURES / "hardverify_sample.jsonl"     # 12 labelled HardVerify-Math rows (see fixtures/README.md)
ADDED_KEYS = {"reward", "correct", "pred", "reason"}
SUMMARY_KEYS = {"count", "mean_reward", "checks_per_s"}


def run_cli(*args, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    return subprocess.run([sys.executable, "-m", "verifiers", "math", *map(str, args)], cwd=ROOT, env=env,
                          input=stdin, capture_output=True, text=True, timeout=timeout)


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def summary_of(stderr: str) -> dict:
    """The JSON summary: the last stderr line that parses as a JSON object."""
    for line in reversed(stderr.strip().splitlines()):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    raise AssertionError(f"no JSON summary on stderr:\n{stderr}")


def test_sample_file(tmp_path):
    out = tmp_path / "out.jsonl"
    proc = run_cli(SAMPLE, "-o", out, "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""                              # records go to -o, not stdout
    assert "Traceback" not in proc.stderr
    inputs, outputs = read_jsonl(SAMPLE), read_jsonl(out)
    assert len(outputs) == len(inputs) == 12
    for rec_in, rec_out in zip(inputs, outputs):          # same order, input record kept as is
        assert {k: rec_out[k] for k in rec_in} == rec_in
        assert set(rec_out) == set(rec_in) | ADDED_KEYS
        assert rec_out["reward"] == float(rec_in["label"]), rec_out
        assert isinstance(rec_out["reward"], float)
        assert rec_out["correct"] is bool(rec_in["label"])
        assert isinstance(rec_out["pred"], str) and rec_out["pred"]
        assert isinstance(rec_out["reason"], str) and not rec_out["reason"].startswith("malformed")
    summary = summary_of(proc.stderr)
    assert SUMMARY_KEYS <= set(summary)
    assert summary["count"] == 12
    assert summary["mean_reward"] == pytest.approx(0.5, abs=1e-4)
    assert summary.get("malformed", 0) == 0
    assert isinstance(summary["checks_per_s"], (int, float)) and summary["checks_per_s"] > 0
    if "reasons" in summary:
        assert sum(summary["reasons"].values()) == 12
    assert not [line for line in proc.stderr.splitlines() if "malformed line" in line]


MALFORMED_LINES = [
    json.dumps({"id": 1, "response": r"so $\boxed{5}$", "gold": "5"}),       # 1 good, correct
    '{"id": 2, "response": "\\\\boxed{5}", "gold": ',                      # 2 bad JSON (truncated)
    json.dumps({"id": 3, "response": r"\boxed{5}"}),                      # 3 missing gold
    "",                                                                   # 4 blank line
    json.dumps({"id": 5, "response": 42, "gold": "42"}),                  # 5 response not a string
    json.dumps([1, 2]),                                                   # 6 not an object
    json.dumps({"id": 7, "response": r"\boxed{3}", "gold": "4"}),         # 7 good, wrong
    json.dumps({"id": 8, "gold": "1"}),                                   # 8 missing response
    json.dumps({"id": 9, "response": r"The answer is $\frac{1}{2}$.", "gold": "0.5"}),  # 9 good, correct
]
MALFORMED_AT = [2, 3, 5, 6, 8]


def test_malformed_lines_are_reported_and_scored_zero(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(MALFORMED_LINES) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    proc = run_cli(src, "-o", out, "--workers", "2")
    assert proc.returncode == 0, proc.stderr              # the run goes on
    assert "Traceback" not in proc.stderr

    # stderr names each malformed line by its physical line number (the blank line 4 counts)
    reported = sorted(int(m.group(1)) for m in re.finditer(r"in\.jsonl:(\d+):.*malformed", proc.stderr))
    assert reported == MALFORMED_AT, proc.stderr

    outputs = read_jsonl(out)
    assert len(outputs) == 8                               # one per non-blank line, in input order
    good = [o for o in outputs if not o["reason"].startswith("malformed")]
    bad = [o for o in outputs if o["reason"].startswith("malformed")]
    assert [o["id"] for o in good] == [1, 7, 9]
    assert [(o["reward"], o["correct"]) for o in good] == [(1.0, True), (0.0, False), (1.0, True)]
    assert [o["pred"] for o in good] == ["5", "3", r"\frac{1}{2}"]
    assert len(bad) == 5
    for o in bad:
        assert (o["reward"], o["correct"], o["pred"]) == (0.0, False, None), o
    assert [o.get("id") for o in outputs] == [1, None, 3, 5, None, 7, 8, 9]
    by_id = {o["id"]: o for o in outputs if "id" in o}
    assert "gold" in by_id[3]["reason"]
    assert "response" in by_id[5]["reason"]
    assert "response" in by_id[8]["reason"]
    assert by_id[5]["response"] == 42                      # the input record is kept
    assert outputs[1].get("line") == 2                     # unparsable line: its number instead

    summary = summary_of(proc.stderr)
    assert summary["count"] == 8
    assert summary["mean_reward"] == pytest.approx(2 / 8, abs=1e-4)
    assert summary["malformed"] == 5
    assert summary["checks_per_s"] > 0


def test_missing_input_file_is_a_clean_error(tmp_path):
    missing = tmp_path / "does-not-exist.jsonl"
    out = tmp_path / "out.jsonl"
    proc = run_cli(missing, "-o", out)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "does-not-exist.jsonl" in lines[0]
    assert not out.exists()


def test_unwritable_output_is_a_clean_error(tmp_path):
    out = tmp_path / "no-such-dir" / "out.jsonl"
    proc = run_cli(SAMPLE, "-o", out, "--workers", "1")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "out.jsonl" in lines[0]


def test_bad_arguments_are_rejected():
    for args in (["--workers", "0"], ["--timeout", "0"]):
        proc = run_cli(SAMPLE, *args)
        assert proc.returncode != 0, args
        assert "Traceback" not in proc.stderr
        assert proc.stdout == ""


def test_stdin_stdout_fallback_and_timeout():
    records = [
        {"id": "plain", "response": "First we count 12 apples.\nThen we add 3 oranges, so we get 15 fruits in total.",
         "gold": "15"},
        {"id": "tower", "response": r"\boxed{9^{9^{9^9}}}", "gold": "5"},
        {"id": "boxed", "response": r"\boxed{(x+1)^2}", "gold": "x^2+2x+1"},
    ]
    stdin = "".join(json.dumps(r) + "\n" for r in records)

    start = time.monotonic()
    proc = run_cli("-", "--workers", "2", "--timeout", "1", stdin=stdin)
    assert proc.returncode == 0, proc.stderr
    outputs = [json.loads(line) for line in proc.stdout.splitlines()]
    by_id = {o["id"]: o for o in outputs}
    assert len(outputs) == 3
    assert (by_id["plain"]["reward"], by_id["plain"]["reason"], by_id["plain"]["pred"]) == (0.0, "no_answer", None)
    assert (by_id["tower"]["reward"], by_id["tower"]["reason"]) == (0.0, "timeout")
    assert (by_id["boxed"]["reward"], by_id["boxed"]["correct"]) == (1.0, True)
    summary = summary_of(proc.stderr)
    assert summary["count"] == 3
    assert summary["mean_reward"] == pytest.approx(1 / 3, abs=1e-4)

    proc = run_cli("-", "--workers", "2", "--timeout", "1", "--fallback", stdin=stdin)
    assert proc.returncode == 0, proc.stderr
    by_id = {o["id"]: o for o in map(json.loads, proc.stdout.splitlines())}
    assert (by_id["plain"]["reward"], by_id["plain"]["pred"]) == (1.0, "15")
    assert by_id["tower"]["reason"] == "timeout"
    assert summary_of(proc.stderr)["mean_reward"] == pytest.approx(2 / 3, abs=1e-4)
    # two runs, each with interpreter and worker start-up and one 1 s timeout
    assert time.monotonic() - start < 60
