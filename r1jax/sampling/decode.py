"""One-token decode step with a decode-friendly cache layout (the sampler's hot loop).

Letters: N rows, K kv heads, G = heads per kv head, S cache slots, H head dim, D d_model, V vocab,
L positions of the rotary table.

Why not `Transformer.__call__` with its `KVCache`? That cache is [N, S, K, H] (the layout prefill,
sharding rules and other code use). For a single query token XLA:CPU then transposes every layer's
whole cache twice per step to batch the (N, K) dims of the attention matmuls, and recomputes the
rotary cos/sin inside every fusion that uses them. Here the cache is re-laid out once after prefill
(keys [N, K, H, S], values [N, K, S, H]: both attention matmuls become plain batched GEMMs), cos/sin
come from a table built once per call, and everything else reuses the model's own modules (norms,
projections, MLP, head), so the numerics are the model's. Tests check this step against the model's
cached call and its uncached forward.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx, struct

from r1jax.model.config import ModelConfig
from r1jax.model.kv_cache import KVCache
from r1jax.model.transformer import _NEG, Attention, Transformer, rope_inv_freq
from r1jax.parallel.sharding import constrain, embed_lookup

# What this step implements. A model with other config fields or parameters (a new attention
# variant, say) makes `unsupported` say why, and the sampler falls back to the model's own call.
_KNOWN_CONFIG = frozenset(
    "vocab_size d_model n_layers n_heads n_kv_heads head_dim mlp_dim rope_theta rope_scaling "
    "norm_eps qkv_bias tie_embeddings max_len dtype param_dtype remat".split()
)
_KNOWN_LAYER = {
    "attn": {"q_proj", "k_proj", "v_proj", "o_proj", "q_bias", "k_bias", "v_bias"},
    "attn_norm": {"scale"},
    "mlp_norm": {"scale"},
    "mlp": {"gate_proj", "up_proj", "down_proj"},
}
_KNOWN_TOP = {"embed", "layers", "final_norm", "lm_head"}

K_AXES = ("batch", "kv_heads", "head_dim", "cache_length")  # keys transposed: [N, K, H, S]
V_AXES = ("batch", "kv_heads", "cache_length", "head_dim")  # values: [N, K, S, H]


def unsupported(model: nnx.Module, params: dict) -> str | None:
    """None when `decode_step` computes exactly what `model` does, else the reason it may not."""
    if type(model) is not Transformer:
        return f"model is a {type(model).__name__}, not r1jax's Transformer"
    extra = {f.name for f in dataclasses.fields(model.cfg)} - _KNOWN_CONFIG
    if extra:
        return f"config fields {sorted(extra)} are unknown to the fast decode step"
    extra = set(params) - _KNOWN_TOP
    for layer in params.get("layers", {}).values():
        for name, sub in layer.items():
            known = _KNOWN_LAYER.get(name)
            extra |= {name} if known is None else {f"{name}.{k}" for k in set(sub) - known}
    return f"parameters {sorted(extra)} are unknown to the fast decode step" if extra else None


def rope_table(cfg: ModelConfig, length: int) -> tuple[jax.Array, jax.Array]:
    """(cos, sin) [L, H/2] for positions 0..L-1, computed as `transformer.apply_rope` does."""
    pos_Lx1 = jnp.arange(length, dtype=jnp.int32)[:, None].astype(jnp.float32)
    angles_LxH2 = pos_Lx1 * rope_inv_freq(cfg)[None, :]
    return jnp.cos(angles_LxH2), jnp.sin(angles_LxH2)


def _rope(x_NxCxH: jax.Array, cos_NxH2: jax.Array, sin_NxH2: jax.Array) -> jax.Array:
    """`apply_rope` (rotate-half layout) for one position per row, from table rows."""
    cos, sin = cos_NxH2[:, None, :], sin_NxH2[:, None, :]
    x = x_NxCxH.astype(jnp.float32)
    x1, x2 = jnp.split(x, 2, axis=-1)
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x_NxCxH.dtype)


@struct.dataclass
class DecodeCache:
    """Per-layer keys [N, K, H, S] and values [N, K, S, H]; all rows write slot `index` each step.

    Keys are stored transposed so that both attention matmuls are plain (non-transposed) batched
    GEMMs over (N, K): scores = q[G, H] @ k[H, S], out = probs[G, S] @ v[S, H].
    """

    k: tuple[jax.Array, ...]
    v: tuple[jax.Array, ...]
    valid_NxS: jax.Array  # bool: prompt slots from prefill (padding False), later slots True
    pos_N: jax.Array  # int32: rotary position of the row's next token
    index: jax.Array  # int32 scalar: next slot to write

    @classmethod
    def from_kv_cache(cls, cache: KVCache) -> DecodeCache:
        """Transposes a (prefilled) model cache once; slots from `index` on will be decode tokens."""
        keys = lambda x: constrain(jnp.transpose(x, (0, 2, 3, 1)), K_AXES)
        values = lambda x: constrain(jnp.swapaxes(x, 1, 2), V_AXES)
        future_S = jnp.arange(cache.size) >= cache.index
        return cls(
            k=tuple(keys(x) for x in cache.k),
            v=tuple(values(x) for x in cache.v),
            valid_NxS=cache.valid_BxS | future_S[None, :],
            pos_N=cache.next_pos_B,
            index=cache.index,
        )

    def repeat(self, g: int) -> DecodeCache:
        """Each row g times in place ([b0, b0, ..., b1, ...]): G samples share one prefill."""
        rep = lambda x, names: constrain(jnp.repeat(x, g, axis=0), names)
        return self.replace(
            k=tuple(rep(x, K_AXES) for x in self.k),
            v=tuple(rep(x, V_AXES) for x in self.v),
            valid_NxS=rep(self.valid_NxS, ("batch", "cache_length")),
            pos_N=rep(self.pos_N, ("batch",)),
        )


def _attention(
    attn: Attention,
    h_Nx1xD: jax.Array,
    rope: tuple[jax.Array, jax.Array],
    kc_NxKxHxS: jax.Array,
    vc_NxKxSxH: jax.Array,
    mask_NxS: jax.Array,
    index: jax.Array,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Attention of one new token per row; returns (output [N, 1, D], new k cache, new v cache)."""
    cfg = attn.cfg
    n, k_heads, h = h_Nx1xD.shape[0], cfg.n_kv_heads, cfg.head_dim
    g = cfg.n_heads // k_heads
    q = _rope(attn._proj(h_Nx1xD, "q")[:, 0], *rope)  # [N, K*G, H]
    k = _rope(attn._proj(h_Nx1xD, "k")[:, 0], *rope)  # [N, K, H]
    v = attn._proj(h_Nx1xD, "v")[:, 0]
    # (1) Write the new key/value into slot `index` (in place: the cache is the loop's carry).
    k_NxKxHx1 = k[..., None].astype(kc_NxKxHxS.dtype)
    v_NxKx1xH = v[:, :, None, :].astype(vc_NxKxSxH.dtype)
    kc = constrain(jax.lax.dynamic_update_slice(kc_NxKxHxS, k_NxKxHx1, (0, 0, 0, index)), K_AXES)
    vc = constrain(jax.lax.dynamic_update_slice(vc_NxKxSxH, v_NxKx1xH, (0, 0, index, 0)), V_AXES)
    # (2) Scores of the G query heads of each kv head against all slots; masked softmax in f32.
    q_NxKxGxH = q.reshape(n, k_heads, g, h)
    scores = jnp.einsum("nkgh,nkhs->nkgs", q_NxKxGxH, kc.astype(q.dtype)).astype(jnp.float32)
    scores = jnp.where(mask_NxS[:, None, None, :], scores / math.sqrt(h), _NEG)
    probs = jax.nn.softmax(scores, axis=-1).astype(cfg.compute_dtype)
    # (3) Weighted values, then the output projection.
    out = jnp.einsum("nkgs,nksh->nkgh", probs, vc.astype(cfg.compute_dtype))
    out_Nx1xNHxH = out.reshape(n, 1, k_heads * g, h)
    y = jnp.einsum("btnh,nhd->btd", out_Nx1xNHxH, attn.o_proj[...].astype(cfg.compute_dtype))
    return y, kc, vc


def decode_step(
    model: Transformer,
    cache: DecodeCache,
    tokens_N: jax.Array,
    rope_LxH2: tuple[jax.Array, jax.Array],
) -> tuple[jax.Array, DecodeCache]:
    """Feeds one token per row; returns (float32 next-token logits [N, V], updated cache).

    `rope_LxH2` is `rope_table(cfg, L)` with L above every row's position.
    """
    cfg = model.cfg
    s = cache.valid_NxS.shape[1]
    mask_NxS = cache.valid_NxS & (jnp.arange(s) <= cache.index)[None, :]
    rope = tuple(jnp.take(t, cache.pos_N, axis=0) for t in rope_LxH2)  # [N, H/2] each
    x = embed_lookup(model.embed[...], tokens_N[:, None], cfg.compute_dtype)
    new_k, new_v = [], []
    for i, layer in enumerate(model.layers):
        a, kc, vc = _attention(
            layer.attn,
            layer.attn_norm(x),
            rope,
            cache.k[i],
            cache.v[i],
            mask_NxS,
            cache.index,
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
