"""Rows of a global batch across processes: who feeds which rows, who scores them, and moving them.

Letters: n rows of a global batch (prompts or rollouts), P processes.

The batch dimension is split over the rules' batch axes (`data`, `fsdp`). The rows a process's
devices hold form its block; it is read from the sharding (not assumed from the process index), so
any device order works as long as each block is one contiguous range, which `check_layout` verifies
once per run. When a mesh axis outside the batch axes spans processes (tensor parallelism across
hosts), several processes hold the same block: each feeds the whole block, and they split it for
host work (`owned_rows`), so every row is scored exactly once.

- `global_batch`: a global array from this process's block (the pretrain stage builds only those);
- `global_from_host`: a global array from host data every process has (prompts, rewards);
- `owned_host_rows`: this process's owned rows of a global array, read from its own shards;
- `gather_owned`: each process's results for its owned rows -> the whole [n, ...] on every host;
- `gather_rows` / `pick_rows`: a whole (small) array, or a few rows, on every host.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils

from r1jax.parallel import sharding


def _single() -> bool:
    return jax.process_count() == 1


def row_blocks(n: int, mesh: Any, rules: sharding.Rules) -> dict[int, tuple[int, int]]:
    """process index -> [start, stop) of the rows of an n-row batch its devices hold."""
    spans: dict[int, set[tuple[int, int]]] = {}
    for device, index in sharding.batch_sharding(mesh, rules, 1).devices_indices_map((n,)).items():
        start, stop, _ = index[0].indices(n)
        spans.setdefault(device.process_index, set()).add((start, stop))
    return blocks_from_spans(spans, n)


def blocks_from_spans(
    spans: Mapping[int, Iterable[tuple[int, int]]], n: int
) -> dict[int, tuple[int, int]]:
    """Each process's row spans -> its block; ValueError unless every block is one contiguous range
    and any two blocks are equal or disjoint (the layouts the rest of this module handles)."""
    blocks = {}
    for p, s in spans.items():
        ordered = sorted(set(s))
        if any(a[1] != b[0] for a, b in zip(ordered, ordered[1:])):
            raise ValueError(
                f"process {p} holds batch rows {ordered} of {n}, not one contiguous range; build "
                "the mesh so that each process's devices are adjacent along the data/fsdp axes "
                "(the default jax.make_mesh order does this)."
            )
        blocks[p] = (ordered[0][0], ordered[-1][1])
    for p, (a, b) in blocks.items():
        for q, (c, e) in blocks.items():
            if (a, b) != (c, e) and a < e and c < b:
                raise ValueError(
                    f"processes {p} and {q} hold overlapping but different batch rows [{a}, {b}) "
                    f"and [{c}, {e}) of {n}; put whole data/fsdp slices on each process."
                )
    return blocks


def owners_from_blocks(blocks: Mapping[int, tuple[int, int]], n: int) -> np.ndarray:
    """[n] int: processes that share a block split it in process order, contiguous parts."""
    out = np.zeros(n, np.int64)
    by_block: dict[tuple[int, int], list[int]] = {}
    for p, block in sorted(blocks.items()):
        by_block.setdefault(block, []).append(p)
    for (start, stop), procs in by_block.items():
        for p, part in zip(procs, np.array_split(np.arange(start, stop), len(procs))):
            out[part] = p
    return out


def check_layout(mesh: Any, rules: sharding.Rules) -> None:
    """ValueError unless every process holds one contiguous block of the batch (see row_blocks)."""
    row_blocks(sharding.data_parallel_size(mesh, rules), mesh, rules)


def process_rows(
    n: int, mesh: Any = None, rules: sharding.Rules = sharding.DEFAULT_RULES
) -> tuple[int, int]:
    """[start, stop) of the rows this process feeds.

    With a mesh: the block its devices hold. Without one: equal contiguous shares by process index
    (what a data-parallel mesh in the default device order gives).
    """
    if mesh is not None:
        return row_blocks(n, mesh, rules)[jax.process_index()]
    p, i = jax.process_count(), jax.process_index()
    if n % p:
        raise ValueError(
            f"global batch {n} is not divisible by the {p} processes; "
            "make the batch size a multiple of the process count."
        )
    return i * (n // p), (i + 1) * (n // p)


def owners(n: int, mesh: Any, rules: sharding.Rules, group: int = 1) -> np.ndarray:
    """[n] int: the process that does host work (decoding, scoring) for each row.

    Rows are owned in runs of `group` (a prompt's G samples stay with one process).
    """
    units = n // group
    return np.repeat(owners_from_blocks(row_blocks(units, mesh, rules), units), group)


def owned_rows(n: int, mesh: Any, rules: sharding.Rules, group: int = 1) -> tuple[int, int]:
    """[start, stop) of the rows this process scores (its block, or its share of a shared block)."""
    if _single():
        return 0, n
    mine = np.flatnonzero(owners(n, mesh, rules, group) == jax.process_index())
    return (int(mine[0]), int(mine[-1]) + 1) if mine.size else (0, 0)


def global_batch(local: np.ndarray, mesh: Any, rules: sharding.Rules) -> jax.Array:
    """The global batch-sharded array from this process's block of rows (see `process_rows`)."""
    spec_sharding = sharding.batch_sharding(mesh, rules, np.ndim(local))
    if _single():
        return jax.device_put(local, spec_sharding)
    ways = sharding.data_parallel_size(mesh, rules)
    held = {
        i[0].indices(ways)[0]
        for d, i in sharding.batch_sharding(mesh, rules, 1).devices_indices_map((ways,)).items()
        if d.process_index == jax.process_index()
    }
    global_shape = (local.shape[0] * ways // len(held),) + local.shape[1:]
    return jax.make_array_from_process_local_data(spec_sharding, local, global_shape)


def global_from_host(full: np.ndarray, mesh: Any, rules: sharding.Rules) -> jax.Array:
    """The global batch-sharded array from the whole batch, which every process holds on the host."""
    full = np.asarray(full)
    spec_sharding = sharding.batch_sharding(mesh, rules, full.ndim)
    if _single():
        return jax.device_put(full, spec_sharding)
    return jax.make_array_from_callback(full.shape, spec_sharding, lambda index: full[index])


def _whole_rows(x: jax.Array) -> dict[Any, tuple[int, int]]:
    """device -> [lo, hi) of the rows it holds whole (devices split along other dims left out)."""
    out = {}
    for device, index in x.sharding.devices_indices_map(x.shape).items():
        if all(s.indices(d) == (0, d, 1) for s, d in zip(index[1:], x.shape[1:])):
            out[device] = index[0].indices(x.shape[0])[:2]
    return out


def owned_host_rows(x: Any, mesh: Any, rules: sharding.Rules, group: int = 1) -> np.ndarray:
    """This process's `owned_rows` of a global array, read from its own shards.

    No communication when every owner's devices hold its rows whole (the batch-sharded arrays the
    sampler returns); otherwise the array is gathered first (correct, slower). The choice is made
    from the sharding alone, so every process makes the same one (a gather is a collective).
    """
    n = x.shape[0]
    start, stop = owned_rows(n, mesh, rules, group)
    if not isinstance(x, jax.Array) or x.is_fully_addressable:
        return np.asarray(x)[start:stop]
    whole = _whole_rows(x)
    held: dict[int, list[tuple[int, int]]] = {}
    for device, span in whole.items():
        held.setdefault(device.process_index, []).append(span)
    own = owners(n, mesh, rules, group)
    local = all(any(lo <= r < hi for lo, hi in held.get(int(own[r]), ())) for r in range(n))
    if not local:
        return gather_rows(x)[start:stop]
    out = np.empty((stop - start,) + x.shape[1:], x.dtype)
    filled = np.zeros(stop - start, bool)
    for shard in x.addressable_shards:
        if shard.device not in whole:
            continue
        lo, hi = whole[shard.device]
        a, b = max(lo, start), min(hi, stop)
        if a < b and not filled[a - start : b - start].all():
            out[a - start : b - start] = np.asarray(shard.data)[a - lo : b - lo]
            filled[a - start : b - start] = True
    return out


def gather_rows(x: Any) -> np.ndarray:
    """The whole (global) array on every host: for small per-row values (lengths, rewards)."""
    if not isinstance(x, jax.Array) or x.is_fully_addressable:
        return np.asarray(jax.device_get(x))
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def gather_owned(
    local: np.ndarray, n: int, mesh: Any, rules: sharding.Rules, group: int = 1
) -> np.ndarray:
    """Each process's values for its `owned_rows` -> the whole [n, ...] array on every host.

    The values travel as JAX arrays: use a dtype of 32 bits or fewer (64-bit ones would be cut).
    """
    local = np.asarray(local)
    if _single():
        return local
    start, stop = owned_rows(n, mesh, rules, group)
    buf = np.zeros((n,) + local.shape[1:], local.dtype)
    buf[start:stop] = local
    every = np.asarray(multihost_utils.process_allgather(buf))  # [P, n, ...]
    return every[owners(n, mesh, rules, group), np.arange(n)]


def pick_rows(x: Any, rows: Sequence[int]) -> np.ndarray:
    """A few rows of a global array on every host (e.g. the completions a step logs)."""
    rows = np.asarray(rows, np.int64)
    if not isinstance(x, jax.Array) or x.is_fully_addressable:
        return np.asarray(x)[rows]
    whole = _whole_rows(x)
    vals = np.zeros((len(rows),) + x.shape[1:], x.dtype)
    have = np.zeros(len(rows), np.int32)
    for shard in x.addressable_shards:
        lo, hi = whole.get(shard.device, (0, 0))
        for j, r in enumerate(rows):
            if lo <= r < hi and not have[j]:
                vals[j], have[j] = np.asarray(shard.data)[r - lo], 1
    all_vals, all_have = (np.asarray(multihost_utils.process_allgather(a)) for a in (vals, have))
    if not all_have.any(axis=0).all():  # the same on every process: the flags were gathered
        return gather_rows(x)[rows]
    return all_vals[all_have.argmax(axis=0), np.arange(len(rows))]


def split_rows(n: int) -> tuple[int, int]:
    """[start, stop) of n host items (e.g. evaluation problems) this process takes: equal shares by
    process index, for host work whose inputs every process already holds."""
    part = np.array_split(np.arange(n), jax.process_count())[jax.process_index()]
    return (int(part[0]), int(part[-1]) + 1) if part.size else (0, 0)


def gather_split(local: np.ndarray, n: int) -> np.ndarray:
    """Each process's values for its `split_rows(n)` -> the whole [n, ...] array on every host
    (32-bit or smaller dtypes, as for `gather_owned`)."""
    local = np.asarray(local)
    if _single():
        return local
    start, stop = split_rows(n)
    buf = np.zeros((n,) + local.shape[1:], local.dtype)
    buf[start:stop] = local
    every = np.asarray(multihost_utils.process_allgather(buf))  # [P, n, ...]
    owner = np.concatenate(
        [np.full(len(p), i) for i, p in enumerate(np.array_split(np.arange(n), len(every)))]
    )
    return every[owner.astype(np.int64), np.arange(n)]
