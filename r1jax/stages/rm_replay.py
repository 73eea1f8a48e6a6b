"""Reward models trained with replay during all-scenario RL, and their checkpointed state.

Every step, the groups of the configured sources (`config.replay.sources`) are labelled by the oracle
into pairs (rl/replay.py) and held as pending. Every `replay.every_steps` steps, each reward model in
the step's rewards (`reward_model(...)`, which learns the aspect in its rm_info.json) takes
`replay.rm_steps` Bradley-Terry steps (train/rm_step.py) on batches of `replay.batch_pairs` pairs,
`replay.historical_share` of them from the replay buffer and the rest from the pending pairs; the
pending pairs then join the buffer. The scoring reward reads the updated parameters at once.

Exact resume: each reward model's {params, opt_state, step} is an item of the run's checkpoint
(`replay_rm<i>`), and the buffer and the pending pairs are in the checkpoint's meta (JSON), beside
every stateful reward's state (`reward_states`: a reward model's running statistics, with or without
replay); every random draw is seeded by (seed, step), never by a global stream.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np

from r1jax import config_check
from r1jax.data import preference, preference_batches
from r1jax.parallel import rows as rows_lib
from r1jax.rewards.registry import Reward
from r1jax.rewards.reward_model import RewardModelScorer
from r1jax.rl import replay as replay_lib
from r1jax.rl import step as step_lib
from r1jax.rl.routing import SOURCE_KEY
from r1jax.stages.mixture_config import Mixture, option
from r1jax.train import lm_step, optim, rm_step


@dataclasses.dataclass
class RMTrainer:
    """One reward model of the step's rewards, with its optimizer state and compiled BT step."""

    scorer: RewardModelScorer
    aspect: str
    state: dict
    step_fn: Callable

    @classmethod
    def build(cls, scorer: RewardModelScorer, lr: float) -> RMTrainer:
        h = scorer.h
        ocfg = optim.OptimizerConfig(lr=lr, warmup_steps=0, schedule="constant", weight_decay=0.0)
        tx, lr_fn = optim.make(ocfg, 1)
        pshard = jax.tree.map(lambda x: x.sharding, h.params)
        state, sshard = lm_step.init_state(h.graphdef, h.params, pshard, tx, h.mesh)
        with jax.set_mesh(h.mesh):
            fn = rm_step.make_train_step(
                h.graphdef, tx, lr_fn, 1, sshard, rm_step.batch_shardings(h.mesh, h.rules)
            )
        return cls(scorer, h.info.get("aspect", "helpfulness"), state, fn)

    def set_state(self, state: dict) -> None:
        self.state = state
        self.scorer.h.params = state["params"]  # the reward scores with the new parameters

    def train(self, batch: dict) -> dict:
        h = self.scorer.h
        # every process holds the same whole batch (same pairs, same seeded draws): each feeds
        # only its own block of rows, as the reward_model stage does
        lo, hi = rows_lib.process_rows(len(batch["margin"]), h.mesh, h.rules)
        put = {k: rows_lib.global_batch(v[lo:hi], h.mesh, h.rules) for k, v in batch.items()}
        with jax.set_mesh(h.mesh):
            state, m = self.step_fn(self.state, put)
        self.set_state(state)  # the step donated the old state (and the scorer's old params)
        return jax.device_get(m)


class Replay:
    """The reward models' replay updates: pending pairs, buffer, trainers and their checkpoint."""

    def __init__(self, cfg: ml_collections.ConfigDict, mix: Mixture, seed: int):
        self.cfg, self.seed = cfg, seed
        scorers = [f.fn for f in mix.rewards if isinstance(f.fn, RewardModelScorer)]
        self.trainers = [RMTrainer.build(s, cfg.lr) for s in scorers]
        self.sources = tuple(cfg.sources)
        self.pairs = preference.PairConfig(
            aspects=tuple(sorted({t.aspect for t in self.trainers})) or preference.ASPECTS,
            min_gap=cfg.min_gap,
            temperature=cfg.label_temperature,
            max_pairs_per_prompt=cfg.max_pairs_per_prompt,
        )
        self.buffer = replay_lib.ReplayBuffer(cfg.buffer_pairs)
        self.pending: list[dict] = []

    @property
    def keys(self) -> list[str]:
        return [f"replay_rm{i}" for i in range(len(self.trainers))]

    def items(self) -> dict:
        return {k: t.state for k, t in zip(self.keys, self.trainers)}

    def meta(self) -> dict:
        return {"replay": {"buffer": self.buffer.state_dict(), "pending": self.pending}}

    def restore(self, state: dict, meta: dict | None) -> None:
        for k, t in zip(self.keys, self.trainers):
            t.set_state(state[k])
        if meta and "replay" in meta:
            r = meta["replay"]
            self.buffer.load_state_dict(r["buffer"])
            self.pending = list(r["pending"])

    def observe(self, step: int, rollouts: step_lib.Rollouts, ctx: step_lib.StepContext) -> dict:
        """Labels this step's groups of the replay sources into pending pairs."""
        g = ctx.group_size
        picked = [i for i, ex in enumerate(rollouts.examples) if ex[SOURCE_KEY] in self.sources]
        if not picked:
            return {"replay_new_pairs": 0}
        rows = [i * g + j for i in picked for j in range(g)]
        toks, mask = (rows_lib.pick_rows(x, rows) for x in (rollouts.tokens_NxT, rollouts.mask_NxT))
        texts = step_lib.decode_rows(ctx.tokenizer, toks, mask)
        groups = [texts[k * g : (k + 1) * g] for k in range(len(picked))]
        rng = random.Random(f"replay-{self.seed}-{step}")
        exs = [rollouts.examples[i] for i in picked]
        recs, counts = replay_lib.label_groups(groups, exs, self.pairs, rng, step)
        self.pending += recs
        return {"replay_new_pairs": len(recs), "replay_label_flipped": counts["flipped"]}

    def update(self, step: int) -> dict:
        """Every `every_steps` steps: M Bradley-Terry steps per reward model, then buffer <- pending."""
        if (step + 1) % self.cfg.every_steps:
            return {}
        m: dict[str, Any] = {"replay_pending_pairs": len(self.pending)}
        for idx, t in enumerate(self.trainers):
            h = t.scorer.h
            pools = [
                preference_batches.encode_pairs(
                    [r for r in recs if r["aspect"] == t.aspect],
                    h.tokenizer, t.scorer.on, self.cfg.seq_len, t.scorer.template,
                )[0]
                for recs in (self.pending, self.buffer.records)
            ]  # fmt: skip
            new, old = pools
            if not new.records and not old.records:
                m[f"replay_{t.aspect}_skipped"] = 1
                continue
            got = []
            for k in range(self.cfg.rm_steps):
                rng = np.random.default_rng([self.seed, step, idx, k])
                r_new, r_old = replay_lib.mix_rows(
                    len(new.records), len(old.records), self.cfg.batch_pairs,
                    self.cfg.historical_share, rng,
                )  # fmt: skip
                parts = [preference_batches.batch(p, r, 0.0) for p, r in ((new, r_new), (old, r_old)) if len(r)]  # fmt: skip
                batch = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
                got.append(t.train(batch))
            m[f"replay_{t.aspect}_loss"] = float(np.mean([x["loss"] for x in got]))
            m[f"replay_{t.aspect}_accuracy"] = float(np.mean([x["accuracy"] for x in got]))
            m[f"replay_{t.aspect}_historical_rows"] = int(len(r_old))
        self.buffer.add(self.pending)
        self.pending = []
        m["replay_buffer_pairs"] = len(self.buffer.records)
        return m


def reward_states(rewards: Sequence[Reward]) -> dict:
    """The rewards' own state for the checkpoint meta (a reward model's running statistics), by
    column; {} when no reward has state (the meta of such a run is unchanged)."""
    states = {
        str(j): {k: np.asarray(v).tolist() for k, v in f.fn.state_dict().items()}
        for j, f in enumerate(rewards)
        if hasattr(f.fn, "state_dict")
    }
    return {"reward_states": states} if states else {}


def restore_reward_states(rewards: Sequence[Reward], meta: dict | None) -> None:
    """Puts `reward_states` back (a resumed run normalises exactly as an uninterrupted one)."""
    for j, state in ((meta or {}).get("reward_states") or {}).items():
        rewards[int(j)].fn.load_state_dict({k: np.asarray(v, np.float32) for k, v in state.items()})


def build(config: ml_collections.ConfigDict, mix: Mixture | None) -> Replay | None:
    cfg = option(config, "replay")
    if mix is None or not cfg.enabled:
        return None
    if not any(isinstance(f.fn, RewardModelScorer) for f in mix.rewards):
        raise config_check.ConfigError(
            "config.replay.enabled trains reward models, but no source has a reward_model(...) "
            "reward in config.rewards_by_source; add one or set replay.enabled=False."
        )
    return Replay(cfg, mix, config.seed)
