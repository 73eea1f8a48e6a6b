"""Pure functions over (graphdef, params): what jitted code and notebooks call.

`params` is a pure dict of arrays (nnx.to_pure_dict of the model state), so optax, Orbax and
`jax.tree` work on it directly and swapping parameters never retraces.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from r1jax.model.config import ModelConfig
from r1jax.model.hf_import import abstract_model
from r1jax.model.kv_cache import KVCache
from r1jax.model.layers import unstack_layers
from r1jax.model.transformer import Transformer
from r1jax.parallel import sharding


def create(
    cfg: ModelConfig, seed: int, mesh: Any, rules: sharding.Rules
) -> tuple[nnx.GraphDef, dict, dict]:
    """Initialises the transformer straight into its shards: (graphdef, params, param shardings)."""
    return sharding.init_sharded(lambda: Transformer(cfg, nnx.Rngs(seed)), mesh, rules)


def apply(
    graphdef: nnx.GraphDef,
    params: dict,
    tokens_BxT: jax.Array,
    valid_BxT: jax.Array | None = None,
    cache: KVCache | None = None,
    return_hidden: bool = False,
    segment_ids_BxT: jax.Array | None = None,
) -> tuple[jax.Array, KVCache | None]:
    """Runs the model as a pure function; see `Transformer.__call__` (segment ids: packed rows)."""
    model = nnx.merge(graphdef, params)
    return model(
        tokens_BxT, valid_BxT, cache, return_hidden=return_hidden, segment_ids_BxT=segment_ids_BxT
    )


def token_logprobs(
    logits_BxTxV: jax.Array, targets_BxT: jax.Array, temperature: float = 1.0
) -> jax.Array:
    """log softmax(logits / temperature)[target] per position, in float32 (no V-sized gather copy)."""
    z = logits_BxTxV.astype(jnp.float32) / temperature
    picked = jnp.take_along_axis(z, targets_BxT[..., None], axis=-1)[..., 0]
    return picked - jax.nn.logsumexp(z, axis=-1)


def head(graphdef: nnx.GraphDef, params: dict, x_BxTxD: jax.Array) -> jax.Array:
    """The output head on final hidden states (from `apply(..., return_hidden=True)`): f32 logits."""
    return nnx.merge(graphdef, params).logits(x_BxTxD)


def model_config(graphdef: nnx.GraphDef, params: dict) -> ModelConfig:
    """The ModelConfig a (graphdef, params) pair was built with."""
    return nnx.merge(graphdef, params).cfg


def unrolled(graphdef: nnx.GraphDef, params: dict) -> tuple[nnx.GraphDef, dict]:
    """The same model in the unrolled layout (L layer modules, `scan_layers=False`): its graphdef
    and the stacked params sliced per layer (inside jit: one copy of the layer weights). A model
    already unrolled comes back unchanged. The sampler decodes through it on a GPU, where the
    unrolled layout decoded 1.73x faster than the scan (`sample.SamplingConfig.unroll_layers`)."""
    cfg = model_config(graphdef, params)
    if not cfg.scan_layers:
        return graphdef, params
    graphdef_u, _, _ = abstract_model(dataclasses.replace(cfg, scan_layers=False))
    return graphdef_u, unstack_layers(params)
