"""DAPO dynamic sampling: drop groups whose rewards are all equal and sample more prompts instead.

A group with zero reward variance has advantage 0 everywhere and contributes no gradient; at low or
high accuracy most groups are like that. The sampler keeps drawing fresh prompts (a bounded number of
extra rounds) until the batch holds `prompts_per_step` groups with signal; if the rounds run out, the
batch is completed with zero-variance groups (which still carry the KL term) and that is counted.
Weight-0 rewards are diagnostics and do not count as signal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import numpy as np

from r1jax.data import prompts as prompts_lib
from r1jax.parallel import rows as rows_lib
from r1jax.rl import step as step_lib


@dataclasses.dataclass(frozen=True)
class DynamicConfig:
    prompts_per_step: int
    max_resample_rounds: int = 3


# (examples) -> Prompts: encodes B examples into global prompt arrays (the stage's encoder)
Encoder = Callable[[list[dict]], step_lib.Prompts]


class DynamicSampler:
    """Collects one step's rollouts from as many rounds of fresh prompts as it takes."""

    def __init__(
        self,
        cfg: DynamicConfig,
        ctx: step_lib.StepContext,
        stream: prompts_lib.PromptStream,
        encode: Encoder,
    ):
        self.cfg, self.ctx, self.stream, self.encode = cfg, ctx, stream, encode
        w = np.array([f.weight for f in ctx.rewards], np.float32)
        self.cols = np.flatnonzero(w != 0)
        self.weights = w[self.cols]

    def collect(self, params, position: int, key: jax.Array) -> tuple[step_lib.Rollouts, dict, int]:
        """(rollouts of `prompts_per_step` groups, info metrics, the new data position)."""
        b, g = self.cfg.prompts_per_step, self.ctx.group_size
        kept, spare, rounds, sampled = [], [], 0, 0
        while len(kept) < b and rounds <= self.cfg.max_resample_rounds:
            examples = self.stream.take(position, b)
            position += b
            prompts = self.encode(examples)
            out = step_lib.sample(self.ctx, params, prompts, jax.random.fold_in(key, rounds))
            r = step_lib.score(self.ctx, prompts, out)
            total = (r.rewards_NxR[:, self.cols] * self.weights[None]).sum(axis=1)
            total = np.nan_to_num(total, nan=0.0).reshape(b, g)
            signal = total.max(axis=1) > total.min(axis=1)
            # the kept groups are re-batched on the host, so this round's rows are gathered
            # (rewards were already scored per process by step.score)
            ids, valid, toks, mask, logp = (
                rows_lib.gather_rows(x)
                for x in (
                    prompts.ids_BxP,
                    prompts.valid_BxP,
                    r.tokens_NxT,
                    r.mask_NxT,
                    r.batch["old_logp_NxT"],
                )
            )
            for i in range(b):
                rows = slice(i * g, (i + 1) * g)
                item = (r.examples[i], ids[i], valid[i], _group(r, toks, mask, logp, rows))
                (kept if signal[i] else spare).append(item)
            rounds += 1
            sampled += b
        filled = max(0, b - len(kept))
        chosen = (kept + spare[:filled])[:b]
        info = {
            "dynamic_rounds": rounds,
            "dynamic_groups_with_signal_frac": len(kept) / sampled,
            "dynamic_filled_zero_std": filled,
        }
        return self._assemble(chosen), info, position

    def _assemble(self, chosen: list) -> step_lib.Rollouts:
        pad = self.ctx.tokenizer.pad_id
        width = max(len(ids) for _, ids, _, _ in chosen)
        prompt = np.stack(
            [np.pad(ids, (width - len(ids), 0), constant_values=pad) for _, ids, _, _ in chosen]
        )
        valid = np.stack([np.pad(v, (width - len(v), 0)) for _, _, v, _ in chosen])
        host = {k: np.concatenate([c[3][k] for c in chosen]) for k in chosen[0][3]}
        put = lambda x: rows_lib.global_from_host(x, self.ctx.mesh, self.ctx.rules)  # noqa: E731
        batch = {
            "prompt": put(prompt),
            "prompt_valid": put(valid),
            "completion": put(host["tokens"]),
            "mask_NxT": put(host["mask"]),
            "old_logp_NxT": put(host["logp"]),
            "rewards_NxR": put(host["rewards"]),
            "truncated_N": put(host["truncated"]),
        }
        return step_lib.Rollouts(
            batch,
            [c[0] for c in chosen],
            host["rewards"],
            host["tokens"],
            host["mask"],
            host["lengths"],
            host["truncated"],
        )


def _group(
    r: step_lib.Rollouts, toks: np.ndarray, mask: np.ndarray, logp: np.ndarray, rows: slice
) -> dict:
    """One prompt's G rollouts as host arrays."""
    return {
        "tokens": toks[rows],
        "mask": mask[rows],
        "logp": logp[rows],
        "rewards": r.rewards_NxR[rows],
        "truncated": r.truncated_N[rows],
        "lengths": r.lengths_N[rows],
    }
