"""Meshes, logical-axis rules, sharded initialisation and activation constraints.

The model names logical axes only (`embed`, `heads`, `kv_heads`, `head_dim`, `mlp`, `vocab`, `batch`,
`length`, `cache_length`). A rules table (from the config) maps each logical axis to mesh axes; this
module turns names into `NamedSharding`s. A dimension that the mapped mesh axes do not divide is
replicated instead (for example 2 kv heads on a 4-way tensor axis), which keeps tiny test models
shardable on any mesh. For parameters this is never silent: each distinct case (logical axis, dim
size, mesh axes, mesh size) is logged once with the parameters it hits (Qwen2.5-0.5B's 14 heads on
tensor=4 are replicated, and a run should say so), and in strict mode (`set_strict(True)`, which
stage runners call from `config.sharding_strict`) it is a ConfigError instead.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from flax.core import spmd as flax_spmd
from jax.sharding import NamedSharding, PartitionSpec

from r1jax.config_check import ConfigError

log = logging.getLogger(__name__)
MESH_AXES = ("data", "fsdp", "tensor")
Rules = Sequence[tuple[str, Any]]
# called as on_fallback(dim index, logical name, mesh axes, mesh size) for each replicated dim
OnFallback = Callable[[int, str, Any, int], None]
_STRICT = False
_LOGGED: set[tuple] = set()

# The default logical -> mesh rules (also written into every experiment config as `sharding_rules`).
DEFAULT_RULES: tuple[tuple[str, Any], ...] = (
    ("batch", ("data", "fsdp")),
    ("length", None),
    ("cache_length", None),
    ("embed", "fsdp"),
    ("vocab", "tensor"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("head_dim", None),
    ("mlp", "tensor"),
)


def resolve_mesh_shape(shape: Sequence[int], num_devices: int) -> tuple[int, ...]:
    """Fills a single -1 entry so that the product equals num_devices; a clear error otherwise."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != len(MESH_AXES):
        raise ValueError(f"mesh.shape={shape} must have {len(MESH_AXES)} entries {MESH_AXES}.")
    if sum(s == -1 for s in shape) > 1:
        raise ValueError(f"mesh.shape={shape}: at most one entry may be -1.")
    if any(s == 0 or s < -1 for s in shape):
        raise ValueError(f"mesh.shape={shape}: entries must be positive or -1.")
    known = math.prod(s for s in shape if s != -1)
    if -1 in shape:
        if num_devices % known:
            raise ValueError(
                f"mesh.shape={shape} cannot fill {num_devices} devices: {known} does not divide "
                f"{num_devices}; pick sizes whose product divides the device count."
            )
        shape = tuple(num_devices // known if s == -1 else s for s in shape)
    if math.prod(shape) != num_devices:
        raise ValueError(
            f"mesh.shape={shape} needs {math.prod(shape)} devices but {num_devices} are available; "
            f"use sizes whose product is {num_devices}, or -1 for one axis."
        )
    return shape


def make_mesh(shape: Sequence[int], devices: Sequence[Any] | None = None) -> jax.sharding.Mesh:
    """A (data, fsdp, tensor) mesh over all (or the given) devices, every axis explicit-auto."""
    devices = list(devices if devices is not None else jax.devices())
    resolved = resolve_mesh_shape(shape, len(devices))
    auto = (jax.sharding.AxisType.Auto,) * len(MESH_AXES)
    return jax.make_mesh(resolved, MESH_AXES, axis_types=auto, devices=devices)


def _mesh_size(mesh: Any, axes: Any) -> int:
    if axes is None:
        return 1
    axes = (axes,) if isinstance(axes, str) else axes
    return math.prod(mesh.shape[a] for a in axes)


def set_strict(strict: bool) -> None:
    """Strict mode: a parameter dim the mesh cannot divide is a ConfigError, not replicated."""
    global _STRICT
    _STRICT = bool(strict)


def is_strict() -> bool:
    return _STRICT


def logical_to_spec(
    names: Sequence[str | None],
    rules: Rules,
    mesh: Any = None,
    shape: Sequence[int] | None = None,
    on_fallback: OnFallback | None = None,
) -> PartitionSpec:
    """Maps logical names to a PartitionSpec; with `shape`, non-divisible dims are replicated.

    A mesh axis is used at most once per array (later dims that would reuse it are replicated).
    `on_fallback` hears of each dim replicated because its mesh axes do not divide it.
    """
    table = dict(rules)
    used: set[str] = set()
    out = []
    for i, name in enumerate(names):
        axes = table.get(name) if name is not None else None
        if isinstance(axes, (list, tuple)):
            axes = tuple(a for a in axes if a not in used) or None
            if axes is not None and len(axes) == 1:
                axes = axes[0]
        elif axes in used:
            axes = None
        if axes is not None and mesh is not None and shape is not None:
            if shape[i] % _mesh_size(mesh, axes):
                if on_fallback is not None:
                    on_fallback(i, name, axes, _mesh_size(mesh, axes))
                axes = None
        if axes is not None:
            used.update((axes,) if isinstance(axes, str) else axes)
        out.append(axes)
    return PartitionSpec(*out)


def set_rules(rules: Rules) -> None:
    """Installs the logical -> mesh rules for this process (what `constrain` reads when tracing).

    Stage runners call this once; code that needs a scoped table uses `nnx.logical_axis_rules`.
    """
    flax_spmd.set_logical_axis_rules(tuple(rules))


def current_rules() -> Rules:
    """The rules installed by `nnx.logical_axis_rules(...)` (empty outside such a context)."""
    return tuple(flax_spmd.get_logical_axis_rules() or ())


def constrain(x: jax.Array, names: Sequence[str | None]) -> jax.Array:
    """Sharding constraint on an activation by logical names; a no-op without a mesh or rules."""
    mesh = jax.sharding.get_abstract_mesh()
    rules = current_rules()
    if mesh.empty or not rules:
        return x
    spec = logical_to_spec(names, rules, mesh, x.shape)
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))


def embed_lookup(table_VxD: jax.Array, ids: jax.Array, dtype: Any = None) -> jax.Array:
    """table[ids] as [..., D] activations sharded like ("batch", "length", "embed").

    A plain gather from an FSDP-sharded table leaves the feature dim split over `fsdp`, and XLA
    cannot move that split onto the batch dim ("Involuntary full rematerialization": the gathered
    tensor is replicated inside every step). Gathering the table's feature dim first (what FSDP
    does with every weight) keeps the lookup a local, vocab-masked gather on batch-sharded rows.
    """
    table = constrain(table_VxD, ("vocab", None))
    x = jnp.take(table, ids, axis=0)
    x = x.astype(dtype) if dtype is not None else x
    return constrain(x, ("batch", "length", "embed")[: x.ndim - 1] + ("embed",))


def _is_names(x: Any) -> bool:
    return isinstance(x, tuple) and all(isinstance(a, str) or a is None for a in x)


def tree_shardings(
    abstract: Any, names: Any, mesh: Any, rules: Rules, strict: bool | None = None
) -> Any:
    """NamedShardings for a pytree of arrays (or ShapeDtypeStructs) given a matching tree of names.

    Dims the mesh cannot divide are replicated and logged once per case, or, when `strict` (default:
    the process-wide `set_strict` setting), raise a ConfigError naming every case.
    """
    fallbacks: list[tuple[str, tuple[int, ...], int, str, Any, int]] = []

    def one(path: Any, n: tuple, a: Any) -> NamedSharding:
        def note(i: int, name: str, axes: Any, size: int) -> None:
            where = jax.tree_util.keystr(path, simple=True, separator="/")
            fallbacks.append((where, tuple(a.shape), i, name, axes, size))

        return NamedSharding(mesh, logical_to_spec(n, rules, mesh, a.shape, note))

    out = jax.tree_util.tree_map_with_path(one, names, abstract, is_leaf=_is_names)
    _report(fallbacks, _STRICT if strict is None else strict)
    return out


def _report(fallbacks: list, strict: bool) -> None:
    """One line per distinct (logical axis, dim size, mesh axes, mesh size): the parameters hit."""
    groups: dict[tuple, list[tuple[str, tuple[int, ...]]]] = {}
    for where, shape, i, name, axes, size in fallbacks:
        groups.setdefault((name, shape[i], axes, size), []).append((where, shape))
    lines = []
    for (name, dim, axes, size), params in groups.items():
        shown = ", ".join(f"{w} {s}" for w, s in params[:3])
        more = f" and {len(params) - 3} more" if len(params) > 3 else ""
        lines.append(
            f"logical axis {name!r} of size {dim} is not divisible by mesh axes {axes!r} of size "
            f"{size}, so it is replicated in {len(params)} parameter(s): {shown}{more}"
        )
    if strict and lines:
        raise ConfigError(
            "config.sharding_strict=True: "
            + "; ".join(lines)
            + ". Use a mesh whose axes divide these dims, map the logical axis to None in "
            "config.sharding_rules, or set config.sharding_strict=False to replicate them."
        )
    for key, line in zip(groups, lines):
        if key not in _LOGGED:
            _LOGGED.add(key)
            log.warning("sharding: %s", line)


def param_names(abstract_state: nnx.State) -> dict:
    """Pure-dict tree of each parameter's logical axis names (its `out_sharding` metadata)."""

    def names(v: nnx.Variable) -> tuple:
        got = v.get_metadata().get("out_sharding")
        return tuple(got) if got is not None else (None,) * len(v.get_value().shape)

    return nnx.to_pure_dict(
        jax.tree.map(names, abstract_state, is_leaf=lambda x: isinstance(x, nnx.Variable))
    )


def init_sharded(
    make_module: Callable[[], nnx.Module], mesh: Any, rules: Rules
) -> tuple[nnx.GraphDef, dict, dict]:
    """Initialises a module directly into its shards: eval_shape -> shardings -> jit(out_shardings).

    Returns (graphdef, params, shardings) where params is a pure dict of (sharded) arrays.
    No device ever holds the whole model unless the rules replicate it.
    """
    with nnx.use_eager_sharding(False):
        abstract = nnx.eval_shape(make_module)
    graphdef, abstract_state = nnx.split(abstract)
    shapes = nnx.to_pure_dict(abstract_state)
    shardings = tree_shardings(shapes, param_names(abstract_state), mesh, rules)

    @jax.jit
    def _init():
        with nnx.use_eager_sharding(False):
            return nnx.to_pure_dict(nnx.state(make_module()))

    with jax.set_mesh(mesh):
        # The init program runs once but its many threefry draws take LLVM a long time to
        # optimise on the CPU (17 s for a 2-layer toy model); unoptimised it compiles in ~3 s.
        init = jax.jit(_init, out_shardings=shardings).lower()
        params = init.compile(compiler_options={"xla_backend_optimization_level": 0})()
    return graphdef, params, shardings


def batch_sharding(mesh: Any, rules: Rules, ndim: int) -> NamedSharding:
    """Sharding of a [batch, ...] array: batch over the rules' data axes, the rest replicated."""
    return NamedSharding(mesh, logical_to_spec(("batch",) + (None,) * (ndim - 1), rules))


def data_parallel_size(mesh: Any, rules: Rules) -> int:
    """How many ways the batch axis is split (the global batch must be a multiple of this)."""
    return _mesh_size(mesh, dict(rules).get("batch"))


def shard_batch(x: np.ndarray, mesh: Any, rules: Rules) -> jax.Array:
    """Places a host array that holds the GLOBAL batch onto the mesh, batch-sharded.

    In a multi-process run each process passes only its own rows; see `distributed.global_batch`.
    """
    return jax.device_put(x, batch_sharding(mesh, rules, np.ndim(x)))
