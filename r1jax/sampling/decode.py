"""One-token decode step over a shared prompt cache (the sampler's hot loop).

Letters: B prompts, G samples per prompt, N = B * G rows, K kv heads, Q = query heads per kv head,
R = G * Q, P prompt slots, C completion slots, H head dim, D d_model, V vocab, L layers (or rotary
table positions in `rope_table`).

Why not `Transformer.__call__` with its `KVCache`? That cache holds every row's whole sequence, so G
samples of a prompt would each need a copy of the prompt's keys and values: G-fold memory and
bandwidth for the prompt part. Here the prompt part is stored ONCE per prompt, [B, K, H, P], and the
G rows of a prompt attend to it together: their G * Q query heads of a kv head form one [R, H] @
[H, P] matmul. Only the completion part, [N, K, H, C], is per row. Cache memory is O(P + G * C) per
prompt instead of O(G * (P + C)). The softmax runs over both parts at once (one max, one sum).

Keys are stored transposed ([.., H, S]) and values as [.., S, H], so both attention matmuls are
plain batched GEMMs (XLA:CPU otherwise transposes the whole cache at every step); cos/sin come from
a table built once per call. Everything else reuses the model's own modules (norms, projections,
MLP, head), so the numerics are the model's. With `scan_layers` the layers run as one scan over the
stacked parameters, the completion cache in the carry. Tests check this step against the model's
cached call and the sampler against an uncached reference and the model's generic cached call.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx, struct

from r1jax.model.config import ModelConfig
from r1jax.model.kv_cache import KVCache, Layers, map_layers
from r1jax.model.layers import scan_layers
from r1jax.model.transformer import _NEG, Attention, Block, Transformer, rope_inv_freq
from r1jax.parallel.sharding import constrain, embed_lookup

# What this step implements. A model with other config fields or parameters (a new attention
# variant, say) makes `unsupported` say why, and the sampler falls back to the model's own call.
_KNOWN_CONFIG = frozenset(
    "vocab_size d_model n_layers n_heads n_kv_heads head_dim mlp_dim rope_theta rope_scaling "
    "norm_eps qkv_bias tie_embeddings max_len dtype param_dtype remat remat_policy "
    "scan_layers attention".split()
)  # `attention` picks the kernel of uncached calls only: every call here is cached
_KNOWN_LAYER = {
    "attn": {"q_proj", "k_proj", "v_proj", "o_proj", "q_bias", "k_bias", "v_bias"},
    "attn_norm": {"scale"},
    "mlp_norm": {"scale"},
    "mlp": {"gate_proj", "up_proj", "down_proj"},
}
_KNOWN_TOP = {"embed", "layers", "final_norm", "lm_head"}

K_AXES = ("batch", "kv_heads", "head_dim", "cache_length")  # keys transposed: [., K, H, S]
V_AXES = ("batch", "kv_heads", "cache_length", "head_dim")  # values: [., K, S, H]


def unsupported(model: nnx.Module, params: dict) -> str | None:
    """None when `decode_step` computes exactly what `model` does, else the reason it may not."""
    if type(model) is not Transformer:
        return f"model is a {type(model).__name__}, not r1jax's Transformer"
    extra = {f.name for f in dataclasses.fields(model.cfg)} - _KNOWN_CONFIG
    if extra:
        return f"config fields {sorted(extra)} are unknown to the fast decode step"
    extra = set(params) - _KNOWN_TOP
    layers = params.get("layers", {})
    for layer in [layers] if model.cfg.scan_layers else layers.values():
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


def _axes(x: Layers, names: tuple) -> tuple:
    return names if isinstance(x, tuple) or x.ndim == len(names) else ("layers", *names)


@struct.dataclass
class DecodeCache:
    """The prompt's keys/values once per prompt, the completion's per row; one write slot per step.

    pk [B, K, H, P] / pv [B, K, P, H] and k [N, K, H, C] / v [N, K, C, H] per layer (an L-tuple, or
    one array with a leading [L] axis under `scan_layers`). Completion slot `index` is written by
    the step that feeds the row's next token; slots after it are never attended.
    """

    pk: Layers
    pv: Layers
    prompt_valid_BxP: jax.Array  # bool: prompt slot holds a real token (False: left padding)
    k: Layers
    v: Layers
    pos_N: jax.Array  # int32: rotary position of the row's next token
    index: jax.Array  # int32 scalar: next completion slot to write

    @property
    def group(self) -> int:
        """G: rows per prompt."""
        return self.pos_N.shape[0] // self.prompt_valid_BxP.shape[0]

    @classmethod
    def from_prefill(cls, cache: KVCache, g: int, slots: int) -> DecodeCache:
        """A prefilled [B]-row model cache (its slots = the prompt) -> G rows per prompt with room
        for `slots` completion tokens; the prompt part is re-laid out, never repeated."""
        keys = lambda x: constrain(jnp.swapaxes(jnp.swapaxes(x, -3, -2), -2, -1), _axes(x, K_AXES))
        values = lambda x: constrain(jnp.swapaxes(x, -3, -2), _axes(x, V_AXES))
        b, _, k_heads, h = (cache.k if cache.stacked else cache.k[0]).shape[-4:]
        n, dt = b * g, (cache.k if cache.stacked else cache.k[0]).dtype

        def empty(shape, names):
            zeros = lambda: jnp.zeros(shape, dt)  # noqa: E731
            if cache.stacked:
                return constrain(jnp.zeros((cache.k.shape[0], *shape), dt), ("layers", *names))
            return tuple(constrain(zeros(), names) for _ in cache.k)

        return cls(
            pk=map_layers(keys, cache.k),
            pv=map_layers(values, cache.v),
            prompt_valid_BxP=cache.valid_BxS,
            k=empty((n, k_heads, h, slots), K_AXES),
            v=empty((n, k_heads, slots, h), V_AXES),
            pos_N=constrain(jnp.repeat(cache.next_pos_B, g), ("batch",)),
            index=jnp.zeros((), jnp.int32),
        )


def _to_rows(x_BxKxGxQx_: jax.Array) -> jax.Array:
    """[B, K, G, Q, ...] -> [N, K, Q, ...] (row b * G + g)."""
    b, k, g = x_BxKxGxQx_.shape[:3]
    return jnp.swapaxes(x_BxKxGxQx_, 1, 2).reshape(b * g, k, *x_BxKxGxQx_.shape[3:])


def _attention(attn: Attention, h_Nx1xD, rope, pk, pv, kc, vc, masks, index, g: int):
    """Attention of one new token per row; returns (output [N, 1, D], new k cache, new v cache)."""
    cfg = attn.cfg
    n, k_heads, h = h_Nx1xD.shape[0], cfg.n_kv_heads, cfg.head_dim
    b, q_heads = n // g, cfg.n_heads // k_heads
    prompt_mask_BxP, comp_mask_C = masks
    q = _rope(attn._proj(h_Nx1xD, "q")[:, 0], *rope)  # [N, K*Q, H]
    k = _rope(attn._proj(h_Nx1xD, "k")[:, 0], *rope)  # [N, K, H]
    v = attn._proj(h_Nx1xD, "v")[:, 0]
    # (1) Write the new key/value into completion slot `index` (in place: the loop's carry).
    kc = jax.lax.dynamic_update_slice(kc, k[..., None].astype(kc.dtype), (0, 0, 0, index))
    vc = jax.lax.dynamic_update_slice(vc, v[:, :, None, :].astype(vc.dtype), (0, 0, index, 0))
    kc, vc = constrain(kc, K_AXES), constrain(vc, V_AXES)
    # (2) Scores. Prompt part: the R = G * Q query heads of a prompt's kv head in one matmul.
    q_NxKxQxH = q.reshape(n, k_heads, q_heads, h)
    q_BxKxRxH = jnp.swapaxes(q_NxKxQxH.reshape(b, g, k_heads, q_heads, h), 1, 2)
    q_BxKxRxH = q_BxKxRxH.reshape(b, k_heads, g * q_heads, h)
    s_p = jnp.einsum("bkrh,bkhp->bkrp", q_BxKxRxH, pk.astype(q.dtype)).astype(jnp.float32)
    s_p = jnp.where(prompt_mask_BxP[:, None, None, :], s_p / math.sqrt(h), _NEG)
    s_c = jnp.einsum("nkqh,nkhc->nkqc", q_NxKxQxH, kc.astype(q.dtype)).astype(jnp.float32)
    s_c = jnp.where(comp_mask_C[None, None, None, :], s_c / math.sqrt(h), _NEG)
    # (3) One softmax over both parts: a shared max and sum per query head.
    m_p = _to_rows(jnp.max(s_p, axis=-1).reshape(b, k_heads, g, q_heads))  # [N, K, Q]
    m_NxKxQ = jnp.maximum(m_p, jnp.max(s_c, axis=-1))
    m_BxKxR = jnp.swapaxes(m_NxKxQ.reshape(b, g, k_heads, q_heads), 1, 2)
    e_p = jnp.exp(s_p - m_BxKxR.reshape(b, k_heads, g * q_heads)[..., None])
    e_c = jnp.exp(s_c - m_NxKxQ[..., None])
    sum_p = _to_rows(jnp.sum(e_p, axis=-1).reshape(b, k_heads, g, q_heads))
    inv_NxKxQ = 1.0 / (sum_p + jnp.sum(e_c, axis=-1))
    inv_BxKxR = jnp.swapaxes(inv_NxKxQ.reshape(b, g, k_heads, q_heads), 1, 2)
    dt = cfg.compute_dtype
    p_p = (e_p * inv_BxKxR.reshape(b, k_heads, g * q_heads)[..., None]).astype(dt)
    p_c = (e_c * inv_NxKxQ[..., None]).astype(dt)
    # (4) Weighted values of both parts, then the output projection.
    o_p = jnp.einsum("bkrp,bkph->bkrh", p_p, pv.astype(dt))
    o_p = _to_rows(o_p.reshape(b, k_heads, g, q_heads, h))
    out = o_p + jnp.einsum("nkqc,nkch->nkqh", p_c, vc.astype(dt))
    y = jnp.einsum(
        "btnh,nhd->btd", out.reshape(n, 1, k_heads * q_heads, h), attn.o_proj[...].astype(dt)
    )
    return y, kc, vc


def _block(layer: Block, x, rope, pk, pv, kc, vc, masks, index, g: int):
    """One transformer block for one token per row: (x, new k cache, new v cache)."""
    a, kc, vc = _attention(layer.attn, layer.attn_norm(x), rope, pk, pv, kc, vc, masks, index, g)
    x = x + a
    x = x + layer.mlp(layer.mlp_norm(x))
    return constrain(x, ("batch", "length", "embed")), kc, vc


def decode_step(
    model: Transformer,
    cache: DecodeCache,
    tokens_N: jax.Array,
    rope_LxH2: tuple[jax.Array, jax.Array],
) -> tuple[jax.Array, DecodeCache]:
    """Feeds one token per row; returns (float32 next-token logits [N, V], updated cache).

    `rope_LxH2` is `rope_table(cfg, L)` with L above every row's position.
    """
    cfg, g = model.cfg, cache.group
    c = (cache.k if cfg.scan_layers else cache.k[0]).shape[-1]
    masks = (cache.prompt_valid_BxP, jnp.arange(c) <= cache.index)
    rope = tuple(jnp.take(t, cache.pos_N, axis=0) for t in rope_LxH2)  # [N, H/2] each
    x = embed_lookup(model.embed[...], tokens_N[:, None], cfg.compute_dtype)
    if cfg.scan_layers:  # completion cache in the carry: each layer writes one slot in place

        def step(layer, carry, xs):
            x, k_all, v_all = carry
            i, pk, pv = xs
            x, kc, vc = _block(layer, x, rope, pk, pv, k_all[i], v_all[i], masks, cache.index, g)
            at = cache.index
            k_new = jax.lax.dynamic_slice_in_dim(kc, at, 1, axis=3)[None]  # only the new slot
            v_new = jax.lax.dynamic_slice_in_dim(vc, at, 1, axis=2)[None]
            k_all = jax.lax.dynamic_update_slice(k_all, k_new, (i, 0, 0, 0, at))
            v_all = jax.lax.dynamic_update_slice(v_all, v_new, (i, 0, 0, at, 0))
            return (x, k_all, v_all), None

        xs = (jnp.arange(cfg.n_layers), cache.pk, cache.pv)
        (x, new_k, new_v), _ = scan_layers(model.layers, step, (x, cache.k, cache.v), xs, None)
    else:
        new_k, new_v = [], []
        for i, layer in enumerate(model.layers):
            args = (cache.pk[i], cache.pv[i], cache.k[i], cache.v[i], masks, cache.index, g)
            x, kc, vc = _block(layer, x, rope, *args)
            new_k.append(kc)
            new_v.append(vc)
        new_k, new_v = tuple(new_k), tuple(new_v)
    logits_NxV = model.logits(model.final_norm(x))[:, 0]
    new_cache = cache.replace(k=new_k, v=new_v, pos_N=cache.pos_N + 1, index=cache.index + 1)
    return logits_NxV, new_cache
