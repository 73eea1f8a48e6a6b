"""One GRPO step, fused or split at the reward boundary, with its phases timed.

Shared by the GRPO stage and the benchmarks. On the split path the rollouts are gathered to the
host, decoded and scored there, and cut to the longest completion before the update.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from r1jax.parallel import distributed
from r1jax.parallel.distributed import gather_rows
from r1jax.rewards.registry import Reward
from r1jax.rl import rollout, train_step


def decode_rows(tok: Any, tokens_NxT: np.ndarray, mask_NxT: np.ndarray) -> list[str]:
    return [tok.decode(t[m]) for t, m in zip(tokens_NxT, mask_NxT)]


def split_step_metrics(
    fns: rollout.StepFns,
    fused: bool,
    state: dict,
    ids,
    valid,
    key,
    reward_fns: Sequence[Reward],
    tok: Any,
    group_examples: list[dict],
    mesh: Any,
    rules: Any,
    ucfg: train_step.UpdateConfig,
    length_bucket: int = 0,
):
    """Runs one step; returns (state, metrics, sample output, host rewards [N, R], phase times).

    On the split path the rollouts are cut to the longest completion rounded up to
    `length_bucket` tokens before the update (0 = keep max_new_tokens): the update's cost then
    follows the lengths the policy actually writes, at one compiled program per bucket.
    """
    t0 = time.perf_counter()
    if fused:
        targets = rollout.jax_targets(reward_fns, group_examples, tok)
        targets = jax.tree.map(
            lambda a: distributed.global_batch(a[_rows(a)], mesh, rules), targets
        )
        with jax.set_mesh(mesh):
            state, m, out, r = fns.fused(state, ids, valid, key, targets)
        m = jax.device_get(m)
        r_host = gather_rows(r)
        return state, dict(m, fused=1), out, r_host, (0.0, 0.0, time.perf_counter() - t0)
    with jax.set_mesh(mesh):
        out = fns.sample(state["params"], ids, valid, key)
    toks, mask, lengths = (gather_rows(x) for x in (out.tokens_NxT, out.mask_NxT, out.lengths_N))
    t1 = time.perf_counter()
    texts = decode_rows(tok, toks, mask)
    r_host = rollout.host_rewards(reward_fns, texts, group_examples, lengths)
    r_dev = distributed.global_batch(r_host[_rows(r_host)], mesh, rules)
    t2 = time.perf_counter()
    batch = trim(rollout.rollout_batch(ids, valid, out, r_dev), int(lengths.max()), length_bucket)
    with jax.set_mesh(mesh):
        state, m = fns.update(state, batch)
    m = jax.device_get(m)
    return state, dict(m, fused=0), out, r_host, (t1 - t0, t2 - t1, time.perf_counter() - t2)


def trim(batch: dict, longest: int, bucket: int) -> dict:
    """The rollout batch cut to `longest` completion tokens rounded up to a multiple of `bucket`."""
    t = batch["completion"].shape[1]
    if bucket <= 0:
        return batch
    keep = min(t, max(bucket, -(-longest // bucket) * bucket))
    if keep == t:
        return batch
    cut = ("completion", "mask_NxT", "old_logp_NxT")
    return {k: (v[:, :keep] if k in cut else v) for k, v in batch.items()}


def _rows(a: np.ndarray) -> slice:
    """This process's rows of a global [N, ...] host array."""
    start, stop = distributed.process_rows(a.shape[0])
    return slice(start, stop)
