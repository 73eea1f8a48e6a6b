"""Rollouts: the jitted sampler, rewards (host or jittable), and the fused sample-reward-update step.

Letters: B prompts, G samples each, N = B * G, P prompt length, T max new tokens, R rewards.

Two ways to run a GRPO step, giving the same numbers for the same key:
- split: `sample` (one jit) -> host rewards over decoded text -> `update` (one jit);
- fused: when every reward has a jittable form, sampling, rewards, advantages and the update are
  ONE jitted program (no host round trip); the decoded text is only produced for logging. A reward
  model runs there too (its forward on the sampled ids): its parameters and running statistics
  enter as an argument and the new statistics come back (`reward_states`, `absorb_reward_states`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from r1jax.rewards.registry import Reward
from r1jax.rewards.token_tables import VocabTables
from r1jax.rl import train_step
from r1jax.sampling import sample as sampling
from r1jax.sampling import threads as sampling_threads
from r1jax.train import host_memory


def rollout_batch(prompt, valid, out: sampling.SampleOutput, rewards_NxR) -> dict:
    """The arrays `train_step.update` takes."""
    return {
        "prompt": prompt,
        "prompt_valid": valid,
        "completion": out.tokens_NxT,
        "mask_NxT": out.mask_NxT,
        "old_logp_NxT": out.logp_NxT,
        "rewards_NxR": rewards_NxR,
        "truncated_N": out.truncated_N,
    }


def host_rewards(
    rewards: Sequence[Reward], texts: Sequence[str], examples: Sequence[dict], lengths: np.ndarray
) -> np.ndarray:
    """[N, R] float32: every reward on the decoded completions; NaN marks an unscorable one."""
    exs = [dict(ex, _completion_tokens=int(n)) for ex, n in zip(examples, lengths)]
    cols = [r(texts, exs) for r in rewards]
    return np.stack(cols, axis=1).astype(np.float32)


def jax_targets(rewards: Sequence[Reward], examples: Sequence[dict], tokenizer: Any) -> list[dict]:
    """Per-reward host-built target arrays for the jittable forms (empty dict when not needed)."""
    return [
        {k: np.asarray(v) for k, v in r.targets_fn(examples, tokenizer).items()}
        if r.targets_fn
        else {}
        for r in rewards
    ]


def jax_rewards(
    rewards: Sequence[Reward],
    out: sampling.SampleOutput,
    targets: Sequence[dict],
    vt: VocabTables | None,
    states: Sequence[dict | None] | None = None,
) -> tuple[jax.Array, list[dict | None]]:
    """([N, R] float32, new reward states) from the jittable forms (inside jit). `states[i]` is
    reward i's state (`Reward.jax_stateful.state()`), None for a reward without state."""
    states = list(states) if states is not None else [None] * len(rewards)
    cols, new_states = [], []
    for r, t, st in zip(rewards, targets, states, strict=True):
        if r.jax_stateful is not None:
            col, st = r.jax_stateful.jax_call(st, out.tokens_NxT, out.mask_NxT, t, vt)
        else:
            col = r.jax_fn(out.tokens_NxT, out.mask_NxT, t, vt)
        cols.append(col)
        new_states.append(st)
    return jnp.stack(cols, axis=1).astype(jnp.float32), new_states


def place_reward_states(rewards: Sequence[Reward], mesh: Any, rules: Any) -> None:
    """Puts every stateful reward's state on the policy's mesh (before building the fused step)."""
    for r in rewards:
        if r.jax_stateful is not None:
            r.jax_stateful.place(mesh, rules)


def reward_states(rewards: Sequence[Reward]) -> list[dict | None]:
    """The fused step's reward-state argument: each stateful reward's current state."""
    return [r.jax_stateful.state() if r.jax_stateful is not None else None for r in rewards]


def absorb_reward_states(rewards: Sequence[Reward], states: Sequence[dict | None]) -> None:
    """Hands each stateful reward the state the fused step returned."""
    for r, st in zip(rewards, states, strict=True):
        if r.jax_stateful is not None:
            r.jax_stateful.absorb(st)


@dataclasses.dataclass
class StepFns:
    """Compiled pieces of one GRPO step for a fixed mesh and config."""

    sample: Callable  # (params, prompt, valid, key) -> SampleOutput
    update: Callable  # (state, rollouts) -> (state, metrics)
    # (state, prompt, valid, key, targets, reward_states)
    #   -> (state, metrics, SampleOutput, rewards, new reward_states)
    fused: Callable | None
    sampler_mesh: Any = None  # a sampler_mesh.SamplerMesh when the sampler has devices of its own


def build(
    graphdef: nnx.GraphDef,
    tx: optax.GradientTransformation,
    scfg: sampling.SamplingConfig,
    ucfg: train_step.UpdateConfig,
    rewards: Sequence[Reward],
    vt: VocabTables | None,
    state_shardings: dict,
    batch_sharding: Callable[[int], Any],
    fused: bool,
    sampler_mesh: Any = None,
    sampler_threads: int = 1,
) -> StepFns:
    """Jits the sampler, the update and (when `fused`) the single-program step. With a
    `sampler_mesh.SamplerMesh` the sampler is compiled for that mesh (`step.sample` moves its
    arguments there and its rollouts back); the fused step has one program, so not with it. With
    `sampler_threads` K > 1 the split step samples K parts of the prompts at once from K threads
    (`sampling.threads.ThreadedSampler`: the same tokens, faster on a CPU host)."""
    g = ucfg.group_size
    repl = batch_sharding(0)
    if sampler_mesh is not None and fused:
        raise ValueError("a sampler mesh needs the split step (host rewards), not the fused one")
    if sampler_threads > 1 and (fused or sampler_mesh is not None):
        raise ValueError("sampler threads need the split step on the training mesh")

    def sample_fn(params, prompt, valid, key):
        return sampling.sample(graphdef, params, prompt, valid, key, g, scfg)

    def update_fn(state, rollouts):
        return train_step.update(graphdef, tx, state, rollouts, ucfg)

    # every output row batch-sharded, so each process finds its own rows in its own shards
    if sampler_mesh is None:
        sample_in = (state_shardings["params"], batch_sharding(2), batch_sharding(2), repl)
        sample_out = batch_sharding(1)
    else:
        sm = sampler_mesh
        sample_in, sample_out = (sm.params, sm.prompt, sm.prompt, sm.key), sm.out
    sample_jit = jax.jit(sample_fn, in_shardings=sample_in, out_shardings=sample_out)
    update_jit = jax.jit(update_fn, out_shardings=(state_shardings, None), donate_argnums=(0,))
    fused_jit = None
    if fused:

        def fused_fn(state, prompt, valid, key, targets, r_states):
            out = sample_fn(state["params"], prompt, valid, key)
            r, new_r_states = jax_rewards(rewards, out, targets, vt, r_states)
            new_state, m = update_fn(state, rollout_batch(prompt, valid, out, r))
            return new_state, m, out, r, new_r_states

        fused_jit = jax.jit(
            fused_fn, out_shardings=(state_shardings, None, None, None, None), donate_argnums=(0,)
        )
    # each compiled ahead of its first run, the compiler's freed heap released first (peak RSS)
    wrap = host_memory.CompileFirst
    fused_step = wrap(fused_jit) if fused_jit else None
    sample_step = wrap(sample_jit)
    if sampler_threads > 1:

        def part_fn(params, prompt, valid, key, u_TxN):
            return sampling.sample(graphdef, params, prompt, valid, key, g, scfg, u_TxN)

        part_in = (*sample_in, repl)  # the part's columns of the whole batch's uniforms
        part_jit = jax.jit(part_fn, in_shardings=part_in, out_shardings=sample_out)
        mesh = batch_sharding(2).mesh
        sample_step = sampling_threads.ThreadedSampler(
            part_jit, sample_jit, sampler_threads, g, scfg.max_new_tokens, scfg.greedy, mesh
        )
    return StepFns(sample_step, wrap(update_jit), fused_step, sampler_mesh)
