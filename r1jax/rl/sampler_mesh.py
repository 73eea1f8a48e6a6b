"""The sampler on a mesh of its own: rollouts decoded on other devices than the update's.

Why: decoding and training want different layouts. On a CPU host the decode step's matmuls have
one row per sequence (M = B * G = 64 on the peer config) and XLA:CPU runs each on one thread, so
one device leaves the other cores idle while it decodes; with the rows split over one CPU device
per core, each device decodes its share at the same time. The update's matmuls are large enough
to use every core from one device, and there data parallelism only adds a gradient all-reduce,
so it stays where it is. (On accelerators the same split is the usual "rollout mesh" against
"training mesh" layout.)

Each step the policy's parameters are copied onto the sampler's mesh (the same partition specs,
so axes of size 1 there mean replicated) and the rollouts are copied back, batch-sharded on the
training mesh, so everything after sampling (scoring, the update) sees what it sees without this.
Single process only: both meshes must be this process's devices.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax

from r1jax.config_check import ConfigError
from r1jax.parallel import sharding


@dataclasses.dataclass(frozen=True)
class SamplerMesh:
    """The sampler's mesh and the shardings that carry arguments there and results back."""

    mesh: jax.sharding.Mesh
    params: Any  # tree of NamedSharding on `mesh`, the training params' specs
    prompt: jax.sharding.NamedSharding  # [B, P] batch-sharded on `mesh`
    key: jax.sharding.NamedSharding  # replicated on `mesh`
    out: jax.sharding.NamedSharding  # the sampler's outputs on `mesh`, rows batch-sharded
    back: jax.sharding.NamedSharding  # the outputs on the training mesh, rows batch-sharded

    def to_sampler(self, params: Any, ids_BxP: Any, valid_BxP: Any, key: Any) -> tuple:
        """The sampler's arguments copied onto its mesh."""
        put = jax.device_put
        return (
            put(params, self.params),
            put(ids_BxP, self.prompt),
            put(valid_BxP, self.prompt),
            put(key, self.key),
        )

    def abstract(self, params: Any, ids_BxP: Any, valid_BxP: Any, key: Any) -> tuple:
        """`to_sampler`'s result as shapes and shardings only (nothing copied)."""
        sds = lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s)  # noqa: E731
        p = jax.tree.map(sds, params, self.params)
        return p, sds(ids_BxP, self.prompt), sds(valid_BxP, self.prompt), sds(key, self.key)

    def to_train(self, out: Any) -> Any:
        """The sampler's outputs copied back onto the training mesh."""
        return jax.device_put(out, self.back)


def make(
    shape: tuple[int, ...],
    train_mesh: jax.sharding.Mesh,
    rules: sharding.Rules,
    param_shardings: Any,
    prompts_per_step: int,
) -> SamplerMesh:
    """A sampler mesh of `shape` (data, fsdp, tensor; one -1 fills every device) over the first
    devices of this process. It may overlap the training mesh's devices (on a CPU host it does).

    Bad arithmetic is a one-line ConfigError naming the fix."""
    if jax.process_count() > 1:
        raise ConfigError(
            f"sampler mesh {tuple(shape)}: one process only ({jax.process_count()} here); "
            "leave it empty to sample on the training mesh"
        )
    devices = jax.devices()
    want = len(devices) if -1 in tuple(shape) else math.prod(shape)
    if want > len(devices):
        raise ConfigError(
            f"sampler mesh {tuple(shape)} needs {want} devices, this process has {len(devices)}; "
            "on a CPU host set XLA_FLAGS=--xla_force_host_platform_device_count=N (N = cores)"
        )
    try:
        mesh = sharding.make_mesh(shape, devices[:want])
    except ValueError as e:
        raise ConfigError(f"sampler mesh: {e}") from None
    rows = mesh.shape["data"] * mesh.shape["fsdp"]
    if prompts_per_step % rows:
        raise ConfigError(
            f"sampler mesh {tuple(shape)}: {prompts_per_step} prompts per step do not split "
            f"over its data x fsdp = {rows} devices; pick a shape whose data x fsdp divides it"
        )
    repl = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    return SamplerMesh(
        mesh=mesh,
        params=jax.tree.map(lambda s: jax.sharding.NamedSharding(mesh, s.spec), param_shardings),
        prompt=sharding.batch_sharding(mesh, rules, 2),
        key=repl,
        out=sharding.batch_sharding(mesh, rules, 1),
        back=sharding.batch_sharding(train_mesh, rules, 1),
    )
