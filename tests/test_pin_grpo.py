"""Pins the first 3 steps of the tiny countdown GRPO config's metrics bit for bit.

Written on the code before the package re-layout (issue 11) so that the move could be shown to change
no numbers. Floating-point results depend on the CPU's instruction set and on the jax/jaxlib
versions, so the golden file records where it was produced: on a matching machine every metric must
be equal bit for bit; elsewhere the test is skipped with the command that regenerates the golden.
Regenerate it (`R1JAX_REGENERATE_PIN=1 python -m pytest tests/test_pin_grpo.py`) only for a change
that is meant to alter the numbers, and say so in the commit.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "tests", "data", "pin_grpo_tiny.json")
TIMING = ("step_time_s", "time_sample_s", "time_reward_s", "time_update_s", "gen_tokens_per_s")

pytestmark = pytest.mark.slow


def _fingerprint() -> str:
    import jax
    import jaxlib

    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            info = f.read()
        model = next((ln for ln in info.splitlines() if ln.startswith("model name")), "")
        flags = next((ln for ln in info.splitlines() if ln.startswith("flags")), "")
    except OSError:
        model = platform.processor()
    digest = hashlib.sha256(flags.encode()).hexdigest()[:12]
    return f"jax {jax.__version__} jaxlib {jaxlib.__version__} {model.split(':')[-1].strip()} flags:{digest}"


def _run(workdir: str) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "R1JAX_FAULTS")}
    env["JAX_PLATFORMS"] = "cpu"
    cmd = [
        sys.executable,
        "-m",
        "r1jax.main",
        "--config=experiments/r1_zero_countdown.py:tiny",
        f"--workdir={workdir}/run",
        f"--config.init.checkpoint={workdir}/base",
        "--config.eval.every_steps=0",
        "--config.eval.final=False",
    ]
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    with open(os.path.join(workdir, "run", "metrics.jsonl"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def test_first_three_grpo_steps_are_pinned(tmp_path):
    rows = _run(str(tmp_path))
    assert [r["step"] for r in rows] == [0, 1, 2]
    if os.environ.get("R1JAX_REGENERATE_PIN"):
        with open(GOLDEN, "w", encoding="utf-8") as f:
            json.dump({"fingerprint": _fingerprint(), "rows": rows}, f, indent=1, sort_keys=True)
        pytest.skip(f"golden regenerated at {GOLDEN}")
    with open(GOLDEN, encoding="utf-8") as f:
        golden = json.load(f)
    if golden["fingerprint"] != _fingerprint():
        pytest.skip(
            f"golden recorded on '{golden['fingerprint']}', this is '{_fingerprint()}'; "
            "regenerate with R1JAX_REGENERATE_PIN=1 on the commit you compare against"
        )
    assert len(rows) == len(golden["rows"])
    for got, want in zip(rows, golden["rows"]):
        assert set(got) == set(want), set(got) ^ set(want)
        for k in want:
            assert got[k] == want[k], (got["step"], k, got[k], want[k])
