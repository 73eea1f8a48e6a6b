"""DAPO dynamic sampling: drop groups whose rewards are all equal and sample more prompts instead.

A group with zero reward variance has advantage 0 everywhere and contributes no gradient; at low or
high accuracy most groups are like that. The sampler keeps drawing fresh prompts (a bounded number of
extra rounds) until the batch holds `prompts_per_step` groups with signal; if the rounds run out, the
batch is completed with zero-variance groups (which still carry the KL term) and that is counted.
"""

from __future__ import annotations

import types
from typing import Any

import jax
import numpy as np

from r1jax.data import prompts as prompts_lib
from r1jax.parallel import distributed
from r1jax.parallel.distributed import gather_rows
from r1jax.rl import rollout
from r1jax.rl.step import decode_rows


class DynamicSampler:
    def __init__(
        self,
        config,
        fns: rollout.StepFns,
        reward_fns,
        tok,
        stream: prompts_lib.PromptStream,
        mesh: Any,
        rules: Any,
        rows: tuple[int, int],
    ):
        self.c = config.rl
        self.template = config.task.template
        self.fns, self.reward_fns, self.tok, self.stream = fns, reward_fns, tok, stream
        self.mesh, self.rules, self.rows = mesh, rules, rows
        self.weights = np.array([f.weight for f in reward_fns], np.float32)

    def _round(self, params, examples, key):
        ids, valid = prompts_lib.encode_batch(
            self.tok, self.template, examples, self.c.prompt_bucket
        )
        g_ids, g_valid = (
            distributed.global_batch(x[slice(*self.rows)], self.mesh, self.rules)
            for x in (ids, valid)
        )
        with jax.set_mesh(self.mesh):
            out = self.fns.sample(params, g_ids, g_valid, key)
        arrays = {
            k: gather_rows(getattr(out, k))
            for k in ("tokens_NxT", "mask_NxT", "logp_NxT", "truncated_N", "lengths_N")
        }
        group_ex = [ex for ex in examples for _ in range(self.c.group_size)]
        texts = decode_rows(self.tok, arrays["tokens_NxT"], arrays["mask_NxT"])
        r = rollout.host_rewards(self.reward_fns, texts, group_ex, arrays["lengths_N"])
        return ids, valid, arrays, r

    def collect(self, params, position: int, key):
        b, g = self.c.prompts_per_step, self.c.group_size
        kept, spare, rounds, sampled = [], [], 0, 0
        while len(kept) < b and rounds <= self.c.max_resample_rounds:
            examples = self.stream.take(position, b)
            position += b
            ids, valid, arrays, r = self._round(params, examples, jax.random.fold_in(key, rounds))
            total = np.nan_to_num((r * self.weights[None]).sum(axis=1), nan=0.0).reshape(b, g)
            signal = total.max(axis=1) > total.min(axis=1)
            for i in range(b):
                item = (
                    examples[i],
                    ids[i],
                    valid[i],
                    {k: v[i * g : (i + 1) * g] for k, v in arrays.items()},
                    r[i * g : (i + 1) * g],
                )
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
        return (*self._assemble(chosen), info, position)

    def _assemble(self, chosen):
        width = max(len(ids) for _, ids, _, _, _ in chosen)
        prompt = np.stack(
            [
                np.pad(ids, (width - len(ids), 0), constant_values=self.tok.pad_id)
                for _, ids, _, _, _ in chosen
            ]
        )
        valid = np.stack([np.pad(v, (width - len(v), 0)) for _, _, v, _, _ in chosen])
        arrays = {k: np.concatenate([a[k] for _, _, _, a, _ in chosen]) for k in chosen[0][3]}
        r = np.concatenate([x[4] for x in chosen])
        put = lambda x, n=None: distributed.global_batch(  # noqa: E731
            x[slice(*self._scaled(self.rows, n))], self.mesh, self.rules
        )
        g = self.c.group_size
        batch = {
            "prompt": put(prompt),
            "prompt_valid": put(valid),
            "completion": put(arrays["tokens_NxT"], g),
            "mask_NxT": put(arrays["mask_NxT"], g),
            "old_logp_NxT": put(arrays["logp_NxT"], g),
            "rewards_NxR": put(r, g),
            "truncated_N": put(arrays["truncated_N"], g),
        }
        out = types.SimpleNamespace(
            lengths_N=arrays["lengths_N"], truncated_N=arrays["truncated_N"]
        )
        return batch, [c[0] for c in chosen], out, r

    @staticmethod
    def _scaled(rows: tuple[int, int], g: int | None) -> tuple[int, int]:
        return rows if g is None else (rows[0] * g, rows[1] * g)
