"""The decode step's cache: each prompt's keys and values once, the completion's per row.

Letters as in decode.py: B prompts, G samples per prompt, N = B * G rows, K kv heads, H head dim,
P prompt slots, C completion slots, L layers.

Keys are stored transposed ([.., H, S]) and values as [.., S, H], so both attention matmuls of the
decode step are plain batched GEMMs (XLA:CPU otherwise transposes the whole cache at every step).
The sampler may grow the completion part between pieces of its decode loop (`resize`), so that
early steps attend to fewer slots.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from r1jax.model.kv_cache import KVCache, Layers, map_layers
from r1jax.parallel.sharding import constrain

K_AXES = ("batch", "kv_heads", "head_dim", "cache_length")  # keys transposed: [., K, H, S]
V_AXES = ("batch", "kv_heads", "cache_length", "head_dim")  # values: [., K, S, H]


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

    def resize(self, slots: int) -> DecodeCache:
        """The same cache grown to `slots` completion slots, the new ones empty at the end: one
        copy of the completion part (the sampler grows it between pieces of its decode loop)."""
        c = (self.k if isinstance(self.k, jax.Array) else self.k[0]).shape[-1]
        if slots < c:
            raise ValueError(f"resize({slots}) would drop completion slots (the cache has {c}).")

        def fit(x, axis, names):
            pad = [(0, 0)] * x.ndim
            pad[axis % x.ndim] = (0, slots - c)
            return constrain(jnp.pad(x, pad), _axes(x, names))

        return self.replace(
            k=map_layers(lambda x: fit(x, -1, K_AXES), self.k),
            v=map_layers(lambda x: fit(x, -2, V_AXES), self.v),
        )
