"""k optimiser updates from one rollout batch with the trainer's own update (`rl/train_step.py`).

Each update is `train_step.update` with mu = 1 on the same batch, so k updates are GRPO's mu = k
inner iterations: the old log-probs stay the sampler's, the ratio drifts from 1, and clipping
starts to act. The batch's advantages are used as they are (they enter the update as its only
reward column with an identity estimator), so advantages edited in a notebook are the ones that
train. Metrics are the update's own, one dict per update (the loss is the one before that update).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from r1jax.lab.batch import RolloutBatch
from r1jax.lab.loss_eval import loss_options
from r1jax.lab.policy import Policy
from r1jax.rl import grpo_loss, losses, train_step

_update = jax.jit(train_step.update, static_argnums=(0, 1, 4))


def given_advantages(rewards_N: jax.Array, group_size: int) -> tuple[jax.Array, dict]:
    """The identity estimator: the 'rewards' the lab passes in ARE the batch's advantages."""
    del group_size
    return rewards_N.astype(jnp.float32), {}


@dataclasses.dataclass
class UpdateResult:
    params: dict
    opt_state: Any
    metrics: list[dict[str, float]]  # one per update


def run_updates(
    policy: Policy,
    batch: RolloutBatch,
    k: int,
    optimizer: optax.GradientTransformation,
    loss: str | losses.Loss = "grpo",
    options: grpo_loss.LossOptions | dict | None = None,
    params: dict | None = None,
    opt_state: Any = None,
    ref_params: dict | None = None,
    mask_truncated: bool = False,
    share_prefix: bool = True,
) -> UpdateResult:
    """k updates of `params` (default: the policy's) on the batch with `optimizer`.

    `opt_state` continues a previous call (default: `optimizer.init(params)`); the KL reference is
    `ref_params` (default: the policy's params, the model that sampled the batch).
    """
    if k < 1:
        raise ValueError(f"k={k}: run at least one update.")
    opts = loss_options(options, batch.max_new_tokens)
    cfg = train_step.UpdateConfig(
        group_size=batch.group_size,
        temperature=batch.temperature,
        advantage=given_advantages,
        reward_weights=(1.0,),
        mask_truncated=mask_truncated,
        share_prefix=share_prefix,
        loss=opts,
        loss_fn=loss,
    )
    params = policy.params if params is None else params
    state = {
        "params": params,
        "opt_state": optimizer.init(params) if opt_state is None else opt_state,
        "step": jnp.int32(0),
    }
    if cfg.policy_loss().uses_ref:
        state["ref_params"] = policy.params if ref_params is None else ref_params
    rollouts = dict(batch.update_inputs(), rewards_NxR=batch.adv_N[:, None].astype(np.float32))
    rollouts = jax.tree.map(jnp.asarray, rollouts)
    history = []
    with jax.set_mesh(policy.mesh), nnx.logical_axis_rules(policy.rules):
        for _ in range(k):
            state, m = _update(policy.graphdef, optimizer, state, rollouts, cfg)
            m = train_step.metrics_to_host(m)
            m["reward"] = float(np.nanmean(batch.reward_N))  # not the advantages passed as rewards
            history.append(m)
    return UpdateResult(state["params"], state["opt_state"], history)
