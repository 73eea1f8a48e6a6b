"""Any loss variant on one rollout batch: its value, aux and per-token gradient weights.

Letters: N rollouts, T completion tokens.

The gradient weight of token t of rollout i is d loss / d logp_it: the factor by which that
token's score `grad logp_it` enters the parameter gradient,

    grad_theta loss = sum_it (d loss / d logp_it) * grad_theta logp_it,

so it says what each token contributes (how aggregation weighs short vs long completions, where
clipping switches a token off, what a KL estimator pushes). The loss is built and called exactly as
`rl/train_step.update` builds and calls it (the same `losses.build`, normaliser, log-probs and
reference log-probs); with one update per batch, `evaluate_loss` equals the update's metrics.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from r1jax.lab.batch import RolloutBatch
from r1jax.lab.policy import Policy
from r1jax.rl import grpo_loss, losses
from r1jax.rl.logprobs import completion_logprobs

_logprobs = jax.jit(completion_logprobs, static_argnums=(0, 5, 6, 7))


@dataclasses.dataclass
class LossReport:
    """One loss variant on one batch."""

    name: str
    loss: float
    aux: dict[str, float]
    grad_logp_NxT: np.ndarray  # d loss / d logp per token; 0 off the mask
    logp_NxT: np.ndarray  # the policy's log-probs the loss was evaluated at

    def sequence_weight_N(self) -> np.ndarray:
        """Each completion's total gradient weight (the sum over its tokens)."""
        return self.grad_logp_NxT.sum(axis=1)


def loss_options(options: grpo_loss.LossOptions | dict | None, max_tokens: int) -> Any:
    """LossOptions from an instance or a dict of its fields; Dr. GRPO's constant defaults to the
    batch's generation budget (as the GRPO stage sets it from rl.max_new_tokens)."""
    if isinstance(options, grpo_loss.LossOptions):
        return options
    return grpo_loss.LossOptions(**{"max_tokens": max_tokens, **(options or {})})


def policy_logprobs(
    policy: Policy,
    batch: RolloutBatch,
    params: dict | None = None,
    with_entropy: bool = False,
    share_prefix: bool = True,
) -> tuple[jax.Array, jax.Array | None]:
    """(logp_NxT, entropy_NxT or None) of the batch's completions under `params` (default: the
    policy's) at the batch's sampling temperature. Differentiable in `params` (under an outer
    `jax.set_mesh`, which is then kept)."""
    outer = not jax.sharding.get_abstract_mesh().empty
    with contextlib.nullcontext() if outer else jax.set_mesh(policy.mesh):
        with nnx.logical_axis_rules(policy.rules):
            return _logprobs(
                policy.graphdef,
                policy.params if params is None else params,
                jnp.asarray(batch.prompt_BxP),
                jnp.asarray(batch.prompt_valid_BxP),
                jnp.asarray(batch.completion_NxT),
                batch.temperature,
                with_entropy,
                share_prefix,
            )


def parameter_gradient(
    policy: Policy, batch: RolloutBatch, grad_logp_NxT: np.ndarray, params: dict | None = None
) -> dict:
    """sum_it w_it * grad_theta logp_it: the parameter gradient that per-token weights `w`
    (a LossReport's `grad_logp_NxT`) stand for, by one vector-Jacobian product."""
    params = policy.params if params is None else params
    with jax.set_mesh(policy.mesh):
        _, pull = jax.vjp(lambda p: policy_logprobs(policy, batch, p)[0], params)
        return pull(jnp.asarray(grad_logp_NxT, jnp.float32))[0]


def loss_on_arrays(
    loss_fn: losses.Loss,
    logp_NxT: jax.Array,
    old_logp_NxT: jax.Array,
    ref_logp_NxT: jax.Array | None,
    adv_N: jax.Array,
    mask_NxT: jax.Array,
    entropy_NxT: jax.Array | None = None,
) -> tuple[jax.Array, dict, jax.Array]:
    """(loss, aux, d loss / d logp_NxT) of a Loss on plain arrays, normalised over this batch."""
    denom = loss_fn.normalizer(jnp.asarray(mask_NxT))

    def f(logp):
        x = losses.TokenInputs(
            logp_NxT=logp,
            old_logp_NxT=jnp.asarray(old_logp_NxT),
            ref_logp_NxT=None if ref_logp_NxT is None else jnp.asarray(ref_logp_NxT),
            adv_N=jnp.asarray(adv_N),
            mask_NxT=jnp.asarray(mask_NxT),
            entropy_NxT=entropy_NxT,
        )
        return loss_fn(x, denom)

    (loss, aux), grad = jax.value_and_grad(f, has_aux=True)(jnp.asarray(logp_NxT, jnp.float32))
    return loss, aux, grad


def evaluate_loss(
    policy: Policy,
    batch: RolloutBatch,
    loss: str | losses.Loss = "grpo",
    options: grpo_loss.LossOptions | dict | None = None,
    params: dict | None = None,
    ref_params: dict | None = None,
    mask_truncated: bool = False,
    share_prefix: bool = True,
) -> LossReport:
    """A loss variant on the batch at `params` (default: the policy's).

    `loss` is a registered name ("grpo", "name(key=value)") or a `losses.Loss`; `options` the GRPO
    family's LossOptions (or a dict of its fields). The reference for the KL term is `ref_params`
    (default: the policy's params, i.e. the model that sampled the batch, as a run's step 0). The old
    log-probs are the sampler's, so at the sampling params every ratio is 1 (on-policy); pass moved
    `params` to see clipping.
    """
    opts = loss_options(options, batch.max_new_tokens)
    loss_fn = losses.build(loss, opts)
    logp, entropy = policy_logprobs(policy, batch, params, True, share_prefix)
    ref = None
    if loss_fn.uses_ref:
        ref_params = policy.params if ref_params is None else ref_params
        ref = policy_logprobs(policy, batch, ref_params, False, share_prefix)[0]
    mask = batch.mask_NxT & ~batch.truncated_N[:, None] if mask_truncated else batch.mask_NxT
    value, aux, grad = loss_on_arrays(
        loss_fn, logp, batch.old_logp_NxT, ref, batch.adv_N, mask, jax.lax.stop_gradient(entropy)
    )
    return LossReport(
        name=loss_fn.name,
        loss=float(value),
        aux={k: float(v) for k, v in jax.device_get(aux).items()},
        grad_logp_NxT=np.asarray(grad),
        logp_NxT=np.asarray(logp),
    )
