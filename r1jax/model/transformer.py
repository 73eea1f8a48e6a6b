"""A decoder-only transformer of the Llama / Qwen2 family in Flax NNX.

Letters: B batch, T query length, S key slots, D d_model, N query heads, K kv heads, G = N // K,
H head dim, F mlp dim, V vocab.

Parameters and main activations carry logical axis names only; `sharding.py` maps them to the mesh.
Positions come from the validity mask (`cumsum(valid) - 1`), so a left-padded row sees exactly the
positions of the same row unpadded. With a `KVCache` the call writes its keys/values into the cache
and attends to every valid slot up to its own.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from r1jax.model import packing
from r1jax.model.config import ModelConfig
from r1jax.model.kv_cache import KVCache
from r1jax.parallel.sharding import constrain

_NEG = -1e30  # finite "minus infinity": a fully masked (padding) query gets a uniform, finite row
_CAUSAL_HALVES_MIN_T = 128  # uncached calls this long split the queries in two causal halves


def _matmul(x: jax.Array, w: jax.Array, n_in: int = 1) -> jax.Array:
    """x [B, T, *in] @ w [*in, *out] (the first n_in axes of w contracted) as one 2-D matmul.

    The same sums as the einsum, written over B*T rows because XLA:CPU then computes the weight
    gradients without a transposed copy of the [B*T, out] activation gradient: with 3-D operands
    that copy was ~1/3 of the MLP's forward + backward time (see benchmarks/train_step.py).
    """
    b, t = x.shape[:2]
    k = math.prod(w.shape[:n_in])
    y = x.reshape(b * t, k) @ w.reshape(k, -1)
    return y.reshape(b, t, *w.shape[n_in:])


def _param(rngs: nnx.Rngs, shape, names, dtype, fan_in: int) -> nnx.Param:
    init = jax.nn.initializers.normal(stddev=1.0 / math.sqrt(fan_in))
    return nnx.Param(init(rngs.params(), shape, dtype), out_sharding=names)


class RMSNorm(nnx.Module):
    def __init__(self, cfg: ModelConfig):
        self.eps = cfg.norm_eps
        self.scale = nnx.Param(jnp.ones((cfg.d_model,), cfg.weight_dtype), out_sharding=("embed",))

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        return (y * self.scale[...].astype(jnp.float32)[None, None]).astype(x.dtype)


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


class Attention(nnx.Module):
    """Grouped-query attention with optional q/k/v bias (Qwen2)."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        d, n, k, h, w = cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.weight_dtype
        self.cfg = cfg
        self.q_proj = _param(rngs, (d, n, h), ("embed", "heads", "head_dim"), w, d)
        self.k_proj = _param(rngs, (d, k, h), ("embed", "kv_heads", "head_dim"), w, d)
        self.v_proj = _param(rngs, (d, k, h), ("embed", "kv_heads", "head_dim"), w, d)
        self.o_proj = _param(rngs, (n, h, d), ("heads", "head_dim", "embed"), w, n * h)
        if cfg.qkv_bias:
            self.q_bias = nnx.Param(jnp.zeros((n, h), w), out_sharding=("heads", "head_dim"))
            self.k_bias = nnx.Param(jnp.zeros((k, h), w), out_sharding=("kv_heads", "head_dim"))
            self.v_bias = nnx.Param(jnp.zeros((k, h), w), out_sharding=("kv_heads", "head_dim"))

    def _proj(self, x: jax.Array, name: str) -> jax.Array:
        dt = self.cfg.compute_dtype
        y = _matmul(x, getattr(self, name + "_proj")[...].astype(dt))
        if self.cfg.qkv_bias:
            y = y + getattr(self, name + "_bias")[...].astype(dt)[None, None]
        return y

    def __call__(
        self,
        x_BxTxD: jax.Array,
        pos_BxT: jax.Array,
        q_slot_T: jax.Array,
        layer_kv: tuple[jax.Array, jax.Array] | None,
        key_valid_BxS: jax.Array,
        write_index: jax.Array | None,
        inv_freq: jax.Array,
    ) -> tuple[jax.Array, tuple[jax.Array, jax.Array] | None]:
        cfg = self.cfg
        q = apply_rope(self._proj(x_BxTxD, "q"), pos_BxT, inv_freq)
        k = apply_rope(self._proj(x_BxTxD, "k"), pos_BxT, inv_freq)
        v = self._proj(x_BxTxD, "v")
        q = constrain(q, ("batch", "length", "heads", "head_dim"))
        if layer_kv is not None:  # write this call's keys/values into the cache slots
            start = (0, write_index, 0, 0)
            k = jax.lax.dynamic_update_slice(layer_kv[0], k.astype(layer_kv[0].dtype), start)
            v = jax.lax.dynamic_update_slice(layer_kv[1], v.astype(layer_kv[1].dtype), start)
            k = constrain(k, ("batch", "cache_length", "kv_heads", "head_dim"))
            v = constrain(v, ("batch", "cache_length", "kv_heads", "head_dim"))
            new_kv = (k, v)
        else:
            new_kv = None
        b, t, n, h = q.shape
        if layer_kv is None and t % 2 == 0 and t >= _CAUSAL_HALVES_MIN_T:
            # Without a cache, queries [0, t/2) see only keys [0, t/2): computing that half
            # against half the keys skips a quarter of the score/softmax work (~4 % of a training
            # step at T=256). Valid rows get the same sums (the skipped keys had weight exactly 0).
            m = t // 2
            kv1, kv2 = packing.split_queries(key_valid_BxS, m)
            first = self._core(q[:, :m], k[:, :m], v[:, :m], q_slot_T[:m], kv1)
            second = self._core(q[:, m:], k, v, q_slot_T[m:], kv2)
            out = jnp.concatenate([first, second], axis=1)
        else:
            out = self._core(q, k, v, q_slot_T, key_valid_BxS)
        y = _matmul(out, self.o_proj[...].astype(cfg.compute_dtype), n_in=2)
        return y, new_kv

    def _core(
        self,
        q_BxTxNxH: jax.Array,
        k_BxSxKxH: jax.Array,
        v_BxSxKxH: jax.Array,
        q_slot_T: jax.Array,
        key_valid_BxS: jax.Array,
    ) -> jax.Array:
        """softmax(q k^T / sqrt(H) + causal/validity mask) v, grouped-query: [B, T, N, H]."""
        cfg = self.cfg
        q, k, v = q_BxTxNxH, k_BxSxKxH, v_BxSxKxH
        b, t, n, h = q.shape
        g = n // cfg.n_kv_heads
        q = q.reshape(b, t, cfg.n_kv_heads, g, h)
        scores = jnp.einsum("btkgh,bskh->bkgts", q, k.astype(q.dtype)).astype(jnp.float32)
        scores = scores / math.sqrt(h)
        s = k.shape[1]
        kv = key_valid_BxS if key_valid_BxS.ndim == 3 else key_valid_BxS[:, None, :]  # packed: 3-D
        mask = (jnp.arange(s)[None, :] <= q_slot_T[:, None])[None] & kv
        scores = jnp.where(mask[:, None, None], scores, _NEG)
        probs = jax.nn.softmax(scores, axis=-1).astype(cfg.compute_dtype)
        out = jnp.einsum("bkgts,bskh->btkgh", probs, v.astype(cfg.compute_dtype))
        return out.reshape(b, t, n, h)


class MLP(nnx.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        d, f, w = cfg.d_model, cfg.mlp_dim, cfg.weight_dtype
        self.dtype = cfg.compute_dtype
        self.gate_proj = _param(rngs, (d, f), ("embed", "mlp"), w, d)
        self.up_proj = _param(rngs, (d, f), ("embed", "mlp"), w, d)
        self.down_proj = _param(rngs, (f, d), ("mlp", "embed"), w, f)

    def __call__(self, x_BxTxD: jax.Array) -> jax.Array:
        dt = self.dtype
        gate = _matmul(x_BxTxD, self.gate_proj[...].astype(dt))
        up = _matmul(x_BxTxD, self.up_proj[...].astype(dt))
        h = constrain(jax.nn.silu(gate) * up, ("batch", "length", "mlp"))
        return _matmul(h, self.down_proj[...].astype(dt))


class Block(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.attn_norm = RMSNorm(cfg)
        self.attn = Attention(cfg, rngs)
        self.mlp_norm = RMSNorm(cfg)
        self.mlp = MLP(cfg, rngs)

    def __call__(self, x, pos, q_slot, layer_kv, key_valid, write_index, inv_freq):
        a, new_kv = self.attn(
            self.attn_norm(x), pos, q_slot, layer_kv, key_valid, write_index, inv_freq
        )
        x = x + a
        x = x + self.mlp(self.mlp_norm(x))
        return constrain(x, ("batch", "length", "embed")), new_kv


class Transformer(nnx.Module):
    """Token ids -> float32 logits, optionally reading and writing a KV cache."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.cfg = cfg
        self.embed = nnx.Param(
            jax.nn.initializers.normal(stddev=1.0 / math.sqrt(cfg.d_model))(
                rngs.params(), (cfg.vocab_size, cfg.d_model), cfg.weight_dtype
            ),
            out_sharding=("vocab", "embed"),
        )
        self.layers = nnx.List([Block(cfg, rngs) for _ in range(cfg.n_layers)])
        self.final_norm = RMSNorm(cfg)
        if not cfg.tie_embeddings:
            self.lm_head = _param(
                rngs,
                (cfg.d_model, cfg.vocab_size),
                ("embed", "vocab"),
                cfg.weight_dtype,
                cfg.d_model,
            )

    def __call__(
        self,
        tokens_BxT: jax.Array,
        valid_BxT: jax.Array | None = None,
        cache: KVCache | None = None,
        return_hidden: bool = False,
        segment_ids_BxT: jax.Array | None = None,
    ) -> tuple[jax.Array, KVCache | None]:
        """Returns (logits_BxTxV float32 [or final hidden states], updated cache or None).

        valid_BxT marks real tokens (False = left padding); default all True. With a cache, the T
        tokens go into slots [index, index + T) and rows continue from their `next_pos_B`.
        segment_ids_BxT (no cache): packed rows; a token sees only its own segment, whose positions
        restart at 0, so a packed example gets the logits it would get alone (model/packing.py).
        """
        cfg = self.cfg
        b, t = tokens_BxT.shape
        if valid_BxT is None:
            valid_BxT = jnp.ones((b, t), bool)
        steps = jnp.cumsum(valid_BxT.astype(jnp.int32), axis=1)
        if cache is None:
            pos = jnp.maximum(steps - 1, 0)
            q_slot, key_valid, write_index = jnp.arange(t), valid_BxT, None
            if segment_ids_BxT is not None:  # packed rows: [B, T, S] key validity per query
                pos, key_valid = packing.positions_and_mask(segment_ids_BxT, valid_BxT)
        else:
            if segment_ids_BxT is not None:
                raise ValueError("segment_ids_BxT (packed rows) needs an uncached call.")
            pos = cache.next_pos_B[:, None] + jnp.maximum(steps - 1, 0)
            write_index = cache.index
            q_slot = write_index + jnp.arange(t)
            key_valid = jax.lax.dynamic_update_slice(cache.valid_BxS, valid_BxT, (0, write_index))
        inv_freq = rope_inv_freq(cfg)
        x = jnp.take(self.embed[...], tokens_BxT, axis=0).astype(cfg.compute_dtype)
        x = constrain(x, ("batch", "length", "embed"))
        new_k, new_v = [], []
        for i, layer in enumerate(self.layers):
            layer_kv = None if cache is None else (cache.k[i], cache.v[i])
            if cfg.remat:  # also with a cache: the shared-prefix training path uses one
                x, kv = nnx.remat(lambda blk, *a: blk(*a))(
                    layer, x, pos, q_slot, layer_kv, key_valid, write_index, inv_freq
                )
            else:
                x, kv = layer(x, pos, q_slot, layer_kv, key_valid, write_index, inv_freq)
            if kv is not None:
                new_k.append(kv[0])
                new_v.append(kv[1])
        x = self.final_norm(x)
        new_cache = None
        if cache is not None:
            new_cache = KVCache(
                k=tuple(new_k),
                v=tuple(new_v),
                valid_BxS=key_valid,
                next_pos_B=cache.next_pos_B + steps[:, -1],
                index=cache.index + t,
            )
        if return_hidden:
            return x, new_cache
        return self.logits(x), new_cache

    def logits(self, x_BxTxD: jax.Array) -> jax.Array:
        """The output head (tied: the transposed embedding) in float32."""
        dt = self.cfg.compute_dtype
        w = self.embed[...].T if self.cfg.tie_embeddings else self.lm_head[...]
        b, t, d = x_BxTxD.shape
        logits = jnp.dot(
            x_BxTxD.reshape(b * t, d), w.astype(dt), preferred_element_type=jnp.float32
        ).reshape(b, t, -1)  # 2-D, like _matmul
        return constrain(logits, ("batch", "length", "vocab"))
