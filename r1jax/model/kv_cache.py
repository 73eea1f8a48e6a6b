"""The key/value cache: a pytree of arrays with logical axis names, so it shards like activations.

Letters: B batch rows, S cache slots, K kv heads, H head dim, L layers.

Rows are left-padded, so every row writes its next token into the same slot `index`; `valid_BxS`
says which slots hold real tokens (padding slots are never attended) and `next_pos_B` is each row's
next rotary position (its count of real tokens), so a padded row sees the same positions as the
same row unpadded.
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


@struct.dataclass
class KVCache:
    """Per-layer keys and values plus the bookkeeping shared by all layers."""

    k: tuple[jax.Array, ...]  # L x [B, S, K, H]
    v: tuple[jax.Array, ...]  # L x [B, S, K, H]
    valid_BxS: jax.Array  # bool: slot holds a real token
    next_pos_B: jax.Array  # int32: rotary position of the row's next token
    index: jax.Array  # int32 scalar: next slot to write (same for every row)

    @property
    def size(self) -> int:
        return self.valid_BxS.shape[1]

    def repeat(self, g: int) -> KVCache:
        """Each row repeated g times in place ([b0,b0,...,b1,b1,...]): one prefill shared by G samples."""
        rep = lambda x: jnp.repeat(x, g, axis=0)  # noqa: E731
        return KVCache(
            k=tuple(rep(x) for x in self.k),
            v=tuple(rep(x) for x in self.v),
            valid_BxS=rep(self.valid_BxS),
            next_pos_B=rep(self.next_pos_B),
            index=self.index,
        )


def init_cache(cfg: ModelConfig, batch: int, size: int) -> KVCache:
    """An empty cache of `size` slots for `batch` rows, in the model's compute dtype."""
    shape = (batch, size, cfg.n_kv_heads, cfg.head_dim)
    zeros = lambda: jnp.zeros(shape, cfg.compute_dtype)  # noqa: E731
    return KVCache(
        k=tuple(zeros() for _ in range(cfg.n_layers)),
        v=tuple(zeros() for _ in range(cfg.n_layers)),
        valid_BxS=jnp.zeros((batch, size), bool),
        next_pos_B=jnp.zeros((batch,), jnp.int32),
        index=jnp.zeros((), jnp.int32),
    )


def cache_logical_axes(cfg: ModelConfig) -> KVCache:
    """The cache's logical axis names, as a KVCache-shaped pytree of tuples (for sharding)."""
    return KVCache(
        k=tuple(KV_AXES for _ in range(cfg.n_layers)),
        v=tuple(KV_AXES for _ in range(cfg.n_layers)),
        valid_BxS=VALID_AXES,
        next_pos_B=POS_AXES,
        index=(),
    )
