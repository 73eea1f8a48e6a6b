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

from r1jax.model import fused_attention, packing
from r1jax.model.config import ModelConfig
from r1jax.model.kv_cache import KVCache
from r1jax.model.layers import scan_layers, stack_modules
from r1jax.model.rope import apply_rope, rope_inv_freq
from r1jax.parallel.sharding import constrain, embed_lookup

_NEG = -1e30  # finite "minus infinity": a fully masked (padding) query gets a uniform, finite row
_CAUSAL_BLOCK = 64  # uncached calls of >= 2 blocks attend block by block (causal_blocks)


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


def causal_blocks(t: int) -> list[tuple[int, int]]:
    """[start, end) of the query blocks of an uncached call of t tokens: about _CAUSAL_BLOCK each."""
    n = max(t // _CAUSAL_BLOCK, 1)
    bounds = [i * t // n for i in range(n + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


class RMSNorm(nnx.Module):
    def __init__(self, cfg: ModelConfig):
        self.eps = cfg.norm_eps
        self.scale = nnx.Param(jnp.ones((cfg.d_model,), cfg.weight_dtype), out_sharding=("embed",))

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        return (y * self.scale[...].astype(jnp.float32)[None, None]).astype(x.dtype)


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
        blocks = causal_blocks(q.shape[1])  # one block below 2 x _CAUSAL_BLOCK
        if layer_kv is None and cfg.attention == "cudnn":  # the fused kernel (config.py)
            out = fused_attention.cudnn(q, k, v, q_slot_T, key_valid_BxS, cfg.compute_dtype)
        elif layer_kv is None and len(blocks) > 1:
            # Without a cache, queries [s, e) see only keys [0, e): each block of queries is
            # computed against the keys up to its own end, which skips about half of the
            # score/softmax work (and its saved probabilities) at long T. Valid rows get the same
            # sums (the skipped keys had weight exactly 0).
            outs = []
            for s, e in blocks:
                kv_block = packing.query_block(key_valid_BxS, s, e)
                outs.append(self._core(q[:, s:e], k[:, :e], v[:, :e], q_slot_T[s:e], kv_block))
            out = jnp.concatenate(outs, axis=1)
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
        blocks = [Block(cfg, rngs) for _ in range(cfg.n_layers)]
        # scan_layers: one Block of stacked [L, ...] params (the same draws as the unrolled list)
        self.layers = stack_modules(blocks) if cfg.scan_layers else nnx.List(blocks)
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
        x = embed_lookup(self.embed[...], tokens_BxT, cfg.compute_dtype)
        shared = (pos, q_slot, key_valid, write_index, inv_freq)  # the same for every layer
        kv = None if cache is None else (cache.k, cache.v)
        x, new_kv = self._layers(x, kv, shared)
        x = self.final_norm(x)
        new_cache = None
        if cache is not None:
            new_cache = KVCache(
                k=new_kv[0],
                v=new_kv[1],
                valid_BxS=key_valid,
                next_pos_B=cache.next_pos_B + steps[:, -1],
                index=cache.index + t,
            )
        if return_hidden:
            return x, new_cache
        return self.logits(x), new_cache

    def _layers(self, x, kv, shared) -> tuple[jax.Array, tuple | None]:
        """All blocks: unrolled, or one scan over the stacked params (`ModelConfig.scan_layers`).

        `kv` is (keys, values) of the cache (L-tuples, or [L, ...] arrays when scanned) or None;
        remat (also with a cache: the shared-prefix training path uses one) keeps what
        `remat_policy` names.
        """
        cfg = self.cfg
        policy = cfg.remat_policy if cfg.remat else None
        call = lambda blk, h, layer_kv: blk(h, shared[0], shared[1], layer_kv, *shared[2:])  # noqa: E731
        if cfg.scan_layers:
            return scan_layers(self.layers, call, x, kv, policy)
        if policy is not None:
            call = nnx.remat(call, policy=getattr(jax.checkpoint_policies, policy))
        new_k, new_v = [], []
        for i, layer in enumerate(self.layers):
            x, layer_kv = call(layer, x, None if kv is None else (kv[0][i], kv[1][i]))
            if layer_kv is not None:
                new_k.append(layer_kv[0])
                new_v.append(layer_kv[1])
        return x, None if kv is None else (tuple(new_k), tuple(new_v))

    def head_weight(self) -> jax.Array:
        """The output head's [D, V] matrix in the compute dtype (tied: the transposed embedding)."""
        w = self.embed[...].T if self.cfg.tie_embeddings else self.lm_head[...]
        return w.astype(self.cfg.compute_dtype)

    def logits(self, x_BxTxD: jax.Array) -> jax.Array:
        """The output head in float32 (`model/vocab_head.py` computes log-probs without them)."""
        b, t, d = x_BxTxD.shape
        logits = jnp.dot(
            x_BxTxD.reshape(b * t, d), self.head_weight(), preferred_element_type=jnp.float32
        ).reshape(b, t, -1)  # 2-D, like _matmul
        return constrain(logits, ("batch", "length", "vocab"))
