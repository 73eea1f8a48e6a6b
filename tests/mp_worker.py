"""One process of the two-process gloo test (tests/test_multiprocess.py launches two of these).

Also imported by that test, which calls `train` in its own process for the one-process reference,
so both sides run exactly the same steps. The worker starts JAX through `r1jax.parallel.distributed`, feeds
only its own rows of each global batch (`process_rows` / `global_batch`), checks that the assembled
global batch is the intended one (a row permutation would not change the loss), and writes the
loss trajectory and the final parameters (process 0) to --out.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

CFG = dict(vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, mlp_dim=48, max_len=64)
B, T, STEPS = 8, 12, 3


def global_batch_of(step: int) -> dict[str, np.ndarray]:
    """The whole global batch of a step (every process can compute it; each feeds only its rows)."""
    rng = np.random.default_rng(100 + step)
    tokens = rng.integers(0, CFG["vocab_size"], (B, T + 1)).astype(np.int32)
    return {"tokens": tokens, "loss_mask": rng.random((B, T + 1)) < 0.8}


def train(mesh, steps: int = STEPS) -> tuple[list[float], dict]:
    """lm_train steps on `mesh` (any number of processes); returns (losses, host params)."""
    import jax
    from jax.experimental import multihost_utils

    from r1jax.model import ModelConfig, api
    from r1jax.parallel import distributed, sharding
    from r1jax.train import lm_step, optim

    rules = sharding.DEFAULT_RULES
    # eps = 1e-3: see tests/test_sharding.py::_train (Adam's slope lr/eps amplifies roundoff)
    ocfg = optim.OptimizerConfig(lr=3e-2, warmup_steps=1, eps=1e-3, clip_norm=0.5, grad_accum=2)
    tx, lr_fn = optim.make(ocfg, steps)
    graphdef, params, pshard = api.create(ModelConfig(**CFG), 0, mesh, rules)
    state, sshard = lm_step.init_state(graphdef, params, pshard, tx, mesh)
    bshard = lm_step.batch_shardings(mesh, rules)
    with jax.set_mesh(mesh):
        step_fn = lm_step.make_train_step(graphdef, tx, lr_fn, 2, sshard, bshard)
    start, stop = distributed.process_rows(B)
    losses = []
    for step in range(steps):
        full = global_batch_of(step)
        batch = {k: distributed.global_batch(v[start:stop], mesh, rules) for k, v in full.items()}
        if jax.process_count() > 1:
            gathered = multihost_utils.process_allgather(batch["tokens"], tiled=True)
            np.testing.assert_array_equal(gathered, full["tokens"])  # rows in global order
        with jax.set_mesh(mesh):
            state, m = step_fn(state, batch)
        losses.append(float(jax.device_get(m["loss"])))
    params = state["params"]
    if jax.process_count() > 1:
        params = multihost_utils.process_allgather(params, tiled=True)
    return losses, jax.tree.map(np.asarray, jax.device_get(params))


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--process-id", type=int, required=True)
    p.add_argument("--num-processes", type=int, required=True)
    p.add_argument("--coordinator", required=True)
    p.add_argument("--mesh", default="1,2,2")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    import jax

    jax.config.update("jax_numpy_rank_promotion", "raise")
    jax.config.update("jax_default_matmul_precision", "highest")
    from r1jax.parallel import distributed, sharding

    distributed.initialize(args.coordinator, args.num_processes, args.process_id, "gloo")
    assert jax.process_count() == args.num_processes, jax.process_count()
    mesh = sharding.make_mesh(tuple(int(s) for s in args.mesh.split(",")))
    # the mesh must really span the processes
    assert {d.process_index for d in mesh.devices.flat} == set(range(args.num_processes))
    losses, params = train(mesh)
    out = {
        "process_index": jax.process_index(),
        "local_devices": jax.local_device_count(),
        "global_devices": jax.device_count(),
        "losses": losses,
    }
    with open(f"{args.out}.{args.process_id}.json", "w") as f:
        json.dump(out, f)
    if jax.process_index() == 0:
        flat = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(params)}
        np.savez(f"{args.out}.params.npz", **flat)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
