"""Checkpoints across meshes and corrupt checkpoints (8 simulated CPU devices).

- Parameters and AdamW state saved from a (2,2,2) mesh restore onto (8,1,1) (and back onto one
  device) bit for bit, laid out with the *target's* shardings.
- A corrupt or truncated checkpoint is a one-line CheckpointError naming the step and the path and
  the fix; with fallback the previous complete checkpoint is restored instead; the resume entry point
  (loop.resume) follows the config's choice.
"""

from __future__ import annotations

import os

import jax
import numpy as np
import optax
import pytest

from r1jax.model import ModelConfig, api
from r1jax.parallel import sharding
from r1jax.train import checkpoint as ckpt_lib
from r1jax.train import loop

RULES = sharding.DEFAULT_RULES
CFG = ModelConfig(
    vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, mlp_dim=48, max_len=64
)


def _state(mesh_shape: tuple[int, ...], seed: int) -> dict:
    """Params (sharded at init) plus an AdamW state that has seen one update, on `mesh_shape`."""
    mesh = sharding.make_mesh(mesh_shape, jax.devices()[: int(np.prod(mesh_shape))])
    _, params, _ = api.create(CFG, seed, mesh, RULES)
    tx = optax.adamw(1e-2)
    with jax.set_mesh(mesh):
        opt = jax.jit(tx.init)(params)
        grads = jax.tree.map(lambda p: 0.1 * jax.numpy.ones_like(p), params)
        updates, opt = jax.jit(tx.update)(grads, opt, params)
        params = jax.jit(optax.apply_updates)(params, updates)
    return {"params": params, "opt": opt, "key": jax.random.key_data(jax.random.key(seed))}


def _leaves(tree) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_saved_on_222_restores_on_811_and_one_device(tmp_path):
    saved = _state((2, 2, 2), seed=3)
    ck = ckpt_lib.Checkpointer(str(tmp_path / "ck"), ("params", "opt", "key"), every_steps=1)
    ck.save(7, saved, {"step": 7, "data_position": 56})
    ck.close()

    for shape in [(8, 1, 1), (1, 1, 1)]:
        target = _state(shape, seed=11)  # other values, the target mesh's shardings
        reader = ckpt_lib.Checkpointer(str(tmp_path / "ck"), ("params", "opt", "key"))
        step, got, meta = loop.resume(reader, target, fallback=False)
        reader.close()
        assert step == 7 and meta["data_position"] == 56
        for a, b in zip(_leaves(got), _leaves(saved), strict=True):
            np.testing.assert_array_equal(a, b)  # bit for bit
        # laid out with the target mesh's shardings, which differ from the saved ones
        shard = lambda t: [x.sharding.shard_shape(x.shape) for x in jax.tree.leaves(t["params"])]
        assert shard(got) == shard(target)
        assert shard(got) != shard(saved)
        for x, t in zip(jax.tree.leaves(got), jax.tree.leaves(target), strict=True):
            assert x.sharding.device_set == t.sharding.device_set


def _two_checkpoints(root) -> tuple[str, dict, dict]:
    s1, s2 = _state((1, 1, 1), seed=1), _state((1, 1, 1), seed=2)
    d = str(root / "ck")
    ck = ckpt_lib.Checkpointer(d, ("params", "opt", "key"), every_steps=1, keep=3)
    ck.save(1, s1, {"step": 1, "data_position": 8})
    ck.wait()
    ck.save(2, s2, {"step": 2, "data_position": 16})
    ck.close()
    return d, s1, s2


def _corrupt_step(directory: str, step: int, how: str) -> None:
    """Damage every array file of one step: truncate to half, or overwrite with garbage."""
    hit = 0
    for root, _, files in os.walk(os.path.join(directory, str(step), "params")):
        for f in files:
            path = os.path.join(root, f)
            size = os.path.getsize(path)
            if size < 64 or (f.endswith(".json") and how == "truncate"):
                continue
            with open(path, "r+b") as fh:
                if how == "truncate":
                    fh.truncate(size // 2)
                else:
                    fh.write(b"\x00garbage" * (size // 8))
            hit += 1
    assert hit, "found no files to damage"


@pytest.mark.parametrize("how", ["truncate", "garbage"])
def test_corrupt_checkpoint_is_a_clear_error_or_falls_back(tmp_path, how):
    d, s1, _ = _two_checkpoints(tmp_path)
    _corrupt_step(d, 2, how)
    target = _state((1, 1, 1), seed=9)

    reader = ckpt_lib.Checkpointer(d, ("params", "opt", "key"))
    with pytest.raises(ckpt_lib.CheckpointError) as e:
        loop.resume(reader, target, fallback=False)
    msg = str(e.value)
    assert "\n" not in msg
    assert f"checkpoint step 2 at {os.path.join(d, '2')} is unreadable" in msg
    assert "config.checkpoint.fallback_to_previous=True" in msg

    step, got, meta = loop.resume(reader, target, fallback=True)
    reader.close()
    assert step == 1 and meta["data_position"] == 8
    for a, b in zip(_leaves(got), _leaves(s1), strict=True):
        np.testing.assert_array_equal(a, b)


def test_no_readable_checkpoint_at_all(tmp_path):
    d, _, _ = _two_checkpoints(tmp_path)
    _corrupt_step(d, 1, "garbage")
    _corrupt_step(d, 2, "garbage")
    reader = ckpt_lib.Checkpointer(d, ("params", "opt", "key"))
    with pytest.raises(
        ckpt_lib.CheckpointError, match=r"no readable checkpoint: checkpoint step 2"
    ):
        loop.resume(reader, _state((1, 1, 1), seed=9), fallback=True)
    reader.close()
