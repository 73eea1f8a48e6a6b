"""Replay for reward-model updates during RL: oracle-labelled pairs of the policy's own samples.

DeepSeekMath's iterative RL (which R1 follows) keeps training the reward model as the policy moves,
on new preference data from the policy's samples plus a share (10 %) of historical data, so the
reward model keeps up with what the policy now writes without forgetting what it learned. Here:

- `label_groups`: each group's G responses to one prompt are scored by the oracle (rewards/
  oracle.py, the stand-in annotator the policy never sees) and turned into labelled pairs with
  Bradley-Terry rater noise (data/preference.py `make_pairs`, the same rule as the preference data);
- `ReplayBuffer`: the newest `capacity` historical pairs (host records, checkpointed as JSON);
- `mix_rows`: the rows of one update batch, exactly round(share * n) drawn from the history (when
  there is any) and the rest from the new pairs, each part without replacement while it lasts.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from r1jax.data import preference
from r1jax.rewards import oracle


def label_groups(
    texts_by_group: Sequence[Sequence[str]],
    examples: Sequence[Mapping[str, Any]],
    cfg: preference.PairConfig,
    rng: random.Random,
    step: int,
) -> tuple[list[dict], dict[str, int]]:
    """Labelled pair records ({question, template, chosen, rejected, aspect, ...}) and counts."""
    out, counts = [], {"pairs": 0, "flipped": 0, "near_tie": 0, "duplicate": 0, "empty": 0}
    for texts, ex in zip(texts_by_group, examples, strict=True):
        scores = oracle.score(texts, ex)
        pairs, c = preference.make_pairs(texts, scores, rng, cfg)
        for k in counts:
            counts[k] += c.get(k, 0)
        for p in pairs:
            out.append(dict(p, question=ex["question"], template="", step=step))
    return out, counts


class ReplayBuffer:
    """The newest `capacity` pair records (oldest dropped first)."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"replay buffer capacity {capacity} must be >= 1")
        self.capacity = capacity
        self.records: list[dict] = []

    def add(self, records: Sequence[dict]) -> None:
        self.records = (self.records + list(records))[-self.capacity :]

    def of(self, aspect: str) -> list[dict]:
        return [r for r in self.records if r["aspect"] == aspect]

    def state_dict(self) -> dict:
        return {"capacity": self.capacity, "records": list(self.records)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.capacity = int(state["capacity"])
        self.records = list(state["records"])


def _draw(n_pool: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """k indices into a pool of n_pool: without replacement while the pool lasts, then again."""
    if k == 0:
        return np.zeros(0, np.int64)
    reps = -(-k // n_pool)
    return np.concatenate([rng.permutation(n_pool) for _ in range(reps)])[:k]


def mix_rows(
    n_new: int, n_old: int, n: int, share: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(rows of the new pool, rows of the historical pool) of one n-row batch.

    round(share * n) rows are historical when the history is not empty (all n when there are no
    new pairs); the rest are new. Raises when both pools are empty.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"historical share {share} must be in [0, 1]")
    if n_new + n_old == 0:
        raise ValueError("no pairs to train on (no new and no historical ones)")
    k_old = 0 if n_old == 0 else (n if n_new == 0 else int(round(share * n)))
    return _draw(n_new, n - k_old, rng), _draw(n_old, k_old, rng)
