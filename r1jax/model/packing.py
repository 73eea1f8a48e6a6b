"""Packed rows: several examples in one row, separated by segment ids, that never see each other.

Letters: B rows, T tokens, S key slots (= T without a cache).

A packed row holds whole examples one after another; `segment_ids_BxT` numbers them (any values,
equal within an example and different between neighbours). Each token attends only to earlier
tokens of its own segment, and positions restart at 0 in each segment, so a packed example gets
exactly the logits it would get alone in its own row (tests/test_sft_packing.py checks it, with
gradients). Only the uncached call supports it; sampling never packs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def positions_and_mask(
    segment_ids_BxT: jax.Array, valid_BxT: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """(positions [B, T] restarting per segment, key validity per query [B, T, S=T])."""
    b, t = segment_ids_BxT.shape
    idx = jnp.broadcast_to(jnp.arange(t)[None, :], (b, t))
    changed = jnp.concatenate(
        [jnp.ones((b, 1), bool), segment_ids_BxT[:, 1:] != segment_ids_BxT[:, :-1]], axis=1
    )
    start = jax.lax.cummax(jnp.where(changed, idx, 0), axis=1)  # first index of my segment
    valid = valid_BxT.astype(jnp.int32)
    steps = jnp.cumsum(valid, axis=1)
    before = jnp.take_along_axis(steps - valid, start, axis=1)  # valid tokens before my segment
    pos = jnp.maximum(steps - before - 1, 0)
    same = segment_ids_BxT[:, :, None] == segment_ids_BxT[:, None, :]
    return pos, valid_BxT[:, None, :] & same


def query_block(key_valid: jax.Array, s: int, e: int) -> jax.Array:
    """Key validity of queries [s, e) over keys [0, e) (causal: later keys are never seen).

    `key_valid` is [B, S] (one validity per key, the unpacked case) or [B, T, S] (packed).
    """
    if key_valid.ndim == 3:
        return key_valid[:, s:e, :e]
    return key_valid[:, :e]
