"""benchmarks/device_suite.sh --cpu-smoke: the accelerator suite's code path on tiny CPU shapes.

The suite itself needs a GPU (a Qwen2.5-0.5B-shaped model); its smoke mode runs every part (bf16
train step with its MFU, decode against the roofline, one GRPO step) on tiny shapes, so a change
that breaks the suite fails here rather than on the first lent accelerator.
"""

import json
import math
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_cpu_smoke_writes_every_measurement(tmp_path):
    out = tmp_path / "suite.json"
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")  # one device, as the suite expects
    p = subprocess.run(
        ["bash", "benchmarks/device_suite.sh", "--cpu-smoke", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["smoke"] and res["platform"] == "cpu"
    assert res["model"]["dtype"] == "bfloat16" and res["model"]["scan_layers"]
    for part, keys in {
        "train_step": ("step_s", "model_gflop_per_step", "mfu_vs_measured_peak"),
        "decode": ("generate_s", "prefill_s", "roofline_tok_s"),
        "decode_sampler_unrolled": ("generate_s",),
        "grpo_step": ("sample_s", "update_s", "step_s", "update_unshared_prompt_s"),
    }.items():
        for k in keys:
            v = res[part][k]
            assert isinstance(v, float) and math.isfinite(v) and v > 0, (part, k, v)
    assert res["grpo_step"]["step_s"] == pytest.approx(
        res["grpo_step"]["sample_s"] + res["grpo_step"]["update_s"], abs=1e-3
    )
    done = res["elapsed_s_after"]  # each part's end, for sizing a short device lease
    assert list(done)[-1] == "end" and list(done.values()) == sorted(done.values())
