"""Replay updates of the reward model during RL: the configured historical share, exact resume.

`mix_rows` must put exactly round(share * n) historical rows in every batch (all new rows before
there is any history, all historical when nothing new came in); the buffer keeps the newest pairs.
A tiny reward model (saved as a reward_model stage directory, loaded as the `reward_model` reward)
is trained by the replay on oracle-labelled pairs of hand-written responses; its parameters,
optimizer state, buffer, pending pairs and running statistics are saved through the checkpointer
(items + JSON meta, as the GRPO stage saves them) and restored into a fresh replay, and the next
update of both must give bit-identical parameters.
"""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
import rm_dirs

from r1jax import rewards
from r1jax.rewards.registry import Reward
from r1jax.rl import replay as replay_lib
from r1jax.rl import routing
from r1jax.stages import mixture_config, rm_replay
from r1jax.train.checkpoint import Checkpointer


@pytest.mark.parametrize("n,share,n_new,n_old,want_old", [
    (20, 0.1, 50, 30, 2), (10, 0.1, 50, 30, 1), (8, 0.25, 3, 100, 2), (8, 0.1, 5, 0, 0),
    (8, 0.1, 0, 4, 8), (16, 0.5, 2, 3, 8),
])  # fmt: skip
def test_batches_keep_the_configured_historical_share(n, share, n_new, n_old, want_old):
    rng = np.random.default_rng(0)
    r_new, r_old = replay_lib.mix_rows(n_new, n_old, n, share, rng)
    assert len(r_old) == want_old and len(r_new) == n - want_old
    assert r_new.max(initial=-1) < n_new and r_old.max(initial=-1) < n_old
    # without replacement while a pool lasts: every row of a small pool is used before repeats
    if len(r_new) >= n_new > 0:
        assert set(r_new[:n_new]) == set(range(n_new))


def test_buffer_keeps_the_newest_pairs():
    buf = replay_lib.ReplayBuffer(5)
    buf.add([{"aspect": "helpfulness", "i": i} for i in range(4)])
    buf.add([{"aspect": "harmlessness", "i": i} for i in range(4, 7)])
    assert [r["i"] for r in buf.records] == [2, 3, 4, 5, 6]
    assert [r["i"] for r in buf.of("harmlessness")] == [4, 5, 6]
    other = replay_lib.ReplayBuffer(1)
    other.load_state_dict(json.loads(json.dumps(buf.state_dict())))
    assert other.records == buf.records and other.capacity == 5


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory, tiny_model_cfg):
    d = str(tmp_path_factory.mktemp("rm"))
    return rm_dirs.tiny_rm_dir(
        d, tiny_model_cfg, max_len=128, on="summary", seed=5, template="plain"
    )


GROUPS = [  # one prompt's responses each: the oracle's helpfulness tells them apart
    ("Reverse the words: red blue green", "green blue red",
     ["<answer>green blue red</answer>", "<answer>green red blue</answer>", "<answer>red</answer>", "no idea"]),
    ("Sort the words: pear fig apple", "apple fig pear",
     ["<think>\nsort\n</think>\n<answer>apple fig pear</answer>", "<answer>fig apple pear</answer>", "<answer>pear</answer>"]),
]  # fmt: skip


def _replay(rm_dir: str) -> rm_replay.Replay:
    fn = rewards.build([f"reward_model(path='{rm_dir}', on='summary')"])[0]
    union, route = routing.build({"general": [fn]}, ["general"])
    spec = mixture_config.SourceSpec("general", "general", {}, 1.0)
    mix = mixture_config.Mixture((spec,), union, route, {"general": None})
    cfg = mixture_config.grpo_defaults().replay
    cfg.update(dict(enabled=True, every_steps=1, rm_steps=2, batch_pairs=8, seq_len=96, lr=1e-3))
    cfg.historical_share = 0.25
    return rm_replay.Replay(cfg, mix, seed=3)


def _label(rp: rm_replay.Replay, step: int) -> None:
    import random

    exs = [{"question": q, "answer": a, "ground_truth": {"ideal": a}} for q, a, _ in GROUPS]
    recs, counts = replay_lib.label_groups([t for _, _, t in GROUPS], exs, rp.pairs, random.Random(step), step)  # fmt: skip
    assert counts["pairs"] == len(recs) > 0
    rp.pending += recs


def rp_rewards(rp: rm_replay.Replay) -> list:
    """The replay's rewards as the stage holds them (Reward objects around the scorers)."""
    return [Reward("reward_model_summary", t.scorer, -5.0, 5.0) for t in rp.trainers]


def _params(rp: rm_replay.Replay) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(rp.trainers[0].state))]


def test_replay_trains_the_reward_and_resumes_exactly(rm_dir, tmp_path):
    rp = _replay(rm_dir)
    first = [np.asarray(x).copy() for x in jax.tree.leaves(jax.device_get(rp.trainers[0].state["params"]))]  # fmt: skip
    _label(rp, 0)
    n_pairs = len(rp.pending)
    m = rp.update(0)
    assert m["replay_helpfulness_historical_rows"] == 0  # no history yet: all new pairs
    assert len(rp.buffer.records) == n_pairs and rp.pending == []
    after = jax.tree.leaves(jax.device_get(rp.trainers[0].state["params"]))
    assert any(not np.array_equal(a, b) for a, b in zip(first, after))
    # the reward scores with the trained parameters
    assert rp.trainers[0].scorer.h.params is rp.trainers[0].state["params"]
    rp.trainers[0].scorer(["<answer>a b</answer>", "x"], [{"question": "Reverse the words: b a"}] * 2)  # fmt: skip
    _label(rp, 1)  # pending pairs at the checkpoint: they must survive it too
    ck = Checkpointer(str(tmp_path / "ck"), tuple(rp.keys), async_save=False)
    rm_fns = rp_rewards(rp)
    ck.save(2, rp.items(), dict(rp.meta(), **rm_replay.reward_states(rm_fns)))
    ck.close()

    fresh = _replay(rm_dir)
    ck = Checkpointer(str(tmp_path / "ck"), tuple(fresh.keys), async_save=False)
    from r1jax.train.checkpoint import abstract_like

    _, items, meta = ck.restore(2, {k: abstract_like(v) for k, v in fresh.items().items()}, False)
    ck.close()
    fresh.restore(items, json.loads(json.dumps(meta)))
    rm_replay.restore_reward_states(rp_rewards(fresh), json.loads(json.dumps(meta)))
    assert rp.trainers[0].scorer.stats["count"] > 0
    assert fresh.buffer.records == rp.buffer.records and fresh.pending == rp.pending
    for a, b in zip(_params(rp), _params(fresh)):
        np.testing.assert_array_equal(a, b)
    for k in ("count", "mean", "m2"):
        np.testing.assert_array_equal(rp.trainers[0].scorer.stats[k], fresh.trainers[0].scorer.stats[k])  # fmt: skip
    m1, m2 = rp.update(1), fresh.update(1)
    assert m1 == m2 and m1["replay_helpfulness_historical_rows"] == 2  # round(0.25 * 8)
    for a, b in zip(_params(rp), _params(fresh)):
        np.testing.assert_array_equal(a, b)


def test_rm_oracle_agreement_by_hand():
    from r1jax.stages.rm_watch import agreement

    # oracle: a > b = c > d (the b-c tie is not counted); the RM swaps a and b: of the 5 pairs the
    # oracle tells apart, (a, b) is ordered the other way, the other 4 agree
    rm = np.array([0.5, 0.9, 0.2, -1.0])
    orc = np.array([1.0, 0.5, 0.5, 0.0])
    assert agreement(rm, orc) == (4, 5)
    assert agreement(rm, np.zeros(4)) == (0, 0)
    assert agreement(-rm, orc) == (1, 5)


def test_watch_metrics_pooled_and_per_source_by_hand():
    from r1jax.stages.rm_watch import summarise

    # two groups of 2: a benign group the RM orders right, a harm group it orders wrong
    orc = {"helpfulness": np.array([0.2, 0.6, 1.0, 0.0], np.float32)}
    raw = {"helpfulness": np.array([-1.0, 1.0, -2.0, np.nan])}
    m = summarise(orc, raw, ["general", "general", "harm", "harm"], 2)
    assert m["eval_oracle_score_helpfulness"] == pytest.approx(0.45)
    assert m["eval_oracle_score_helpfulness_general"] == pytest.approx(0.4)
    assert m["eval_oracle_score_helpfulness_harm"] == pytest.approx(0.5)
    assert m["eval_rm_score_helpfulness"] == pytest.approx(-2 / 3)  # NaN (unreadable) left out
    assert m["eval_rm_score_helpfulness_general"] == 0.0
    assert m["eval_rm_score_helpfulness_harm"] == -2.0
    assert m["eval_rm_agreement_helpfulness_general"] == 1.0
    assert "eval_rm_agreement_helpfulness_harm" not in m  # its one pair has a NaN score
    assert m["eval_rm_agreement_helpfulness"] == 1.0
    raw["helpfulness"][3] = 5.0  # now the harm pair is ordered the wrong way
    m = summarise(orc, raw, ["general", "general", "harm", "harm"], 2)
    assert m["eval_rm_agreement_helpfulness_harm"] == 0.0
    assert m["eval_rm_agreement_helpfulness"] == 0.5
