"""Multi-process JAX with plain `jax.distributed`: set-up and per-process slices of the batch.

The same code runs on 1 CPU, 8 simulated CPU devices, 2 local processes over gloo, a GPU node or a
TPU pod. Each process produces only its own rows of the global batch and `global_batch` assembles
the sharded global array from them (no process ever holds the whole batch).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils

from r1jax.parallel import sharding


def initialize(
    coordinator: str = "",
    num_processes: int = 1,
    process_id: int = 0,
    cpu_collectives: str = "gloo",
) -> None:
    """Starts jax.distributed when more than one process is configured (flags or environment).

    Environment variables R1JAX_COORDINATOR, R1JAX_NUM_PROCESSES and R1JAX_PROCESS_ID override
    empty/default config values, so a launcher can start N copies of the same command.
    """
    coordinator = coordinator or os.environ.get("R1JAX_COORDINATOR", "")
    num_processes = int(os.environ.get("R1JAX_NUM_PROCESSES", num_processes))
    process_id = int(os.environ.get("R1JAX_PROCESS_ID", process_id))
    if num_processes <= 1:
        return
    if not coordinator:
        raise ValueError(
            "config.distributed.num_processes > 1 needs config.distributed.coordinator "
            "(host:port of process 0) or R1JAX_COORDINATOR."
        )
    # Only the CPU client reads this option, so it is harmless on GPU/TPU. (Asking
    # jax.default_backend() first would start the backends, and jax.distributed.initialize
    # refuses to run after that.)
    jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    jax.distributed.initialize(coordinator, num_processes, process_id)


def process_rows(global_batch: int) -> tuple[int, int]:
    """[start, stop) of the global batch rows this process feeds (contiguous, equal shares)."""
    n, i = jax.process_count(), jax.process_index()
    if global_batch % n:
        raise ValueError(
            f"global batch {global_batch} is not divisible by the {n} processes; "
            "make the batch size a multiple of the process count."
        )
    per = global_batch // n
    return i * per, (i + 1) * per


def global_batch(local: np.ndarray, mesh: Any, rules: sharding.Rules) -> jax.Array:
    """The global batch-sharded array from this process's rows (see `process_rows`)."""
    spec_sharding = sharding.batch_sharding(mesh, rules, np.ndim(local))
    if jax.process_count() == 1:
        return jax.device_put(local, spec_sharding)
    global_shape = (local.shape[0] * jax.process_count(),) + local.shape[1:]
    return jax.make_array_from_process_local_data(spec_sharding, local, global_shape)


def gather_rows(x: jax.Array) -> np.ndarray:
    """The whole (global) array on this host: every process scores every rollout."""
    if jax.process_count() == 1:
        return np.asarray(jax.device_get(x))
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
