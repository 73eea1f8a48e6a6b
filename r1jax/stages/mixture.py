"""The prompt mixture of all-scenario RL: which source each group comes from, and per-source metrics.

Every group (one prompt and its G samples) is drawn from one source. The source of the prompt at
global data position p is a weighted draw seeded by (seed, p), and the prompt is position p of that
source's own seeded epoch order, so the whole stream is a pure function of (seed, position): the
data position in the checkpoint is still all a resumed run needs, as on the single-task path. A
source sees distinct prompts within each of its epochs (positions that go to other sources are
skipped, not repeated).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from r1jax.data.prompts import PromptStream
from r1jax.rl import step as step_lib
from r1jax.rl.routing import SOURCE_KEY
from r1jax.stages.mixture_config import Mixture

_SALT = 104729  # keeps the source draws independent of the sources' own epoch orders


class MixtureStream:
    """`take(position, n)` like PromptStream, each example tagged with its source."""

    def __init__(self, examples: dict[str, Sequence[dict]], weights: dict[str, float], seed: int):
        self.names = list(examples)
        for name in self.names:
            if not examples[name]:
                raise ValueError(f"mixture source {name!r} has an empty train split")
        self.streams = {k: PromptStream(v, seed) for k, v in examples.items()}
        w = np.asarray([weights[k] for k in self.names], np.float64)
        self.cum = np.cumsum(w / w.sum())
        self.seed = seed

    def source_at(self, position: int) -> str:
        u = np.random.default_rng([self.seed, _SALT, position]).random()
        return self.names[min(int(np.searchsorted(self.cum, u, side="right")), len(self.names) - 1)]

    def take(self, position: int, n: int) -> list[dict]:
        out = []
        for p in range(position, position + n):
            name = self.source_at(p)
            ex = self.streams[name].take(p, 1)[0]
            out.append(dict(ex, **{SOURCE_KEY: name}))
        return out


def stream(mix: Mixture, examples: dict[str, Sequence[dict]], seed: int) -> MixtureStream:
    return MixtureStream(examples, {s.source: s.weight for s in mix.specs}, seed)


def source_metrics(mix: Mixture, rollouts: step_lib.Rollouts, group_size: int) -> dict:
    """Per source s: `s_groups`, `s_reward` (the update's weighted total), `s_accuracy` (its task's
    accuracy reward, when the source uses it) and `s_<reward>_mean` for each of its rewards."""
    r = rollouts.rewards_NxR
    names = [ex[SOURCE_KEY] for ex in rollouts.examples for _ in range(group_size)]
    w = np.asarray([fn.weight for fn in mix.rewards], np.float32)
    m = {}
    for i, spec in enumerate(mix.specs):
        s = spec.source
        rows = np.asarray([n == s for n in names])
        m[f"{s}_groups"] = int(rows.sum()) // group_size
        if not rows.any():
            continue
        cols = np.flatnonzero(mix.routing.use_SxR[i])
        wc = cols[w[cols] != 0]
        total = (r[rows][:, wc] * w[wc][None]).sum(axis=1)
        if np.isfinite(total).any():
            m[f"{s}_reward"] = float(np.nanmean(total))
        for j in cols:
            col = r[rows, j]
            if np.isfinite(col).any():
                m[f"{s}_{mix.rewards[j].name}_mean"] = float(np.nanmean(col))
        acc = mix.accuracy_cols[s]
        if acc is not None:
            m[f"{s}_accuracy"] = float(np.mean(r[rows, acc] >= 1.0))
    return m
