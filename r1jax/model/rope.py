"""Rotary position embeddings (RoPE) in the Hugging Face "rotate half" layout, with Llama-3 scaling.

Letters: B batch, T length, N heads, H head dim.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from r1jax.model.config import ModelConfig


def rope_inv_freq(cfg: ModelConfig) -> jax.Array:
    """Inverse frequencies [H/2]; with Llama-3 scaling, long wavelengths are stretched."""
    h = cfg.head_dim
    inv = 1.0 / (cfg.rope_theta ** (jnp.arange(0, h, 2, dtype=jnp.float32) / h))
    s = cfg.rope_scaling
    if s is None:
        return inv
    low_wavelen = s.original_max_position / s.low_freq_factor
    high_wavelen = s.original_max_position / s.high_freq_factor
    wavelen = 2 * jnp.pi / inv
    smooth = (s.original_max_position / wavelen - s.low_freq_factor) / (
        s.high_freq_factor - s.low_freq_factor
    )
    mid = (1 - smooth) * inv / s.factor + smooth * inv
    return jnp.where(
        wavelen > low_wavelen, inv / s.factor, jnp.where(wavelen < high_wavelen, inv, mid)
    )


def apply_rope(x_BxTxNxH: jax.Array, pos_BxT: jax.Array, inv_freq: jax.Array) -> jax.Array:
    """Rotary embedding in the HF "rotate half" layout (first half / second half of head_dim)."""
    angles = pos_BxT[..., None].astype(jnp.float32) * inv_freq[None, None]  # [B, T, H/2]
    cos = jnp.cos(angles)[:, :, None, :]
    sin = jnp.sin(angles)[:, :, None, :]
    x = x_BxTxNxH.astype(jnp.float32)
    x1, x2 = jnp.split(x, 2, axis=-1)
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x_BxTxNxH.dtype)
