"""`experiments/all_scenario_rl.py:tiny` end to end, and its resumption bit for bit.

One `python -m r1jax.main` run builds what it needs (tiny base model, preference data, the two reward
models as sibling workdirs) and trains 4 GRPO steps over the Countdown + general mixture with replay
on: every row logs per-source metrics, and each eval step the reward models' scores beside the
oracle's. With its last checkpoint removed the run resumes from step 2 and repeats steps 2-3 bit for
bit: the reward models' checkpoint items and their running statistics (in the meta) come back.
`:replay=False` is the frozen-RM run to compare with.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from r1jax import config_base

pytestmark = pytest.mark.slow
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = "experiments/all_scenario_rl.py:tiny"
TIMING = ("step_time_s", "time_sample_s", "time_reward_s", "time_update_s", "gen_tokens_per_s")


def _main(workdir: str, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "R1JAX_FAULTS")}
    env["JAX_PLATFORMS"] = "cpu"
    cmd = [sys.executable, "-m", "r1jax.main", f"--config={CONFIG}", f"--workdir={workdir}", *extra]
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p


def _rows(workdir: str) -> list[dict]:
    with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def test_replay_flag():
    path = os.path.join(ROOT, "experiments", "all_scenario_rl.py")
    module = config_base.sibling(path, "all_scenario_rl")
    assert module.get_config("tiny").replay.enabled
    assert not module.get_config("tiny,replay=False").replay.enabled


def test_tiny_runs_with_per_source_metrics_and_resumes_bit_for_bit(tmp_path):
    wd = str(tmp_path / "all_scenario")
    _main(wd)
    for sibling in ("base", "preference_data", "rm_helpfulness", "rm_harmlessness"):
        assert os.path.isdir(tmp_path / sibling), sibling
    rows = _rows(wd)
    assert len(rows) == 4
    for r in rows:
        assert r["reasoning_groups"] + r["general_groups"] + r["harm_groups"] == 4  # prompts/step
        assert "replay_new_pairs" in r
        if r["general_groups"]:
            assert "general_reward" in r and "general_reward_model_summary_mean" in r
        if r["reasoning_groups"]:
            assert 0.0 <= r["reasoning_accuracy"] <= 1.0
    for i in (0, 1, 3):  # before the first update, then every 2 steps
        for a in ("helpfulness", "harmlessness"):
            assert f"eval_rm_score_{a}" in rows[i] and f"eval_oracle_score_{a}" in rows[i]
            assert 0.0 <= rows[i][f"eval_oracle_score_{a}"] <= 1.0
            # per source too; 2 held-out prompts of each, so the pooled mean is their mean
            per = [rows[i][f"eval_oracle_score_{a}_{s}"] for s in ("general", "harm")]
            assert rows[i][f"eval_oracle_score_{a}"] == pytest.approx(sum(per) / 2, abs=1e-6)
            assert f"eval_rm_score_{a}_general" in rows[i] and f"eval_rm_score_{a}_harm" in rows[i]
    assert "replay_buffer_pairs" in rows[1] and "replay_buffer_pairs" in rows[3]
    for png in ("grpo.png", "rm_vs_oracle.png"):
        assert os.path.exists(os.path.join(wd, "plots", png)), png
    ckpts = os.path.join(wd, "checkpoints")
    assert sorted(int(s) for s in os.listdir(ckpts) if s.isdigit()) == [2, 4]
    shutil.rmtree(os.path.join(ckpts, "4"))
    proc = _main(wd)
    assert "resuming from checkpoint step 2" in proc.stdout
    assert _rows(wd) == rows
