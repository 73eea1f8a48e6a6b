"""The model: config, NNX transformer, KV cache, HF import/export, and pure helpers over
(graphdef, params).

May import: parallel.
"""

from r1jax.model.api import apply, create, token_logprobs
from r1jax.model.config import ModelConfig, RopeScaling
from r1jax.model.kv_cache import KVCache, init_cache
from r1jax.model.transformer import Transformer

__all__ = [
    "KVCache",
    "ModelConfig",
    "RopeScaling",
    "Transformer",
    "apply",
    "create",
    "init_cache",
    "token_logprobs",
]
