"""Obviously-correct float64 references for the sampler's token choice (shared by the sampling tests)."""

import jax
import numpy as np
from flax import nnx

from r1jax.model import Transformer
from r1jax.parallel import sharding


def draw_reference(z_V: np.ndarray, u: float, top_k: int, top_p: float) -> int:
    """Obviously-correct inverse-CDF draw for one row, in float64.

    No truncation: tokens in id order. Otherwise: sort by decreasing logit (ties: lower id), keep
    the top k, then keep candidates while the (renormalised) mass before them is < top_p.
    """
    if top_k == 0 and top_p >= 1.0:
        order = np.arange(z_V.shape[0])
    else:
        order = np.argsort(-z_V, kind="stable")[: top_k or None]
        p = np.exp(z_V[order].astype(np.float64) - z_V[order].max())
        p /= p.sum()
        order = order[(np.cumsum(p) - p) < top_p]
    p = np.exp(z_V[order].astype(np.float64) - z_V[order].max())
    cum = np.cumsum(p)
    return int(order[np.searchsorted(cum, u * cum[-1], side="right")])


def kept_probs(z_V: np.ndarray, top_k: int, top_p: float) -> np.ndarray:
    """The truncated, renormalised distribution (float64) that draws must follow."""
    order = np.argsort(-z_V, kind="stable")[: top_k or None]
    p = np.exp(z_V[order].astype(np.float64) - z_V[order].max())
    p /= p.sum()
    order = order[(np.cumsum(p) - p) < top_p]
    out = np.zeros(z_V.shape, np.float64)
    out[order] = np.exp(z_V[order].astype(np.float64) - z_V[order].max())
    return out / out.sum()


def abstract_state(cfg):
    with nnx.use_eager_sharding(False):
        return nnx.split(nnx.eval_shape(lambda: Transformer(cfg, nnx.Rngs(0))))


def param_shardings(cfg, mesh):
    """The shardings `api.create` would give, without running the initialiser."""
    _, state = abstract_state(cfg)
    names = sharding.param_names(state)
    return sharding.tree_shardings(nnx.to_pure_dict(state), names, mesh, sharding.DEFAULT_RULES)


def numpy_model(cfg, mesh):
    """(graphdef, params, shardings) with numpy-drawn weights: XLA:CPU takes ~12 s to compile the
    threefry initialiser of `api.create`, and any generic weights serve these tests."""
    graphdef, state = abstract_state(cfg)
    rng = np.random.default_rng(0)

    def draw(path, x):
        if path[-1].key == "scale":  # RMSNorm gains around 1
            return 1.0 + 0.1 * rng.standard_normal(x.shape, np.float32)
        return rng.standard_normal(x.shape, np.float32) / np.sqrt(x.shape[0])

    shardings = param_shardings(cfg, mesh)
    params = jax.tree_util.tree_map_with_path(draw, nnx.to_pure_dict(state))
    return graphdef, jax.device_put(params, shardings), shardings
