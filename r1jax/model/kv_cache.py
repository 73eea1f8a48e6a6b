"""The key/value cache: a pytree of arrays with logical axis names, so it shards like activations.

Letters: B batch rows, S cache slots, K kv heads, H head dim, L layers.

Rows are left-padded, so every row writes its next token into the same slot `index`; `valid_BxS`
says which slots hold real tokens (padding slots are never attended) and `next_pos_B` is each row's
next rotary position (its count of real tokens), so a padded row sees the same positions as the
same row unpadded. With `ModelConfig.scan_layers` the keys and values are one stacked [L, B, S, K, H]
array each (what `jax.lax.scan` over the layers reads and writes); otherwise a tuple of L arrays.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from r1jax.model.config import ModelConfig

# Logical axes of each cache leaf; sharding.py maps them to mesh axes with the config's rules.
KV_AXES = ("batch", "cache_length", "kv_heads", "head_dim")
VALID_AXES = ("batch", "cache_length")
POS_AXES = ("batch",)
LAYERS_AXIS = "layers"  # the stacked leading axis (no rule maps it: it is never sharded)

Layers = tuple[jax.Array, ...] | jax.Array  # L x [B, S, K, H], or one [L, B, S, K, H]


@struct.dataclass
class KVCache:
    """Per-layer keys and values plus the bookkeeping shared by all layers."""

    k: Layers
    v: Layers
    valid_BxS: jax.Array  # bool: slot holds a real token
    next_pos_B: jax.Array  # int32: rotary position of the row's next token
    index: jax.Array  # int32 scalar: next slot to write (same for every row)

    @property
    def size(self) -> int:
        return self.valid_BxS.shape[1]

    @property
    def stacked(self) -> bool:
        return not isinstance(self.k, tuple)

    def repeat(self, g: int) -> KVCache:
        """Each row repeated g times in place ([b0,b0,...,b1,b1,...]): one prefill shared by G samples."""
        rep = lambda x: jnp.repeat(x, g, axis=0)  # noqa: E731
        rep_kv = (lambda x: jnp.repeat(x, g, axis=1)) if self.stacked else rep
        return KVCache(
            k=map_layers(rep_kv, self.k),
            v=map_layers(rep_kv, self.v),
            valid_BxS=rep(self.valid_BxS),
            next_pos_B=rep(self.next_pos_B),
            index=self.index,
        )


def map_layers(fn, kv: Layers) -> Layers:
    """fn applied to every layer's array (a tuple), or once to the stacked array."""
    return tuple(fn(x) for x in kv) if isinstance(kv, tuple) else fn(kv)


def init_cache(cfg: ModelConfig, batch: int, size: int) -> KVCache:
    """An empty cache of `size` slots for `batch` rows, in the model's compute dtype."""
    shape = (batch, size, cfg.n_kv_heads, cfg.head_dim)
    if cfg.scan_layers:
        k = jnp.zeros((cfg.n_layers, *shape), cfg.compute_dtype)
        v = jnp.zeros((cfg.n_layers, *shape), cfg.compute_dtype)
    else:
        k = tuple(jnp.zeros(shape, cfg.compute_dtype) for _ in range(cfg.n_layers))
        v = tuple(jnp.zeros(shape, cfg.compute_dtype) for _ in range(cfg.n_layers))
    return KVCache(
        k=k,
        v=v,
        valid_BxS=jnp.zeros((batch, size), bool),
        next_pos_B=jnp.zeros((batch,), jnp.int32),
        index=jnp.zeros((), jnp.int32),
    )


def cache_logical_axes(cfg: ModelConfig) -> KVCache:
    """The cache's logical axis names, as a KVCache-shaped pytree of tuples (for sharding)."""
    if cfg.scan_layers:
        k = v = (LAYERS_AXIS, *KV_AXES)
    else:
        k = v = tuple(KV_AXES for _ in range(cfg.n_layers))
    return KVCache(k=k, v=v, valid_BxS=VALID_AXES, next_pos_B=POS_AXES, index=())
