"""Data parallelism and resumption, with real processes: torchrun (gloo) and SIGKILL."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from _grpo_util import HERE, metric_steps, torchrun, yaml_config

ENV = dict(os.environ, PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")


def _step(tmp_path, loss, scale, nproc, mode="ddp"):
    out = tmp_path / f"{loss}-{scale}-{nproc}-{mode}.pt"
    script = os.path.join(HERE, "_grpo_ddp.py")
    if nproc == 1:
        cmd = [sys.executable, script]
    else:
        cmd = torchrun(nproc, script)
    r = subprocess.run(cmd + [str(out), loss, scale, mode], env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return torch.load(out)


@pytest.mark.slow
@pytest.mark.parametrize("loss, scale", [("grpo", "group"), ("dr_grpo", "none"), ("dapo", "batch")])
def test_two_torchrun_processes_take_the_same_step_as_one(tmp_path, loss, scale):
    one, two = _step(tmp_path, loss, scale, 1), _step(tmp_path, loss, scale, 2)
    assert one["delta"].abs().max() > 1e-4, "the step moved the weights"
    assert torch.allclose(one["delta"], two["delta"], atol=1e-6, rtol=1e-4), \
        (one["delta"] - two["delta"]).abs().max()
    for k in ("loss", "clip_frac", "entropy", "grad_norm"):
        assert one["metrics"][k] == pytest.approx(two["metrics"][k], rel=1e-4, abs=1e-7), k


@pytest.mark.slow
@pytest.mark.parametrize("loss, scale", [("grpo", "group"), ("dapo", "batch")])
def test_fsdp_over_two_ranks_takes_the_same_step_as_one_process(tmp_path, loss, scale):
    one, two = _step(tmp_path, loss, scale, 1), _step(tmp_path, loss, scale, 2, "fsdp")
    assert one["delta"].abs().max() > 1e-4, "the step moved the weights"
    assert torch.allclose(one["delta"], two["delta"], atol=1e-5, rtol=1e-4), \
        (one["delta"] - two["delta"]).abs().max()
    for k in ("loss", "clip_frac", "entropy", "grad_norm"):
        assert one["metrics"][k] == pytest.approx(two["metrics"][k], rel=1e-4, abs=1e-7), k


@pytest.mark.slow
def test_resume_after_sigkill_gives_the_same_metrics(tmp_path):
    from grpo.tiny import save_tiny

    save_tiny(tmp_path / "tiny", seed=0)
    base = [sys.executable, "-m", "grpo", "train"]
    full = tmp_path / "full"
    r = subprocess.run(base + [yaml_config(tmp_path, tmp_path / "tiny", full)], env=ENV, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]

    killed = tmp_path / "killed"
    cfg = yaml_config(tmp_path, tmp_path / "tiny", killed)
    p = subprocess.Popen(base + [cfg], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not os.path.exists(killed / "checkpoint-15") and time.time() < deadline:
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    assert p.wait() == -signal.SIGKILL, "the run was killed mid-way, not finished"
    assert not os.path.exists(killed / "checkpoint-40")
    r = subprocess.run(base + [cfg, "--resume", "true"], env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = metric_steps(full / "metrics.jsonl"), metric_steps(killed / "metrics.jsonl")
    assert [m["step"] for m in b] == [0] + list(range(1, 41))
    assert len([m for m in a if "eval/pass@1" in m]) == 5
    assert a == b
    # the resumed model is the uninterrupted one, bit for bit
    from safetensors.torch import load_file
    wa, wb = load_file(full / "checkpoint-40" / "model.safetensors"), load_file(killed / "checkpoint-40" / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_torchrun_trains_with_two_ranks(tmp_path):
    from grpo.tiny import save_tiny

    save_tiny(tmp_path / "tiny", seed=0)
    out = tmp_path / "ddp"
    cfg = yaml_config(tmp_path, tmp_path / "tiny", out)
    cmd = torchrun(2, "-m", "grpo", "train", cfg, "--steps", "4", "--eval-every", "2")
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    m = metric_steps(out / "metrics.jsonl")
    assert [x["step"] for x in m] == [0, 1, 2, 3, 4]  # rank 0 alone writes
    assert all(x["completion_tokens"] > 0 for x in m[1:]) and "eval/pass@1" in m[-1]
    assert os.path.exists(out / "checkpoint-4" / "rng-1.pt")


@pytest.mark.slow
def test_fsdp_trains_with_two_ranks_and_resumes_exactly(tmp_path):
    from safetensors.torch import load_file

    from grpo.tiny import save_tiny

    save_tiny(tmp_path / "tiny", seed=0)

    def run(out, *flags):
        cmd = torchrun(2, "-m", "grpo", "train", yaml_config(tmp_path, tmp_path / "tiny", out),
                       "--fsdp", "true", "--save-every", "2", "--eval-every", "2", "--eval-size", "7",  # 4 + 3 eval rows
                       "--lr-schedule", "constant", "--dynamic-sampling", "true", *flags)
        r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]

    run(tmp_path / "full", "--steps", "4")
    run(tmp_path / "cut", "--steps", "2")
    run(tmp_path / "cut", "--steps", "4", "--resume", "true")
    a, b = metric_steps(tmp_path / "full" / "metrics.jsonl"), metric_steps(tmp_path / "cut" / "metrics.jsonl")
    assert [x["step"] for x in a] == [0, 1, 2, 3, 4] and "eval/pass@1" in a[-1] and a[-1]["grad_norm"] > 0
    assert a == b
    # rank 0 wrote one ordinary checkpoint: the gathered model and the one-process optimizer format
    wa = load_file(tmp_path / "full" / "checkpoint-4" / "model.safetensors")
    wb = load_file(tmp_path / "cut" / "checkpoint-4" / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    fresh = load_file(tmp_path / "tiny" / "model.safetensors")
    assert wa.keys() == fresh.keys() and all(wa[k].shape == fresh[k].shape for k in wa)
    assert any(not torch.equal(wa[k], fresh[k]) for k in wa)
    st = torch.load(tmp_path / "full" / "checkpoint-4" / "trainer_state.pt", weights_only=True)
    from grpo.model import load_policy

    model = load_policy(str(tmp_path / "full" / "checkpoint-4"))[0]
    params = [p for p in model.parameters()]
    assert sorted(st["opt"]["state"]) == list(range(len(params)))
    assert all(st["opt"]["state"][i]["exp_avg"].shape == p.shape for i, p in enumerate(params))
