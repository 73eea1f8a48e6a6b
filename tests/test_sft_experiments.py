"""Each supervised experiment's `:tiny`, end to end through `python -m r1jax.main`, chained by name
as the recipe chains them: cold-start data + SFT -> reasoning RL -> rejection sampling -> multi-domain
SFT, and the teacher's data -> student distillation (SFT, + logit KD) and the student's own RL.

The tiny Countdown problems use numbers 1-2 (16 train problems) and the short "plain" template,
so the tiny cold-start model learns them in seconds and rejection sampling has correct samples to keep.
"""

from __future__ import annotations

import json
import math
import os

import pytest
import sft_runs

from r1jax import rewards
from r1jax.data import cold_start, sft_format

pytestmark = pytest.mark.slow


def _json(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = str(tmp_path_factory.getbasetemp() / "sft_chain")
    os.makedirs(root, exist_ok=True)
    sft_runs.tiny_base(root)
    r1_zero = os.path.join(
        root, "r1_zero"
    )  # the cold-start data's source, as the experiments name it
    if not os.path.exists(os.path.join(r1_zero, "checkpoints")):
        sft_runs.ok(
            sft_runs.run(
                "experiments/r1_zero_countdown.py:tiny,steps=1",
                r1_zero,
                "--config.eval.every_steps=0",
                "--config.eval.final=False",
            )
        )
    return root


def _finite(rows: list[dict]) -> None:
    for r in rows:
        for k, v in r.items():
            assert isinstance(v, int | float) and math.isfinite(v), (r["step"], k, v)


def test_cold_start_sft(root):
    wd = os.path.join(root, "cold_start_sft")
    sft_runs.ok(sft_runs.run("experiments/cold_start_sft.py:tiny", wd))
    stats = _json(os.path.join(root, "cold_start_data", "stats.json"))
    records = sft_format.read(os.path.join(root, "cold_start_data"))
    give_ups = sum("give up" in r["completion"] for r in records if r["source"] == "hand_designed")
    designed = [r for r in records if r["source"] == "hand_designed"]
    near = sum(cold_start.near_misses(r["completion"]) > 0 for r in designed)
    assert stats["designed"] == {
        "countdown": 16,
        "countdown_give_up": give_ups,
        "countdown_near_miss": near,
        "arithmetic": 4,
    }
    assert stats["r1_zero"]["samples"] == 8  # 4 prompts x 2 samples from the tiny R1-Zero
    rows = sft_runs.rows(wd)
    _finite(rows)
    assert rows[-1]["loss"] < 0.3 * rows[0]["loss"]
    assert "eval_countdown_readable_rate" in rows[0] and "eval_countdown_pass@1" in rows[-1]
    table = open(os.path.join(wd, "eval.md")).read()
    assert "before/countdown" in table and "after/countdown" in table
    for f in ("tokenizer.model", "model_config.json", "plots/sft.png", "eval_after.json"):
        assert os.path.exists(os.path.join(wd, f)), f


def test_reasoning_rl(root):
    wd = os.path.join(root, "reasoning_rl")
    sft_runs.ok(sft_runs.run("experiments/reasoning_rl.py:tiny", wd))
    rows = sft_runs.rows(wd)
    assert [r["step"] for r in rows] == [0, 1]
    for key in ("reward_readable_format_mean", "reward_language_consistency_en_mean", "accuracy"):
        assert key in rows[0], key
    summary = _json(os.path.join(wd, "final_eval.json"))["summary"]
    assert 0.0 <= summary["readable_rate"] <= 1.0


def test_rejection_sampling_keeps_the_verified_samples_and_the_mix(root):
    wd = os.path.join(root, "rejection_sampling")
    sft_runs.ok(sft_runs.run("experiments/rejection_sampling.py:tiny", wd))
    stats = _json(os.path.join(wd, "stats.json"))
    records = sft_format.read(wd)
    reasoning = [r for r in records if r["source"] == "rejection_sampled"]
    general = [r for r in records if r["source"] == "general_reference"]
    assert len(reasoning) == stats["kept_reasoning"] > 0
    assert len(general) == stats["kept_general"] == round(len(reasoning) / 3)
    with open(os.path.join(wd, "samples.jsonl")) as f:
        samples = [json.loads(line) for line in f]
    assert len(samples) == stats["samples"] == 16 * 4
    kept = [s for s in samples if s["removed_by"] is None]
    assert [s["text"] for s in kept] == [r["completion"] for r in reasoning]
    verifier = rewards.build(["countdown_accuracy"])[0]
    verdicts = verifier([r["completion"] for r in reasoning], reasoning)
    assert verdicts.tolist() == [1.0] * len(reasoning)  # every kept sample verifies
    assert all(s["correct"] or s["removed_by"] == "correct" for s in samples)
    assert sum(stats["removed"].values()) + len(kept) == len(samples)
    assert os.path.exists(os.path.join(wd, "plots", "rejection_sampling.png"))
    # the same workdir with another config: refused, nothing overwritten
    p = sft_runs.run("experiments/rejection_sampling.py:tiny,seed=1", wd)
    assert p.returncode == 2 and "holds the data set of a different run (config.seed" in p.stderr
    assert sft_format.read(wd) == records


def test_multi_domain_sft(root):
    wd = os.path.join(root, "multi_domain_sft")
    sft_runs.ok(sft_runs.run("experiments/multi_domain_sft.py:tiny", wd))
    after = _json(os.path.join(wd, "eval_after.json"))["summary"]
    assert set(after) == {"countdown", "general"}
    _finite(sft_runs.rows(wd))


def test_student_rl_is_grpo_from_the_student_base():
    """mode=rl (b) is the GRPO stage, tested by test_grpo_step.py; here: it starts from the student."""
    from r1jax import config_base

    c = config_base.sibling(sft_runs.ROOT + "/experiments/x.py", "distill_student").get_config(
        "tiny,mode=rl"
    )
    assert c.stage == "grpo" and c.init.checkpoint == "student_base"
    assert c.init.pretrain.model.d_model == 16


@pytest.mark.parametrize("mode", ["sft", "kd"])
def test_distill_student(root, mode):
    wd = os.path.join(root, f"distill_{mode}")
    sft_runs.ok(sft_runs.run(f"experiments/distill_student.py:tiny,mode={mode}", wd))
    assert _json(os.path.join(wd, "model_config.json"))["d_model"] == 16  # the student's shape
    rows = sft_runs.rows(wd)
    _finite(rows)
    if mode == "kd":
        assert all(r["kd"] > 0 for r in rows)
        assert rows[-1]["loss"] == pytest.approx(0.5 * rows[-1]["nll"] + 0.5 * rows[-1]["kd"])
    if mode == "sft":
        assert all(r["kd"] == 0 for r in rows)
        stats = _json(os.path.join(root, "rejection_sampling", "stats.json"))
        assert stats["record_topk"] == 8
