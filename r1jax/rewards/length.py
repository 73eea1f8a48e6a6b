"""DAPO's soft overlong punishment, measured in tokens (host and jittable forms agree exactly).

    r(L) = 0                                 if L <= max_tokens - cache
         = (max_tokens - cache - L) / cache  if max_tokens - cache < L <= max_tokens
         = -1                                if L > max_tokens (cannot happen with a hard budget)
L counts the generated tokens including EOS. The host form reads `_completion_tokens`, which the
trainer adds to each example.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from r1jax.rewards.registry import Reward, register


def overlong_value(length, max_tokens: int, cache: int, xp=np):
    # times the reciprocal, not divided: XLA turns a division by a constant into this multiply,
    # so numpy must do the same for the two forms to agree to the last bit
    soft = (max_tokens - cache - length) * (1.0 / max(cache, 1))
    return xp.where(length <= max_tokens - cache, 0.0, xp.where(length <= max_tokens, soft, -1.0))


def _length(example) -> float:
    """The completion's token count the trainer stores in the example, NaN when absent or bad."""
    try:
        return float(example.get("_completion_tokens"))
    except (TypeError, ValueError, OverflowError):
        return float("nan")


@register("overlong")
def overlong(max_tokens: int = 128, cache: int = 32) -> Reward:
    # range: [-1, 0]
    if not 0 < cache <= max_tokens:
        raise ValueError(f"overlong(cache={cache}) must be in (0, max_tokens={max_tokens}]")

    def host(completions, examples):
        del completions
        n = np.array([_length(ex) for ex in examples], np.float32)  # NaN where none
        value = overlong_value(np.nan_to_num(n), max_tokens, cache)
        return np.where(np.isnan(n), np.nan, value).astype(np.float32)

    def jax_fn(tokens, mask, targets, vt):
        del tokens, targets, vt
        n = mask.sum(axis=1).astype(jnp.float32)
        return overlong_value(n, max_tokens, cache, xp=jnp).astype(jnp.float32)

    return Reward("overlong", host, -1.0, 0.0, jax_fn=jax_fn)
