"""Attention through `jax.nn.dot_product_attention`: the fused cuDNN (flash) kernel on a GPU.

`ModelConfig.attention="cudnn"` routes the model's uncached calls here. The kernel never holds the
[T, S] scores, which the CPU-tuned blocked path (`transformer.Attention._core`) materialises per
query block and keeps for the backward pass: on a GPU that was most of the train step's memory
(benchmarks/device_suite.py). The "xla" implementation computes the same sums unfused; the CPU
tests compare it with `_core` to check the mask built here.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def attention(
    q_BxTxNxH: jax.Array,
    k_BxSxKxH: jax.Array,
    v_BxSxKxH: jax.Array,
    q_slot_T: jax.Array,
    key_valid_BxS: jax.Array,
    implementation: str,
) -> jax.Array:
    """`_core`'s attention, [B, T, N, H], with `implementation` "cudnn" or "xla".

    The mask is causal & key-valid (2-D [B, S], or packed 3-D [B, T, S]) as in `_core`, plus each
    query's own slot: a query with no valid key (left padding) attends to itself instead of
    getting `_core`'s uniform row, so the kernel never sees an all-masked row. A valid query always
    sees its own slot, so its output is `_core`'s; padding outputs are never read.
    """
    s = k_BxSxKxH.shape[1]
    kv = key_valid_BxS if key_valid_BxS.ndim == 3 else key_valid_BxS[:, None, :]
    causal_TxS = jnp.arange(s)[None, :] <= q_slot_T[:, None]
    own_TxS = jnp.arange(s)[None, :] == q_slot_T[:, None]
    mask_Bx1xTxS = ((causal_TxS[None] & kv) | own_TxS[None])[:, None]
    return jax.nn.dot_product_attention(
        q_BxTxNxH, k_BxSxKxH, v_BxSxKxH, mask=mask_Bx1xTxS, implementation=implementation
    )


def cudnn(
    q_BxTxNxH: jax.Array,
    k_BxSxKxH: jax.Array,
    v_BxSxKxH: jax.Array,
    q_slot_T: jax.Array,
    key_valid_BxS: jax.Array,
    dtype: Any,
) -> jax.Array:
    """`attention` with the cuDNN kernel in `dtype` (16-bit; `ModelConfig` checks), or a one-line
    error naming the fix on a machine without a CUDA GPU."""
    if jax.default_backend() != "gpu":
        raise ValueError(
            f"model.attention='cudnn' needs a CUDA GPU (this run's backend is "
            f"{jax.default_backend()!r}); use model.attention='blocked'."
        )
    q, k, v = (x.astype(dtype) for x in (q_BxTxNxH, k_BxSxKxH, v_BxSxKxH))
    q, k, v, q_slot_T, key_valid_BxS = pad_even(q, k, v, q_slot_T, key_valid_BxS)
    out = attention(q, k, v, q_slot_T, key_valid_BxS, "cudnn")
    return out[:, : q_BxTxNxH.shape[1]]


def pad_even(
    q_BxTxNxH: jax.Array,
    k_BxSxKxH: jax.Array,
    v_BxSxKxH: jax.Array,
    q_slot_T: jax.Array,
    key_valid_BxS: jax.Array,
) -> tuple[jax.Array, ...]:
    """`attention`'s arguments with T and S padded to even lengths.

    cuDNN's training kernel with a mask takes only even query and key lengths (jax raises
    "Unsupported sequence length Q 1023, KV 1023" on an H200, 2026-12-04), and a causal LM feeds
    T - 1 tokens. A padded key is invalid and lies past every query's slot; a padded query reads
    slot 0 (its own-slot term keeps the row non-empty) and is sliced off by the caller, so no
    gradient reaches it and the valid outputs are unchanged.
    """
    t, s = q_BxTxNxH.shape[1], k_BxSxKxH.shape[1]
    pt, ps = t % 2, s % 2
    if not (pt or ps):
        return q_BxTxNxH, k_BxSxKxH, v_BxSxKxH, q_slot_T, key_valid_BxS
    seq = lambda x, n: jnp.pad(x, [(0, 0), (0, n)] + [(0, 0)] * (x.ndim - 2))  # noqa: E731
    q = seq(q_BxTxNxH, pt)
    k, v = seq(k_BxSxKxH, ps), seq(v_BxSxKxH, ps)
    q_slot = jnp.pad(q_slot_T, (0, pt))  # the padded query's slot is 0
    if key_valid_BxS.ndim == 3:  # packed [B, T, S]
        valid = jnp.pad(key_valid_BxS, [(0, 0), (0, pt), (0, ps)])
    else:
        valid = jnp.pad(key_valid_BxS, [(0, 0), (0, ps)])
    return q, k, v, q_slot, valid
