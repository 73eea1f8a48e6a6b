#!/usr/bin/env bash
# The accelerator suite (benchmarks/device_suite.py): bf16 train-step MFU on a Qwen2.5-0.5B-shaped
# model, decode tokens/s against the HBM roofline at batch 64, one GRPO step (G 8, 512 new tokens).
# Usage, from the repository root:
#   bash benchmarks/device_suite.sh                      # one GPU; JSON to benchmarks/results/
#   bash benchmarks/device_suite.sh --cpu-smoke --out /tmp/x.json   # tiny shapes on the CPU (CI)
# The whole run is capped at 8 minutes (SUITE_TIMEOUT_S overrides); no GPU was lent when this was
# written, so no accelerator numbers are committed yet.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
args=("$@")
if [[ " $* " != *" --out "* && " $* " != *" --cpu-smoke "* ]]; then
  args+=(--out "benchmarks/results/device_suite_$(date +%F).json")
fi
exec timeout "${SUITE_TIMEOUT_S:-480}" python benchmarks/device_suite.py "${args[@]}"
