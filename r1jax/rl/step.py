"""One GRPO step over named pieces: prompts -> rollouts (sampled and scored) -> update.

Letters: B prompts, G samples each, N = B * G, P prompt length, T completion length, R rewards.

Two paths give the same numbers for the same key (tests/test_rewards_jax.py):
- split: `sample` (one jit) -> `score` (host rewards on decoded text) -> `update` (one jit); the
  rollouts are cut to the longest completion rounded up to `length_bucket` tokens before the update,
  so its cost follows the lengths the policy writes, at one compiled program per bucket;
- fused: when every reward is jittable, sampling, rewards, advantages and the update are ONE program.
Shared by the GRPO stage, dynamic sampling and the benchmarks.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from r1jax.parallel import rows as rows_lib
from r1jax.parallel import sharding
from r1jax.rewards.registry import Reward
from r1jax.rl import rollout
from r1jax.sampling.sample import SampleOutput


@dataclasses.dataclass(frozen=True)
class StepContext:
    """Everything a step needs besides the train state (built once per run)."""

    fns: rollout.StepFns
    fused: bool
    rewards: Sequence[Reward]
    tokenizer: Any
    mesh: Any
    rules: Any
    group_size: int
    length_bucket: int = 0
    route: Any = None  # a routing.Routing: each row scored only by its source's rewards
    compile_ahead: bool = True  # split path: compile the update while the sampler runs


@dataclasses.dataclass(frozen=True)
class Prompts:
    """One step's prompts: global [B, P] arrays (left padded) and the B examples they encode."""

    ids_BxP: jax.Array
    valid_BxP: jax.Array
    examples: list[dict]

    def grouped(self, g: int) -> list[dict]:
        """The N = B * G examples, one per rollout, grouped by prompt."""
        return [ex for ex in self.examples for _ in range(g)]


@dataclasses.dataclass
class Rollouts:
    """Scored rollouts: `batch` is what `train_step.update` takes (device arrays). Rewards, lengths
    and truncation are host arrays of the whole global batch on every process (small: for metrics
    and dynamic sampling); tokens and mask stay global device arrays (`rows.pick_rows` fetches the
    few that are logged), so no process copies every completion."""

    batch: dict
    examples: list[dict]  # B
    rewards_NxR: np.ndarray
    tokens_NxT: Any  # global [N, T] int32 (a host array when the sampler returned one)
    mask_NxT: Any
    lengths_N: np.ndarray
    truncated_N: np.ndarray


@dataclasses.dataclass
class StepResult:
    state: dict
    metrics: dict
    rollouts: Rollouts
    times: dict  # seconds: sample, reward, update (fused: all in update)


def decode_rows(tok: Any, tokens_NxT: np.ndarray, mask_NxT: np.ndarray) -> list[str]:
    return [tok.decode(t[m]) for t, m in zip(tokens_NxT, mask_NxT)]


def sample(ctx: StepContext, params: Any, prompts: Prompts, key: jax.Array) -> SampleOutput:
    """Rollouts, batch-sharded on the training mesh (decoded on the sampler's own mesh if any)."""
    sm = ctx.fns.sampler_mesh
    if sm is None:
        with jax.set_mesh(ctx.mesh):
            return ctx.fns.sample(params, prompts.ids_BxP, prompts.valid_BxP, key)
    args = sm.to_sampler(params, prompts.ids_BxP, prompts.valid_BxP, key)
    with jax.set_mesh(sm.mesh):
        out = ctx.fns.sample(*args)
    return sm.to_train(out)


def score(
    ctx: StepContext, prompts: Prompts, out: SampleOutput, times: dict | None = None
) -> Rollouts:
    """Host rewards on the decoded completions; the update's batch with them on device.

    Each process decodes and scores only the rows it owns (`rows.owned_rows`, whole groups),
    read from its own shards; the [N, R] rewards are then gathered, so the cost of sympy or the
    sandbox is split over the processes instead of repeated on each. `times`, when given, gets
    the seconds of each part (benchmarks/multihost.py).
    """
    g, mesh, rules = ctx.group_size, ctx.mesh, ctx.rules
    n = out.lengths_N.shape[0]
    t0 = time.perf_counter()
    start, stop = rows_lib.owned_rows(n, mesh, rules, g)
    toks, mask, lengths, trunc = (
        rows_lib.owned_host_rows(x, mesh, rules, g)
        for x in (out.tokens_NxT, out.mask_NxT, out.lengths_N, out.truncated_N)
    )
    t1 = time.perf_counter()
    texts = decode_rows(ctx.tokenizer, toks, mask)
    mine = prompts.grouped(g)[start:stop]
    host_rewards = ctx.route.host_rewards if ctx.route is not None else rollout.host_rewards
    r_own = host_rewards(ctx.rewards, texts, mine, lengths)
    t2 = time.perf_counter()
    # one gather (a collective costs the same for a few bytes or a few kilobytes): rewards,
    # lengths and truncation side by side as float32 (lengths are exact below 2**24)
    extra = np.stack([lengths, trunc], axis=1).astype(np.float32)
    every = rows_lib.gather_owned(np.concatenate([r_own, extra], axis=1), n, mesh, rules, g)
    r_host = np.ascontiguousarray(every[:, : len(ctx.rewards)])
    lengths = every[:, -2].astype(np.asarray(lengths).dtype)
    trunc = every[:, -1] > 0.5
    r_upd = r_host if ctx.route is None else ctx.route.for_update(r_host, prompts.grouped(g))
    r_dev = rows_lib.global_from_host(r_upd, mesh, rules)
    if times is not None:
        t3 = time.perf_counter()
        times.update(own_rows=t1 - t0, decode_rewards=t2 - t1, gather=t3 - t2, rows=stop - start)
    batch = rollout.rollout_batch(prompts.ids_BxP, prompts.valid_BxP, out, r_dev)
    return Rollouts(batch, prompts.examples, r_host, out.tokens_NxT, out.mask_NxT, lengths, trunc)


def update(ctx: StepContext, state: dict, rollouts: Rollouts) -> tuple[dict, dict]:
    batch = trim(rollouts.batch, int(rollouts.lengths_N.max()), ctx.length_bucket)
    with jax.set_mesh(ctx.mesh):
        state, m = ctx.fns.update(state, batch)
    return state, dict(jax.device_get(m), fused=0)


def fused(ctx: StepContext, state: dict, prompts: Prompts, key: jax.Array) -> StepResult:
    """Sampling, jittable rewards, advantages and the update as one program."""
    t0 = time.perf_counter()
    targets = rollout.jax_targets(ctx.rewards, prompts.grouped(ctx.group_size), ctx.tokenizer)
    targets = jax.tree.map(lambda a: rows_lib.global_from_host(a, ctx.mesh, ctx.rules), targets)
    with jax.set_mesh(ctx.mesh):
        r_states = rollout.reward_states(ctx.rewards)
        state, m, out, r, r_states = ctx.fns.fused(
            state, prompts.ids_BxP, prompts.valid_BxP, key, targets, r_states
        )
    rollout.absorb_reward_states(ctx.rewards, r_states)
    m = dict(jax.device_get(m), fused=1)
    r, lengths, trunc = (rows_lib.gather_rows(x) for x in (r, out.lengths_N, out.truncated_N))
    rollouts = Rollouts({}, prompts.examples, r, out.tokens_NxT, out.mask_NxT, lengths, trunc)
    times = {"sample": 0.0, "reward": 0.0, "update": time.perf_counter() - t0}
    return StepResult(state, m, rollouts, times)


def run(ctx: StepContext, state: dict, prompts: Prompts, key: jax.Array) -> StepResult:
    """One step, fused or split, with its phases timed."""
    if ctx.fused:
        return fused(ctx, state, prompts, key)
    t0 = time.perf_counter()
    compile_update_meanwhile(ctx, state, prompts, key)
    out = sample(ctx, state["params"], prompts, key)
    jax.block_until_ready(out.tokens_NxT)
    t1 = time.perf_counter()
    rollouts = score(ctx, prompts, out)
    t2 = time.perf_counter()
    state, m = update(ctx, state, rollouts)
    times = {"sample": t1 - t0, "reward": t2 - t1, "update": time.perf_counter() - t2}
    return StepResult(state, m, rollouts, times)


def compile_update_meanwhile(
    ctx: StepContext, state: dict, prompts: Prompts, key: jax.Array
) -> bool:
    """Starts compiling the update for this step's shapes on a thread, so that it overlaps the
    sampler's compile and run instead of following them (the first step's wall time).

    Only where the update's batch shape is known before sampling: no routing (which picks the
    reward columns per source) and no length bucket that could cut the completions shorter than
    `max_new_tokens` (the GRPO stage's default bucket of 32 does, so there it starts nothing).
    Also only in a single process (not tried across processes). On later steps it finds the
    signature compiled and returns False (an `eval_shape` of the sampler, cached: ~1 ms)."""
    update = ctx.fns.update
    if not ctx.compile_ahead or ctx.route is not None or jax.process_count() > 1:
        return False
    if not hasattr(update, "compile_in_background"):  # a stand-in without CompileFirst
        return False
    sm, args = ctx.fns.sampler_mesh, (state["params"], prompts.ids_BxP, prompts.valid_BxP, key)
    with jax.set_mesh(ctx.mesh if sm is None else sm.mesh):
        out = jax.eval_shape(ctx.fns.sample.jitted, *(args if sm is None else sm.abstract(*args)))
    # the update sees the rollouts batch-sharded on the training mesh (`sample` puts them there)
    rows_sh = sharding.batch_sharding(ctx.mesh, ctx.rules, 1)
    out = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=rows_sh), out)
    n, t = out.tokens_NxT.shape
    if 0 < ctx.length_bucket < t:
        return False
    r_sharding = sharding.batch_sharding(ctx.mesh, ctx.rules, 2)
    r_dev = jax.ShapeDtypeStruct((n, len(ctx.rewards)), np.float32, sharding=r_sharding)
    batch = rollout.rollout_batch(prompts.ids_BxP, prompts.valid_BxP, out, r_dev)
    return update.compile_in_background(state, batch, context=lambda: jax.set_mesh(ctx.mesh))


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
