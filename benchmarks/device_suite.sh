#!/usr/bin/env bash
# The accelerator suite (benchmarks/device_suite.py): bf16 train-step MFU on a Qwen2.5-0.5B-shaped
# model, decode tokens/s against the HBM roofline at batch 64, one GRPO step (G 8, 512 new tokens).
# Usage, from the repository root:
#   bash benchmarks/device_suite.sh                      # one GPU; JSON to benchmarks/results/
#   bash benchmarks/device_suite.sh --cpu-smoke --out /tmp/x.json   # tiny shapes on the CPU (CI)
# The whole run is capped at 8 minutes (SUITE_TIMEOUT_S overrides); results are written after each
# part, so a run cut short keeps what it finished. PYTHON picks the interpreter (default python3).
# First H200 run: benchmarks/results/device_suite_2026-12-04_h200.json (README, Performance).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
args=("$@")
if [[ " $* " != *" --out "* && " $* " != *" --cpu-smoke "* ]]; then
  args+=(--out "benchmarks/results/device_suite_$(date +%F).json")
fi
exec timeout "${SUITE_TIMEOUT_S:-480}" "${PYTHON:-python3}" benchmarks/device_suite.py "${args[@]}"
