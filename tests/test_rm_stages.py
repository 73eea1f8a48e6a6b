"""`experiments/preference_data.py:tiny` and `experiments/reward_model.py:tiny` end to end, resumed.

Every run is `python -m r1jax.main` in a subprocess; the tiny base model is built once and shared
through `init.checkpoint`. The preference data stage writes valid pairs (reference_perturbed) and
refuses to overwrite another run's data; sampling from a policy checkpoint records every response
with its provenance. The reward model stage trains, evaluates, plots and publishes a reward; with
its last checkpoint removed it resumes from the previous one and repeats the same steps bit for bit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from r1jax import rewards
from r1jax.data import preference
from r1jax.train import checkpoint

pytestmark = pytest.mark.slow
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMING = ("step_time_s",)


def _main(config: str, workdir: str, *extra: str, ok: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(JAX_PLATFORMS="cpu")  # the suite's persistent compile cache: inherited (conftest.py)
    cmd = [sys.executable, "-m", "r1jax.main", f"--config={config}", f"--workdir={workdir}", *extra]
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert (p.returncode == 0) == ok, p.stdout[-3000:] + p.stderr[-3000:]
    return p


def _rows(workdir: str) -> list[dict]:
    with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """<root>/base (tiny base model), <root>/preference_data, <root>/rm (trained 12 steps)."""
    root = str(tmp_path_factory.mktemp("rm_stages"))
    _main("experiments/pretrain_toy.py:tiny", os.path.join(root, "base"))
    return root


@pytest.fixture(scope="module")
def prefs(root):
    wd = os.path.join(root, "preference_data")
    return wd, _main("experiments/preference_data.py:tiny", wd)


@pytest.fixture(scope="module")
def rm(root, prefs):
    wd = os.path.join(root, "rm")
    return wd, _main("experiments/reward_model.py:tiny", wd), _rows(wd)


def test_preference_data_writes_valid_pairs_once(prefs):
    wd, proc = prefs
    recs = preference.read_jsonl(os.path.join(wd, "preferences.jsonl"))  # validates every pair
    with open(os.path.join(wd, "preference_data.json"), encoding="utf-8") as f:
        stats = json.load(f)["stats"]
    assert stats["pairs"] == len(recs) > 50 and f"wrote {len(recs)} preference pairs" in proc.stdout
    assert {r["split"] for r in recs} == {"train", "test"}
    assert {(r["aspect"], r["source"]) for r in recs} == {
        ("helpfulness", "general"), ("helpfulness", "harm"), ("harmlessness", "harm")
    }  # fmt: skip
    for r in recs:
        o = r["oracle"]
        gap = o["chosen"][r["aspect"]] - o["rejected"][r["aspect"]]
        assert abs(gap) >= 0.1 and r["label"]["agrees_with_oracle"] == (gap > 0)
        assert r["provenance"]["responses"] == "reference_perturbed"
    train_q = {r["question"] for r in recs if r["split"] == "train"}
    assert not train_q & {r["question"] for r in recs if r["split"] == "test"}
    assert os.path.getsize(os.path.join(wd, "plots", "preference_data.png")) > 0
    again = _main("experiments/preference_data.py:tiny", wd)
    assert "already finished" in again.stdout
    other = _main("experiments/preference_data.py:tiny,seed=1", wd, ok=False)
    assert "holds preference data of another run" in other.stderr
    assert preference.read_jsonl(os.path.join(wd, "preferences.jsonl")) == recs


def test_preference_data_from_policy_samples(root):
    wd = os.path.join(root, "pd_policy")
    base = os.path.join(root, "base")
    p = _main(
        "experiments/preference_data.py:tiny,source=policy",
        wd,
        f"--config.init.checkpoint={base}",
        "--config.prompts.train=16",
        "--config.prompts.test=8",
        ok=False,  # a 30-step corpus model answers no general prompt: no oracle gap, no pair
    )
    assert "no preference pairs were made" in p.stderr
    with open(os.path.join(wd, "responses.jsonl"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    assert len(rows) == (16 + 8) * 4
    assert all(r["provenance"]["checkpoint"] == base for r in rows)
    assert rows[0]["provenance"]["checkpoint_step"] == 30
    assert len({r["response"] for r in rows}) > len(rows) // 2  # sampled, not copied
    assert not os.path.exists(os.path.join(wd, "preferences.jsonl"))


def test_reward_model_trains_evaluates_and_publishes(rm):
    wd, proc, rows = rm
    assert [r["step"] for r in rows] == list(range(12))
    assert all(np.isfinite(r["loss"]) and r["nonfinite"] == 0 for r in rows)
    assert "eval_accuracy_oracle" in rows[0] and "eval_accuracy_oracle" in rows[-1]
    assert "held-out pair accuracy vs the oracle" in proc.stdout
    with open(os.path.join(wd, "rm_eval.json"), encoding="utf-8") as f:
        ev = json.load(f)
    assert 0 <= ev["eval_accuracy_oracle"] <= 1 and ev["eval_pairs"] > 10
    assert sum(b["n"] for b in ev["reliability"]) == ev["eval_pairs"]
    for name in ("calibration.png", "reward_model.png"):
        assert os.path.getsize(os.path.join(wd, "plots", name)) > 0
    with open(os.path.join(wd, "rm_info.json"), encoding="utf-8") as f:
        info = json.load(f)
    assert (info["aspect"], info["on"], info["template"]) == ("helpfulness", "summary", "plain")
    fn = rewards.build([f"reward_model(path='{wd}', on='summary')"])[0]
    text = " <think>\nthe input is a\n</think>\n<answer>a</answer>"
    assert np.isfinite(fn([text, text + " b"], [{"question": "Sort the words: a"}] * 2)).all()


def test_reward_model_resumes_bit_for_bit(rm):
    wd, _, rows = rm
    ckpts = os.path.join(wd, "checkpoints")
    assert sorted(int(s) for s in os.listdir(ckpts) if s.isdigit()) == [6, 12]
    shutil.rmtree(os.path.join(ckpts, "12"))
    proc = _main("experiments/reward_model.py:tiny", wd)
    assert "resuming from checkpoint step 6" in proc.stdout
    assert _rows(wd) == rows
    assert checkpoint.read_meta(ckpts)[1]["data_position"] == 12 * 8
