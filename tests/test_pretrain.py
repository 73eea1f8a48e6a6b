"""`experiments/pretrain_toy.py:tiny` end to end through `python -m r1jax.main`, then resumed.

The first run trains (30 steps on the 8 simulated devices, inherited from conftest): the loss
falls, and the workdir holds metrics.jsonl, a TensorBoard event file, the PNG plot, the tokenizer,
model_config.json and the step-30 checkpoint. The same command again resumes, says so and redoes
nothing. With the step-30 checkpoint removed, a third run resumes from step 20 and repeats steps
20-29 exactly (same losses, bit for bit), with each step in metrics.jsonl once.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from r1jax.train import checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CMD = [sys.executable, "-m", "r1jax.main", "--config=experiments/pretrain_toy.py:tiny"]
STEPS = 30  # the :tiny config's steps; checkpoints every 10, keeping 2


def _run(workdir: str) -> subprocess.CompletedProcess:
    p = subprocess.run(
        [*CMD, f"--workdir={workdir}"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p


def _rows(workdir: str) -> list[dict]:
    with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("pretrain") / "wd")
    return workdir, _run(workdir), _rows(workdir)


@pytest.mark.slow
def test_tiny_pretrain_trains_and_writes_everything(first):
    workdir, proc, rows = first
    assert "training a sentencepiece model" in proc.stdout
    assert [r["step"] for r in rows] == list(range(STEPS))
    for key in ("loss", "grad_norm", "lr", "tokens", "tokens_per_s", "step_time_s"):
        assert all(np.isfinite(r[key]) for r in rows), key
    loss = np.array([r["loss"] for r in rows])
    early, late = loss[:5].mean(), loss[-5:].mean()
    assert late < 0.85 * early, (early, late)  # observed ~6.5 -> ~4.4
    assert all(r["nonfinite"] == 0 for r in rows)
    assert max(r["lr"] for r in rows) == pytest.approx(2e-3, rel=1e-6)  # the config's lr, reached

    events = [f for f in os.listdir(os.path.join(workdir, "tb")) if "tfevents" in f]
    assert events and os.path.getsize(os.path.join(workdir, "tb", events[0])) > 0
    with open(os.path.join(workdir, "plots", "pretrain.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(os.path.join(workdir, "tokenizer.model")) > 0
    with open(os.path.join(workdir, "model_config.json"), encoding="utf-8") as f:
        assert json.load(f)["d_model"] == 32
    step, meta = checkpoint.read_meta(os.path.join(workdir, "checkpoints"))
    assert step == STEPS and meta["stage"] == "pretrain" and meta["data_position"] == STEPS


@pytest.mark.slow
def test_rerun_resumes_and_redoes_nothing(first):
    workdir, _, rows = first
    proc = _run(workdir)
    assert f"resuming from checkpoint step {STEPS}" in proc.stdout
    assert "already finished" in proc.stdout
    assert "training a sentencepiece model" not in proc.stdout  # the cached tokenizer is used
    assert _rows(workdir) == rows


@pytest.mark.slow
def test_resume_from_an_earlier_checkpoint_repeats_the_same_steps(first):
    workdir, _, rows = first
    ckpts = os.path.join(workdir, "checkpoints")
    assert sorted(int(s) for s in os.listdir(ckpts) if s.isdigit()) == [20, 30]
    shutil.rmtree(os.path.join(ckpts, str(STEPS)))
    proc = _run(workdir)
    assert "resuming from checkpoint step 20" in proc.stdout
    again = _rows(workdir)
    assert [r["step"] for r in again] == list(range(STEPS))  # each step once
    assert again[:20] == rows[:20]  # the rows before the checkpoint are kept untouched
    for old, new in zip(rows[20:], again[20:]):
        for key in ("loss", "grad_norm", "lr", "tokens"):
            assert new[key] == old[key], (new["step"], key, old[key], new[key])
    assert checkpoint.read_meta(ckpts)[0] == STEPS
