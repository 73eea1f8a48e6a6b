"""The SFT stage through `python -m r1jax.main`: killed mid-epoch and resumed, it trains on exactly
the batches an uninterrupted run does (same losses, bit for bit); bad data is one line and exit 2.
"""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
import sft_runs

from r1jax.data import arithmetic, cold_start, countdown, sft_format
from r1jax.train import checkpoint

pytestmark = pytest.mark.slow
CONFIG = "experiments/cold_start_sft.py:tiny"


def _data(path: str) -> str:
    rng = np.random.default_rng(0)
    records = []
    for ex in countdown.examples("train", 30):
        text = cold_start.designed_countdown(ex, rng, cold_start.DesignConfig())
        if text is not None:
            records.append(dict(prompt=ex["question"], completion=text, task="countdown"))
    for ex in arithmetic.examples("train", 8):
        records.append(
            dict(prompt=ex["question"], completion=cold_start.designed_arithmetic(ex), task="a")
        )
    sft_format.write(path, [dict(r, source="hand_designed") for r in records])
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = str(tmp_path_factory.getbasetemp() / "sft_chain")
    os.makedirs(root, exist_ok=True)
    base = sft_runs.tiny_base(root)
    data = _data(os.path.join(root, "resume_data.jsonl"))
    args = (
        f"--config.init.checkpoint={base}",
        f"--config.data.inputs=('{data}',)",
        "--config.epochs=4",
        "--config.eval.before=False",
        "--config.eval.after=False",
        "--config.checkpoint.every_steps=3",
        "--config.checkpoint.keep=10",
        "--config.checkpoint.async_save=False",  # a SIGKILL must not race the mid-epoch save
        "--config.data.seq_len=255",  # every example whole in a row
    )
    ref = os.path.join(root, "resume_ref")
    sft_runs.ok(sft_runs.run(CONFIG, ref, *args))
    return root, args, sft_runs.rows(ref)


def test_killed_mid_epoch_resumes_identically(setup):
    root, args, want = setup
    per_epoch = sum(r["epoch"] < 1 for r in want)
    assert per_epoch >= 5 and len(want) == 4 * per_epoch
    ckpt = 3 * (per_epoch // 3 + 1)  # the first checkpoint inside the second epoch
    assert 0 < ckpt - per_epoch < per_epoch, "the resumed checkpoint must fall mid-epoch"
    kill = ckpt + 1  # SIGKILL two steps later (step index ckpt + 1 is not checkpointed)
    work = os.path.join(root, "resume_killed")
    p = sft_runs.run(CONFIG, work, *args, faults=f"kill_after_step={kill}")
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    p = sft_runs.ok(sft_runs.run(CONFIG, work, *args))
    assert f"resuming from checkpoint step {ckpt}" in p.stdout
    _, meta = checkpoint.read_meta(os.path.join(work, "checkpoints"), ckpt)
    assert meta["data_position"] == {"epoch": 1, "batch": ckpt - per_epoch}
    got = sft_runs.rows(work)
    assert [r["step"] for r in got] == list(range(len(want)))
    assert got == want  # loss, nll, grad_norm, tokens, padding_share, epoch: bit for bit
    losses = [r["loss"] for r in want]
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3])  # it trains


def test_bad_data_is_one_line_and_exit_2(setup):
    root, args, _ = setup
    empty = os.path.join(root, "empty.jsonl")
    open(empty, "w").close()
    bad_args = [a for a in args if not a.startswith("--config.data.inputs")]
    p = sft_runs.run(
        CONFIG, os.path.join(root, "bad"), *bad_args, f"--config.data.inputs=('{empty}',)"
    )
    assert p.returncode == 2, p.stderr[-2000:]
    last = p.stderr.strip().splitlines()[-1]
    assert (
        last
        == f"r1jax: ConfigError: SFT data file {empty!r} holds no records; regenerate it or remove it."
    )
    assert "Traceback" not in p.stderr
    missing = os.path.join(root, "missing_field.jsonl")
    with open(missing, "w") as f:
        f.write(json.dumps({"prompt": "q", "completion": "c", "task": "t"}) + "\n")
    p = sft_runs.run(
        CONFIG, os.path.join(root, "bad2"), *bad_args, f"--config.data.inputs=('{missing}',)"
    )
    assert p.returncode == 2 and f"{missing}:1: missing field 'source'" in p.stderr
