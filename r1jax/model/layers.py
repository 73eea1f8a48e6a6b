"""The layer stack in two layouts: a list of L modules (unrolled) or one module of stacked params.

Letters: L layers.

With `ModelConfig.scan_layers` every layer parameter has a leading [L] axis (logical name
"layers", never sharded) and the forward pass is one `jax.lax.scan` over it, so XLA compiles one
layer instead of L: compile time stays flat in depth. The parameter values do not depend on the
layout (a stacked model is built from the same L per-layer draws), and `stack_layers` /
`unstack_layers` convert a params dict between the layouts, so checkpoints and Hugging Face files of
either layout load into the other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

LAYERS_AXIS = "layers"


def _is_var(x: Any) -> bool:
    return isinstance(x, nnx.Variable)


def stack_modules(modules: Sequence[nnx.Module]) -> nnx.Module:
    """One module of the same type whose every parameter stacks the L modules' on axis 0."""
    graphdef, _ = nnx.split(modules[0])
    states = [nnx.split(m)[1] for m in modules]

    def stack(*vs: nnx.Variable) -> nnx.Variable:
        out = vs[0].replace(jnp.stack([v.get_value() for v in vs]))
        names = vs[0].get_metadata().get("out_sharding")
        if names is not None:
            out.set_metadata(out_sharding=(LAYERS_AXIS, *names))
        return out

    return nnx.merge(graphdef, jax.tree.map(stack, *states, is_leaf=_is_var))


def scan_layers(
    stacked: nnx.Module,
    step: Callable[[nnx.Module, jax.Array, Any], tuple[jax.Array, Any]],
    x: jax.Array,
    per_layer: Any,
    remat_policy: str | None,
) -> tuple[jax.Array, Any]:
    """x -> step(layer_i, x, per_layer[i]) for i = 0..L-1 as one scan; returns (x, stacked outputs).

    `per_layer` is a pytree of [L, ...] arrays (or None); `remat_policy` names a
    `jax.checkpoint_policies` entry applied to each layer (None: no rematerialisation).
    """
    graphdef, state = nnx.split(stacked)
    params = nnx.to_pure_dict(state)

    def body(h, xs):
        layer_params, extra = xs
        return step(nnx.merge(graphdef, layer_params), h, extra)

    if remat_policy is not None:
        body = jax.checkpoint(body, policy=getattr(jax.checkpoint_policies, remat_policy))
    return jax.lax.scan(body, x, (params, per_layer))


def is_stacked(params: dict) -> bool:
    """True when params["layers"] holds stacked arrays rather than one subtree per layer index."""
    return not all(isinstance(k, int) for k in params["layers"])


def stack_layers(params: dict) -> dict:
    """Unrolled params ({"layers": {0: tree, 1: tree, ...}}) -> stacked ({"layers": tree of [L,...]})."""
    if is_stacked(params):
        return params
    layers = params["layers"]
    trees = [layers[i] for i in sorted(layers)]
    return dict(params, layers=jax.tree.map(lambda *xs: jnp.stack(xs), *trees))


def stack_layers_sharded(params: dict, shardings: Any) -> dict:
    """`stack_layers` for a large model: one parameter at a time, each placed with its sharding
    (`shardings`: the stacked layers subtree's), the L per-layer arrays dropped once their stack
    exists, so the extra memory is one parameter's worth, never a second model."""
    layers = dict(params.pop("layers"))
    trees = [layers.pop(i) for i in sorted(layers)]
    flat = [jax.tree_util.tree_flatten(t) for t in trees]
    treedef = flat[0][1]
    leaves = [list(f[0]) for f in flat]
    out = []
    for j, sh in enumerate(treedef.flatten_up_to(shardings)):
        arrays = [leaves_i[j] for leaves_i in leaves]
        for leaves_i in leaves:
            leaves_i[j] = None
        out.append(jax.jit(lambda *xs: jnp.stack(xs), out_shardings=sh)(*arrays))
        del arrays
    return dict(params, layers=jax.tree_util.tree_unflatten(treedef, out))


def unstack_layers(params: dict) -> dict:
    """Stacked params -> unrolled (the inverse of `stack_layers`)."""
    if not is_stacked(params):
        return params
    n = jax.tree.leaves(params["layers"])[0].shape[0]
    layers = {i: jax.tree.map(lambda x, i=i: x[i], params["layers"]) for i in range(n)}
    return dict(params, layers=layers)


def to_layout(params: dict, scan: bool) -> dict:
    """params in the layout a model with `scan_layers=scan` expects (unchanged if already so)."""
    return stack_layers(params) if scan else unstack_layers(params)
