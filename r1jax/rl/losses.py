"""Policy losses by name: a registry of functions from per-token inputs to `(loss, aux)`.

Letters: N rollouts in one call, T completion tokens.

A `Loss` is what the update needs to know about a loss: the function itself and the normaliser that
makes gradient accumulation exact (every loss here is a sum over the batch divided by a normaliser
that `normalizer(mask)` computes for the whole optimisation batch; see grpo_loss.py). The GRPO loss
with its options (`LossOptions`) is the default entry, "grpo". A variant is one decorated factory,
in a notebook or an experiment file:

    @losses.register("reinforce")            # config.rl.loss = "reinforce(scale=0.5)"
    def reinforce(opts: LossOptions, scale: float = 1.0) -> losses.Loss:
        def fn(x: losses.TokenInputs, denom):
            per_token = -scale * x.adv_N[:, None] * x.logp_NxT
            return (per_token * x.mask_NxT).sum() / denom, {}
        return losses.Loss("reinforce", fn, losses.token_count)

or a `Loss` passed directly as `UpdateConfig.loss_fn`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from r1jax import config_check
from r1jax.rewards.registry import parse
from r1jax.rl import grpo_loss


@dataclasses.dataclass(frozen=True)
class TokenInputs:
    """Per-token inputs of a policy loss (entropy is a diagnostic, already without gradient)."""

    logp_NxT: jax.Array  # current policy (differentiated)
    old_logp_NxT: jax.Array  # the policy that sampled the tokens
    ref_logp_NxT: jax.Array | None  # reference policy (None when the loss does not use it)
    adv_N: jax.Array
    mask_NxT: jax.Array
    entropy_NxT: jax.Array | None = None


LossCall = Callable[[TokenInputs, jax.Array], tuple[jax.Array, dict]]


def token_count(mask_NxT: jax.Array) -> jax.Array:
    """A normaliser: the number of active tokens (token-mean losses)."""
    return mask_NxT.astype(jnp.float32).sum()


def sequence_count(mask_NxT: jax.Array) -> jax.Array:
    """A normaliser: the number of sequences (sequence-mean losses)."""
    return jnp.asarray(mask_NxT.shape[0], jnp.float32)


@dataclasses.dataclass(frozen=True)
class Loss:
    """A policy loss: `fn(inputs, denom) -> (loss, aux)` and how to compute `denom`.

    `normalizer(mask_NxT)` is evaluated once per optimisation batch (or, with `whole_batch`, once over
    the whole rollout batch) and passed to every micro-batch's call, so accumulated gradients equal
    one big batch. Aux values are summed over micro-batches and divided by their number, except keys
    ending in `_min` / `_max` (min / max) and `active_tokens` (summed).
    """

    name: str
    fn: LossCall
    normalizer: Callable[[jax.Array], jax.Array]
    uses_ref: bool = False  # needs reference log-probs (the update computes them once)
    whole_batch: bool = False  # normaliser over the whole rollout batch, not each mini-batch

    def __call__(self, x: TokenInputs, denom: jax.Array) -> tuple[jax.Array, dict]:
        return self.fn(x, denom)


_REGISTRY: dict[str, Callable[..., Loss]] = {}


def register(name: str) -> Callable[[Callable[..., Loss]], Callable[..., Loss]]:
    """Decorator on a factory `(opts: LossOptions, **kwargs) -> Loss`; re-registering replaces
    (so a notebook cell can be edited and rerun)."""

    def deco(factory: Callable[..., Loss]) -> Callable[..., Loss]:
        _REGISTRY[name] = factory
        return factory

    return deco


def names() -> list[str]:
    return sorted(_REGISTRY)


def build(spec: str | Loss, opts: grpo_loss.LossOptions) -> Loss:
    """A Loss from a spec string (`"grpo"`, `"name(key=value)"`) or a Loss passed as is."""
    if isinstance(spec, Loss):
        return spec
    name, kwargs = parse(spec)
    if name not in _REGISTRY:
        raise config_check.ConfigError(
            f"unknown loss {name!r} (config.rl.loss); known: {names()}. Register one with "
            "@r1jax.rl.losses.register(name)."
        )
    try:
        return _REGISTRY[name](opts, **kwargs)
    except (TypeError, ValueError) as e:
        raise config_check.ConfigError(f"config.rl.loss={spec!r}: {e}") from None


@register("grpo")
def grpo(opts: grpo_loss.LossOptions) -> Loss:
    """DeepSeekMath's GRPO loss with every convention of `LossOptions` (the default)."""

    def fn(x: TokenInputs, denom: jax.Array) -> tuple[jax.Array, dict]:
        return grpo_loss.grpo_loss(
            x.logp_NxT,
            x.old_logp_NxT,
            x.ref_logp_NxT,
            x.adv_N,
            x.mask_NxT,
            opts,
            entropy_NxT=x.entropy_NxT,
            denom=denom,
        )

    return Loss(
        "grpo",
        fn,
        lambda m: grpo_loss.normalizer(m, opts),
        uses_ref=bool(opts.beta),
        whole_batch=opts.aggregation == "global_token_mean",
    )


def init_aux(shapes: dict) -> dict:
    """The identity of `merge_aux` for an aux of these shapes (zeros; +-max for extremes)."""
    big = jnp.finfo(jnp.float32).max

    def one(k: str, s: jax.ShapeDtypeStruct) -> jax.Array:
        fill = big if k.endswith("_min") else -big if k.endswith("_max") else 0.0
        return jnp.full(s.shape, fill, jnp.float32)

    return {k: one(k, s) for k, s in shapes.items()}


def merge_aux(acc: dict, aux: dict) -> dict:
    """Combines the aux of one more micro-batch: sums, except `_min` / `_max` keys."""
    out = {}
    for k, v in aux.items():
        if k.endswith("_min"):
            out[k] = jnp.minimum(acc[k], v)
        elif k.endswith("_max"):
            out[k] = jnp.maximum(acc[k], v)
        else:
            out[k] = acc[k] + v
    return out


def finish_aux(aux: dict, micro_batches: int) -> dict:
    """Means over micro-batches (extremes and token counts stay as they are)."""
    keep = lambda k: k.endswith(("_min", "_max")) or k == "active_tokens"  # noqa: E731
    return {k: v if keep(k) else v / micro_batches for k, v in aux.items()}
