"""Per-source reward routing: each rollout is scored only by the rewards of its prompt's source.

Letters: N rollouts, R reward columns (the union of every source's rewards), S sources.

All-scenario RL (R1 section 2.3.4) mixes prompt sources in one batch: reasoning prompts keep their
rule rewards, general prompts are judged by reward models. The reward columns are the union of the
sources' reward lists; `use_SxR[s, j]` says whether source s uses column j. A column a row's source
does not use is never computed for that row (a Countdown verifier has nothing to say about a
general-task answer, and scoring reasoning rows with a reward model would only cost time and bend
its running statistics) and holds NaN in the logged matrix. For the update those cells become 0, so
a row's weighted total is the sum of its own rewards; a NaN from a reward the row DOES use (an
unscorable completion) stays NaN and gives the rollout advantage 0, as on the single-task path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from r1jax.rewards.registry import Reward

SOURCE_KEY = "mixture_source"  # the example field naming the source a prompt was drawn from


@dataclasses.dataclass(frozen=True)
class Routing:
    sources: tuple[str, ...]
    use_SxR: np.ndarray  # bool [S, R]

    def mask(self, examples: Sequence[dict]) -> np.ndarray:
        """bool [N, R]: which reward columns each row's source uses."""
        idx = [self.sources.index(ex[SOURCE_KEY]) for ex in examples]
        return self.use_SxR[np.asarray(idx, np.int64)]

    def host_rewards(
        self,
        rewards: Sequence[Reward],
        texts: Sequence[str],
        examples: Sequence[dict],
        lengths: np.ndarray,
    ) -> np.ndarray:
        """float32 [N, R]: each column computed on the rows that use it, NaN elsewhere."""
        use = self.mask(examples)
        exs = [dict(ex, _completion_tokens=int(n)) for ex, n in zip(examples, lengths)]
        out = np.full((len(texts), len(rewards)), np.nan, np.float32)
        for j, fn in enumerate(rewards):
            rows = np.flatnonzero(use[:, j])
            if rows.size:
                out[rows, j] = fn([texts[i] for i in rows], [exs[i] for i in rows])
        return out

    def for_update(self, rewards_NxR: np.ndarray, examples: Sequence[dict]) -> np.ndarray:
        """The update's rewards: unused cells 0 (they add nothing to the weighted total)."""
        return np.where(self.mask(examples), rewards_NxR, 0.0).astype(np.float32)


def build(
    by_source: dict[str, Sequence[Reward]], sources: Sequence[str]
) -> tuple[list[Reward], Routing]:
    """(the union of the rewards in first-seen order, the routing of `sources` onto it).

    Rewards are matched by identity (build each spec once and hand the same `Reward` to every
    source that names it: one column, computed once for the rows of all of them); a source
    without rewards is an error.
    """
    union: list[Reward] = []
    cols: dict[str, list[int]] = {}
    for s in sources:
        if not by_source.get(s):
            raise ValueError(f"source {s!r} has no rewards")
        cols[s] = []
        for fn in by_source[s]:
            j = next((k for k, u in enumerate(union) if u is fn), None)
            if j is None:
                j = len(union)
                union.append(fn)
            cols[s].append(j)
    use = np.zeros((len(sources), len(union)), bool)
    for i, s in enumerate(sources):
        use[i, cols[s]] = True
    return union, Routing(tuple(sources), use)
