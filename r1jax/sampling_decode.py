"""One-token decode step with the cache in [N, K, S, H] layout (the sampler's hot loop).

Letters: N rows, K kv heads, G = heads per kv head, S cache slots, H head dim, D d_model, V vocab.

Why not `Transformer.__call__` with its `KVCache`? That cache is [N, S, K, H] (the layout prefill,
sharding rules and other code use). For a single query token, XLA:CPU then transposes every layer's
whole cache twice per step to batch the (N, K) dims of the two attention matmuls; on the benchmark
config that, plus the per-step mask/position work of the general call, made a decode step ~1.8x
slower. Here the cache is transposed once after prefill, and each step reuses the model's own
modules (norms, projections, MLP, head) so the numerics are the model's: only the cache write and
the attention core are written out. Tests check this step against the model's uncached forward.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import struct

from r1jax.model.kv_cache import KVCache
from r1jax.model.transformer import _NEG, Attention, Transformer, apply_rope, rope_inv_freq
from r1jax.sharding import constrain

KV_AXES = ("batch", "kv_heads", "cache_length", "head_dim")


@struct.dataclass
class DecodeCache:
    """Per-layer keys/values [N, K, S, H]; every row writes slot `index` at each step."""

    k: tuple[jax.Array, ...]
    v: tuple[jax.Array, ...]
    valid_NxS: jax.Array  # bool: prompt slots from prefill (padding False), later slots True
    pos_N: jax.Array  # int32: rotary position of the row's next token
    index: jax.Array  # int32 scalar: next slot to write

    @classmethod
    def from_kv_cache(cls, cache: KVCache) -> DecodeCache:
        """Transposes a (prefilled) model cache once; slots from `index` on will be decode tokens."""
        swap = lambda x: constrain(jnp.swapaxes(x, 1, 2), KV_AXES)
        future_S = jnp.arange(cache.size) >= cache.index
        return cls(
            k=tuple(swap(x) for x in cache.k),
            v=tuple(swap(x) for x in cache.v),
            valid_NxS=cache.valid_BxS | future_S[None, :],
            pos_N=cache.next_pos_B,
            index=cache.index,
        )


def _attention(
    attn: Attention,
    h_Nx1xD: jax.Array,
    pos_Nx1: jax.Array,
    kc_NxKxSxH: jax.Array,
    vc_NxKxSxH: jax.Array,
    mask_NxS: jax.Array,
    index: jax.Array,
    inv_freq: jax.Array,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Attention of one new token per row; returns (output [N, 1, D], new k cache, new v cache)."""
    cfg = attn.cfg
    n, k_heads, h = h_Nx1xD.shape[0], cfg.n_kv_heads, cfg.head_dim
    g = cfg.n_heads // k_heads
    q = apply_rope(attn._proj(h_Nx1xD, "q"), pos_Nx1, inv_freq)  # [N, 1, K*G, H]
    k = apply_rope(attn._proj(h_Nx1xD, "k"), pos_Nx1, inv_freq)  # [N, 1, K, H]
    v = attn._proj(h_Nx1xD, "v")
    # (1) Write the new key/value into slot `index` (a [N, K, 1, H] update, in place in the loop).
    start = (0, 0, index, 0)
    kc = jax.lax.dynamic_update_slice(
        kc_NxKxSxH, jnp.swapaxes(k, 1, 2).astype(kc_NxKxSxH.dtype), start
    )
    vc = jax.lax.dynamic_update_slice(
        vc_NxKxSxH, jnp.swapaxes(v, 1, 2).astype(vc_NxKxSxH.dtype), start
    )
    kc, vc = constrain(kc, KV_AXES), constrain(vc, KV_AXES)
    # (2) Scores of the G query heads of each kv head against all slots; masked softmax in f32.
    q_NxKxGxH = q.reshape(n, k_heads, g, h)
    scores = jnp.einsum("nkgh,nksh->nkgs", q_NxKxGxH, kc.astype(q.dtype)).astype(jnp.float32)
    scores = jnp.where(mask_NxS[:, None, None, :], scores / math.sqrt(h), _NEG)
    probs = jax.nn.softmax(scores, axis=-1).astype(cfg.compute_dtype)
    # (3) Weighted values, then the output projection.
    out = jnp.einsum("nkgs,nksh->nkgh", probs, vc.astype(cfg.compute_dtype))
    out_Nx1xNHxH = out.reshape(n, 1, k_heads * g, h)
    y = jnp.einsum("btnh,nhd->btd", out_Nx1xNHxH, attn.o_proj[...].astype(cfg.compute_dtype))
    return y, kc, vc


def decode_step(
    model: Transformer, cache: DecodeCache, tokens_N: jax.Array
) -> tuple[jax.Array, DecodeCache]:
    """Feeds one token per row; returns (float32 next-token logits [N, V], updated cache)."""
    cfg = model.cfg
    s = cache.valid_NxS.shape[1]
    mask_NxS = cache.valid_NxS & (jnp.arange(s) <= cache.index)[None, :]
    pos_Nx1 = cache.pos_N[:, None]
    inv_freq = rope_inv_freq(cfg)
    x = jnp.take(model.embed[...], tokens_N[:, None], axis=0).astype(cfg.compute_dtype)
    x = constrain(x, ("batch", "length", "embed"))
    new_k, new_v = [], []
    for i, layer in enumerate(model.layers):
        a, kc, vc = _attention(
            layer.attn,
            layer.attn_norm(x),
            pos_Nx1,
            cache.k[i],
            cache.v[i],
            mask_NxS,
            cache.index,
            inv_freq,
        )
        x = x + a
        x = x + layer.mlp(layer.mlp_norm(x))
        x = constrain(x, ("batch", "length", "embed"))
        new_k.append(kc)
        new_v.append(vc)
    logits_NxV = model.logits(model.final_norm(x))[:, 0]
    new_cache = cache.replace(
        k=tuple(new_k), v=tuple(new_v), pos_N=cache.pos_N + 1, index=cache.index + 1
    )
    return logits_NxV, new_cache
