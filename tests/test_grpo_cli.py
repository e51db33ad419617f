"""`python -m grpo train`: YAML + flags, and clear errors for bad input; data formats."""
import json
import os
import subprocess
import sys

import pytest

from _grpo_util import toy_rows, write_jsonl

HERE = os.path.dirname(os.path.abspath(__file__))
ENV = dict(os.environ, PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")


def _run(*args):
    return subprocess.run([sys.executable, "-m", "grpo", "train", *args], env=ENV, capture_output=True, text=True,
                          timeout=300)


def test_flags_override_the_yaml_file(tmp_path):
    from grpo.tiny import save_tiny

    save_tiny(tmp_path / "tiny")
    data = write_jsonl(tmp_path / "d.jsonl", toy_rows(32))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"model: {tmp_path / 'tiny'}\ndata: {data}\noutput_dir: {tmp_path / 'out'}\nsteps: 50\n"
                   "group_size: 4\nbatch_size: 8\nmax_new_tokens: 3\nmax_prompt_len: 8\nplot: false\n")
    r = _run(str(cfg), "--steps", "2", "--loss", "dapo", "--reward", os.path.join(HERE, "_grpo_util.py") + ":exact")
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [json.loads(l) for l in open(tmp_path / "out" / "metrics.jsonl")]
    assert [l["step"] for l in lines] == [1, 2] and "reward/exact" in lines[0]
    assert os.path.exists(tmp_path / "out" / "checkpoint-2")


@pytest.mark.parametrize("yaml_text, extra, message", [
    ("modle: x\n", [], "unknown config keys: modle"),
    ("model: x\ndata: y.jsonl\n", [], "no reward function"),
    ("model: x\ndata: y.jsonl\nbatch_size: 12\ngroup_size: 8\n", ["--reward", "_grpo_util:exact"],
     "group_size 8 does not divide batch_size 12"),
    ("model: x\ndata: y.jsonl\n", ["--reward", "_grpo_util:nothing"], "has no 'nothing'"),
    ("model: x\ndata: missing.jsonl\n", ["--reward", "_grpo_util:exact"], "data file not found: missing.jsonl"),
])
def test_bad_input_gets_one_clear_line(tmp_path, yaml_text, extra, message):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml_text)
    r = _run(str(cfg), *extra)
    assert r.returncode != 0
    assert message in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]


def test_parquet_and_jsonl_load_the_same_rows(tmp_path):
    import datasets

    from grpo.data import load_rows

    rows = toy_rows(10)
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "d.parquet"))
    assert load_rows(str(tmp_path / "d.parquet")) == rows == load_rows(write_jsonl(tmp_path / "d.jsonl", rows))
    (tmp_path / "bad.jsonl").write_text('{"prompt": "1"}\n{oops\n')
    with pytest.raises(ValueError, match="bad.jsonl:2: not valid JSON"):
        load_rows(str(tmp_path / "bad.jsonl"))


@pytest.mark.slow
def test_demo_runs_end_to_end_and_ends_with_json(tmp_path):
    r = subprocess.run([sys.executable, "-m", "grpo", "demo", "--out", str(tmp_path), "--steps", "3",
                        "--sft-steps", "20"], env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    last = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(last) == {"before", "after", "seconds", "metrics", "plot"}
    assert 0 <= last["before"] <= 1 and 0 <= last["after"] <= 1
    steps = [json.loads(l)["step"] for l in open(last["metrics"])]
    assert steps[0] == 0 and steps[-1] == 3  # held-out evaluation before GRPO and after the last step
    assert os.path.getsize(last["plot"]) > 10_000
    assert "cold start: 20 SFT steps" in r.stdout
