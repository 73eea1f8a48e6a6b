"""Group-relative advantages over rewards laid out as [B prompts * G samples] (grouped by prompt).

Letters: N = B * G rollouts, B prompts, G samples per prompt.

Every function is pure and takes the conventions that differ between papers as arguments:
- `group_zscore`: (r - mean) / (std + eps), GRPO as in DeepSeekMath; `ddof` 0 (population std, as
  in TRL and verl) or 1 (sample std, torch.std's default); eps 1e-4 as in DeepSeekMath's code.
- `dr_grpo`: r - mean (Dr. GRPO drops the std, which up-weights easy and hard groups).
- `rloo`: r_i - mean of the other G-1 rewards (leave-one-out baseline).
A group whose finite rewards are all equal gets advantage exactly 0. A NaN reward (a completion that
could not be scored) gets advantage 0, is left out of its group's statistics, and is counted.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import jax
import jax.numpy as jnp


def _grouped(rewards_N: jax.Array, g: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    r = rewards_N.astype(jnp.float32).reshape(-1, g)
    ok = jnp.isfinite(r)
    n_ok = ok.sum(axis=1, keepdims=True)
    r0 = jnp.where(ok, r, 0.0)
    mean = r0.sum(axis=1, keepdims=True) / jnp.maximum(n_ok, 1)
    return r0, ok, mean


def _finish(
    adv_BxG: jax.Array, ok: jax.Array, r0: jax.Array, mean: jax.Array
) -> tuple[jax.Array, dict]:
    # all finite rewards equal: compare them with each other, not with the rounded f32 mean
    hi = jnp.where(ok, r0, -jnp.inf).max(axis=1, keepdims=True)
    lo = jnp.where(ok, r0, jnp.inf).min(axis=1, keepdims=True)
    zero_std = ~(hi > lo)
    adv = jnp.where(ok & ~zero_std, adv_BxG, 0.0)
    aux = {
        "nan_rewards": (~ok).sum(),
        "frac_reward_zero_std": zero_std.mean(),
    }
    return adv.reshape(-1), aux


def group_zscore(
    rewards_N: jax.Array, group_size: int, ddof: int = 0, eps: float = 1e-4
) -> tuple[jax.Array, dict]:
    """GRPO's normalised advantage: (r - mean_group) / (std_group + eps)."""
    r0, ok, mean = _grouped(rewards_N, group_size)
    n_ok = ok.sum(axis=1, keepdims=True)
    var = jnp.where(ok, (r0 - mean) ** 2, 0.0).sum(axis=1, keepdims=True)
    std = jnp.sqrt(var / jnp.maximum(n_ok - ddof, 1))
    return _finish((r0 - mean) / (std + eps), ok, r0, mean)


def dr_grpo(rewards_N: jax.Array, group_size: int) -> tuple[jax.Array, dict]:
    """Dr. GRPO: r - mean_group, no division by the std."""
    r0, ok, mean = _grouped(rewards_N, group_size)
    return _finish(r0 - mean, ok, r0, mean)


def rloo(rewards_N: jax.Array, group_size: int) -> tuple[jax.Array, dict]:
    """Leave-one-out: r_i - mean_{j != i} r_j over the group's scorable rewards."""
    r0, ok, _ = _grouped(rewards_N, group_size)
    n_ok = ok.sum(axis=1, keepdims=True)
    total = r0.sum(axis=1, keepdims=True)
    others = (total - r0) / jnp.maximum(n_ok - 1, 1)
    mean = total / jnp.maximum(n_ok, 1)
    return _finish(r0 - others, ok, r0, mean)


Estimator = Callable[..., tuple[jax.Array, dict]]
_REGISTRY: dict[str, Estimator] = {}


def register(name: str, fn: Estimator | None = None):
    """Registers an estimator `(rewards_N, group_size, **options) -> (adv_N, aux)` by name.

    Usable as a decorator (`@advantages.register("mine")`) or a call; re-registering replaces. The
    options `ddof` and `eps` (config.rl.std_ddof / adv_eps) are passed to an estimator only if its
    signature names them.
    """

    def deco(f: Estimator) -> Estimator:
        _REGISTRY[name] = f
        return f

    return deco(fn) if fn is not None else deco


def names() -> list[str]:
    return sorted(_REGISTRY)


register("grpo", group_zscore)
register("dr_grpo", dr_grpo)
register("rloo", rloo)


def compute(
    rewards_N: jax.Array,
    group_size: int,
    estimator: str | Estimator = "grpo",
    ddof: int = 0,
    eps: float = 1e-4,
) -> tuple[jax.Array, dict]:
    """Dispatch by name (the config's `rl.advantage`) or a function passed as is."""
    fn = _REGISTRY.get(estimator) if isinstance(estimator, str) else estimator
    if fn is None:
        raise ValueError(f"unknown advantage estimator {estimator!r}; choose one of {names()}.")
    params = inspect.signature(fn).parameters
    takes_all = any(p.kind is p.VAR_KEYWORD for p in params.values())
    opts = {k: v for k, v in (("ddof", ddof), ("eps", eps)) if takes_all or k in params}
    return fn(rewards_N, group_size, **opts)
