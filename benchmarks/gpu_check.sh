#!/usr/bin/env bash
# The trainer's GPU checks in one short run, for a session that is lent a GPU machine (the README
# lists what has not run on a GPU yet). Writes its logs to $OUT (the device tool's folder) or
# /tmp/gpu_check. About 10 minutes on one H200.
#
# That machine has torch, transformers, peft and pytest, but no trl, vllm or datasets, and no
# network. The TRL side of the speed comparison needs TRL's wheels carried in .whl/ (see the
# device tool's README); without them the benchmark still times our trainer and reports TRL as
# failed. vLLM cannot be carried (its wheel is larger than what travels), so its CUDA path stays
# untested there.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/gpu_check}
mkdir -p "$out"
export PYTHONUNBUFFERED=1

python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__,
      torch.cuda.get_device_name() if torch.cuda.is_available() else 'NO CUDA')" | tee "$out/versions.txt"

# 1. The trainer's tests with CUDA visible: device "auto" puts train() on the GPU with bf16 autocast.
#    Which of the CPU-exact checks (resume bit for bit, one step equal to micro-batched steps) hold?
timeout 300 python3 -m pytest -q -rf tests/test_grpo_algo.py tests/test_grpo_train.py 2>&1 | tee "$out/tests.log" | tail -20

# 2. Speed and memory on a 0.44B Llama built offline (random weights), bf16, 256 new tokens.
timeout 300 python3 benchmarks/grpo_vs_trl.py --device cuda --size 0.5b --max-new-tokens 256 --steps 10 \
    --warmup 2 2>&1 | tee "$out/bench.log" | tail -8
