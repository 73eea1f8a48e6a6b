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
from flax import nnx

from r1jax.model.config import ModelConfig
from r1jax.model.layers import scan_layers
from r1jax.model.transformer import (
    _NEG,
    MLP,
    Attention,
    Block,
    Transformer,
    _matmul,
    rope_inv_freq,
)
from r1jax.parallel.sharding import constrain, embed_lookup
from r1jax.sampling.decode_cache import K_AXES, V_AXES, DecodeCache

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


def _to_rows(x_BxKxGxQx_: jax.Array) -> jax.Array:
    """[B, K, G, Q, ...] -> [N, K, Q, ...] (row b * G + g)."""
    b, k, g = x_BxKxGxQx_.shape[:3]
    return jnp.swapaxes(x_BxKxGxQx_, 1, 2).reshape(b * g, k, *x_BxKxGxQx_.shape[3:])


def fuse_weights(model: Transformer) -> dict | tuple[dict, ...]:
    """Per layer (one dict of [L, ...] arrays under `scan_layers`, else an L-tuple): the q, k and v
    projections side by side as one [D, (N + 2K) * H] matrix (with their biases), and gate and up as
    one [D, 2F], in the compute dtype. Built once per sampler call, outside the token loop: a step
    then runs 4 weight matmuls per layer instead of 7: on the 2-core CPU at 64 rows the sampler
    ran 1.057x faster (`benchmarks/sampling.py`, `generate_unfused_s`). Each output column is still
    a dot product over the same D inputs: the logits equal the unfused step's to float32 rounding
    (tests/test_sampling.py), and the benchmark's 64 x 64 sampled tokens were identical.
    """
    cfg = model.cfg
    dt = cfg.compute_dtype
    flat = lambda w: w[...].reshape(*w.shape[:-2], -1)  # noqa: E731 - [.., D, N, H] -> [.., D, N*H]

    def one(layer: Block) -> dict:
        a, m = layer.attn, layer.mlp
        out = {
            "qkv": jnp.concatenate([flat(a.q_proj), flat(a.k_proj), flat(a.v_proj)], -1).astype(dt),
            "gate_up": jnp.concatenate([m.gate_proj[...], m.up_proj[...]], -1).astype(dt),
        }
        if cfg.qkv_bias:
            biases = (flat(a.q_bias), flat(a.k_bias), flat(a.v_bias))
            out["qkv_bias"] = jnp.concatenate(biases, -1).astype(dt)
        return out

    return one(model.layers) if cfg.scan_layers else tuple(one(x) for x in model.layers)


def _projections(attn: Attention, h_Nx1xD: jax.Array, fw: dict | None):
    """(q [N, K*Q, H], k [N, K, H], v [N, K, H]) before rope: three matmuls, or one with `fw`."""
    if fw is None:
        return tuple(attn._proj(h_Nx1xD, name)[:, 0] for name in "qkv")
    cfg = attn.cfg
    n, h, nq, k_heads = h_Nx1xD.shape[0], cfg.head_dim, cfg.n_heads, cfg.n_kv_heads
    y = _matmul(h_Nx1xD, fw["qkv"])[:, 0]
    if "qkv_bias" in fw:
        y = y + fw["qkv_bias"][None]
    q, k, v = jnp.split(y, [nq * h, (nq + k_heads) * h], axis=-1)
    return q.reshape(n, nq, h), k.reshape(n, k_heads, h), v.reshape(n, k_heads, h)


def _mlp(mlp: MLP, x_Nx1xD: jax.Array, fw: dict | None) -> jax.Array:
    """`MLP.__call__`, with gate and up as one matmul when `fw` holds them side by side."""
    if fw is None:
        return mlp(x_Nx1xD)
    gate, up = jnp.split(_matmul(x_Nx1xD, fw["gate_up"]), 2, axis=-1)
    h = constrain(jax.nn.silu(gate) * up, ("batch", "length", "mlp"))
    return _matmul(h, mlp.down_proj[...].astype(mlp.dtype))


def _attention(attn: Attention, h_Nx1xD, rope, pk, pv, kc, vc, masks, index, g: int, fw=None):
    """Attention of one new token per row; returns (output [N, 1, D], new k cache, new v cache)."""
    cfg = attn.cfg
    n, k_heads, h = h_Nx1xD.shape[0], cfg.n_kv_heads, cfg.head_dim
    b, q_heads = n // g, cfg.n_heads // k_heads
    prompt_mask_BxP, comp_mask_C = masks
    q, k, v = _projections(attn, h_Nx1xD, fw)
    q, k = _rope(q, *rope), _rope(k, *rope)  # q [N, K*Q, H], k [N, K, H]
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


def _block(layer: Block, x, rope, pk, pv, kc, vc, masks, index, g: int, fw=None):
    """One transformer block for one token per row: (x, new k cache, new v cache)."""
    a, kc, vc = _attention(
        layer.attn, layer.attn_norm(x), rope, pk, pv, kc, vc, masks, index, g, fw
    )
    x = x + a
    x = x + _mlp(layer.mlp, layer.mlp_norm(x), fw)
    return constrain(x, ("batch", "length", "embed")), kc, vc


def decode_step(
    model: Transformer,
    cache: DecodeCache,
    tokens_N: jax.Array,
    rope_LxH2: tuple[jax.Array, jax.Array],
    fused: dict | tuple[dict, ...] | None = None,
) -> tuple[jax.Array, DecodeCache]:
    """Feeds one token per row; returns (float32 next-token logits [N, V], updated cache).

    `rope_LxH2` is `rope_table(cfg, L)` with L above every row's position; `fused` is
    `fuse_weights(model)` (None: the model's own projections, 7 matmuls per layer).
    """
    cfg, g = model.cfg, cache.group
    c = (cache.k if cfg.scan_layers else cache.k[0]).shape[-1]
    masks = (cache.prompt_valid_BxP, jnp.arange(c) <= cache.index)
    rope = tuple(jnp.take(t, cache.pos_N, axis=0) for t in rope_LxH2)  # [N, H/2] each
    x = embed_lookup(model.embed[...], tokens_N[:, None], cfg.compute_dtype)
    if cfg.scan_layers:  # completion cache in the carry: each layer writes one slot in place

        def step(layer, carry, xs):
            x, k_all, v_all = carry
            i, pk, pv, fw = xs
            kc, vc = k_all[i], v_all[i]
            x, kc, vc = _block(layer, x, rope, pk, pv, kc, vc, masks, cache.index, g, fw)
            at = cache.index
            k_new = jax.lax.dynamic_slice_in_dim(kc, at, 1, axis=3)[None]  # only the new slot
            v_new = jax.lax.dynamic_slice_in_dim(vc, at, 1, axis=2)[None]
            k_all = jax.lax.dynamic_update_slice(k_all, k_new, (i, 0, 0, 0, at))
            v_all = jax.lax.dynamic_update_slice(v_all, v_new, (i, 0, 0, at, 0))
            return (x, k_all, v_all), None

        xs = (jnp.arange(cfg.n_layers), cache.pk, cache.pv, fused)
        (x, new_k, new_v), _ = scan_layers(model.layers, step, (x, cache.k, cache.v), xs, None)
    else:
        new_k, new_v = [], []
        for i, layer in enumerate(model.layers):
            args = (cache.pk[i], cache.pv[i], cache.k[i], cache.v[i], masks, cache.index, g)
            x, kc, vc = _block(layer, x, rope, *args, None if fused is None else fused[i])
            new_k.append(kc)
            new_v.append(vc)
        new_k, new_v = tuple(new_k), tuple(new_v)
    logits_NxV = model.logits(model.final_norm(x))[:, 0]
    new_cache = cache.replace(k=new_k, v=new_v, pos_N=cache.pos_N + 1, index=cache.index + 1)
    return logits_NxV, new_cache
