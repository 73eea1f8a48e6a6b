"""Helpers of the SFT end-to-end tests: run `python -m r1jax.main` on one device, read its output.

Every run shares JAX's persistent compilation cache (the tiny programs repeat across runs) and a
tiny base model under one root per test session (`root`), built once by whichever test needs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMING = ("step_time_s", "tokens_per_s", "time_sample_s", "time_reward_s", "time_update_s")
TIMING += ("gen_tokens_per_s", "samples_per_s", "sampling_s")


def env(faults: str = "") -> dict:
    out = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one device, as on a laptop
    out.update(JAX_PLATFORMS="cpu", R1JAX_FAULTS=faults)  # the suite's compile cache: inherited
    return out


def run(
    config: str, workdir: str, *overrides: str, faults: str = ""
) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "r1jax.main", f"--config={config}", f"--workdir={workdir}"]
    return subprocess.run(
        [*cmd, *overrides], cwd=ROOT, env=env(faults), capture_output=True, text=True, timeout=900
    )


def ok(p: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p


def rows(workdir: str, drop_timing: bool = True) -> list[dict]:
    with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
        out = [json.loads(line) for line in f if line.strip()]
    return [{k: v for k, v in r.items() if not (drop_timing and k in TIMING)} for r in out]


def tiny_base(root: str) -> str:
    """The tiny toy base model (experiments/pretrain_toy.py:tiny) in <root>/base, built once."""
    base = os.path.join(root, "base")
    if not os.path.exists(os.path.join(base, "model_config.json")) or not os.path.isdir(
        os.path.join(base, "checkpoints", "30")
    ):
        ok(run("experiments/pretrain_toy.py:tiny", base))
    return base
