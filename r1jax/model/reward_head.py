"""The reward model: the policy's transformer with a scalar head read at the last real token.

Letters: B rows, T tokens, D d_model.

    r(x) = w . h_last(x) + b,   h_last = the final-norm hidden state of the row's LAST valid token

"Last valid" is the highest index whose `valid` is True, so the head reads the same token under left
padding (the last column), right padding (column len - 1) and rows with holes (masked special tokens
in the middle of a sampled completion): the transformer takes positions from `cumsum(valid)`, so a
padded row and the same row unpadded see the same positions and the same keys.

The backbone is a whole `Transformer` (its LM head is kept, unused, so a policy checkpoint loads into
it as it is and the parameter tree stays the policy's plus {"head", "head_bias"}). The head carries
the logical name `embed`, so the reward model shards with the policy's rules unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from r1jax.model.config import ModelConfig
from r1jax.model.transformer import Transformer
from r1jax.parallel import sharding
from r1jax.parallel.sharding import constrain


class RewardModel(nnx.Module):
    """Token ids -> one float32 score per row."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.cfg = cfg
        self.backbone = Transformer(cfg, rngs)
        init = jax.nn.initializers.normal(stddev=1.0 / math.sqrt(cfg.d_model))
        self.head = nnx.Param(
            init(rngs.params(), (cfg.d_model,), jnp.float32), out_sharding=("embed",)
        )
        self.head_bias = nnx.Param(jnp.zeros((), jnp.float32), out_sharding=())

    def __call__(self, tokens_BxT: jax.Array, valid_BxT: jax.Array) -> jax.Array:
        h_BxTxD, _ = self.backbone(tokens_BxT, valid_BxT, return_hidden=True)
        t = tokens_BxT.shape[1]
        last_B = (t - 1) - jnp.argmax(valid_BxT[:, ::-1], axis=1)  # highest valid index
        h_BxD = jnp.take_along_axis(h_BxTxD, last_B[:, None, None], axis=1)[:, 0]
        score_B = h_BxD.astype(jnp.float32) @ self.head[...] + self.head_bias[...]
        return constrain(score_B, ("batch",))


def abstract(cfg: ModelConfig, mesh: Any, rules: sharding.Rules) -> tuple[nnx.GraphDef, dict, dict]:
    """(graphdef, abstract params with shardings, shardings) of a reward model, allocating nothing."""
    with nnx.use_eager_sharding(False):
        model = nnx.eval_shape(lambda: RewardModel(cfg, nnx.Rngs(0)))
    graphdef, state = nnx.split(model)
    shapes = nnx.to_pure_dict(state)
    shardings = sharding.tree_shardings(shapes, sharding.param_names(state), mesh, rules)
    target = jax.tree.map(
        lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), shapes, shardings
    )
    return graphdef, target, shardings


def create(
    cfg: ModelConfig, seed: int, mesh: Any, rules: sharding.Rules
) -> tuple[nnx.GraphDef, dict, dict]:
    """A randomly initialised reward model, straight into its shards."""
    return sharding.init_sharded(lambda: RewardModel(cfg, nnx.Rngs(seed)), mesh, rules)


def from_policy(
    cfg: ModelConfig, policy_params: dict, seed: int, mesh: Any, rules: sharding.Rules
) -> tuple[nnx.GraphDef, dict, dict]:
    """A reward model whose backbone is the policy's parameters and whose head is freshly drawn.

    The usual initialisation (InstructGPT, DeepSeek): the RM starts from a model that already reads
    the task. `policy_params` keep their shardings; only the D + 1 head values are created.
    """
    graphdef, target, shardings = abstract(cfg, mesh, rules)
    want = jax.tree.map(lambda x: (x.shape, x.dtype), target["backbone"])
    got = jax.tree.map(lambda x: (x.shape, x.dtype), policy_params)
    if want != got:
        raise ValueError(
            "the policy parameters do not match the reward model's backbone for this ModelConfig "
            "(different shapes or dtypes); initialise the reward model from the same model config."
        )
    w = jax.random.normal(jax.random.key(seed), (cfg.d_model,), jnp.float32)
    head = jax.device_put(w / math.sqrt(cfg.d_model), shardings["head"])
    bias = jax.device_put(jnp.zeros((), jnp.float32), shardings["head_bias"])
    params = {"backbone": policy_params, "head": head, "head_bias": bias}
    return graphdef, params, shardings


def score(
    graphdef: nnx.GraphDef, params: dict, tokens_BxT: jax.Array, valid_BxT: jax.Array
) -> jax.Array:
    """float32 [B] scores as a pure function of (graphdef, params); see `RewardModel`."""
    return nnx.merge(graphdef, params)(tokens_BxT, valid_BxT)
