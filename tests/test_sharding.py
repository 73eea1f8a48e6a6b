"""Sharding on 8 simulated CPU devices: the same numbers as one device, with parameters really split.

For meshes (data, fsdp, tensor) = (8,1,1), (2,2,2) and (1,2,4): `api.create` (sharded init) gives
the one-device parameters; forward logits and gradients equal the one-device result; every
parameter's shards have the shapes the default rules imply (checked against a hand-written table).
A full `lm_train` step (AdamW, clipping, gradient accumulation) on (2,2,2) follows the (1,1,1)
trajectory. Mesh shapes: -1 fills, impossible shapes fail naming the device count.
"""

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from r1jax.model import ModelConfig, api
from r1jax.parallel import sharding
from r1jax.train import lm_step, optim

RULES = sharding.DEFAULT_RULES
# Every dim divides every mesh axis it maps to, except kv_heads=2 on a 4-way tensor axis.
CFG = ModelConfig(
    vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, mlp_dim=48, max_len=64
)
MESHES = [(8, 1, 1), (2, 2, 2), (1, 2, 4)]
B, T = 8, 12
# f32 with "highest" matmuls: sharded reductions only reorder sums (observed ~1e-6 relative)
TOL = dict(rtol=1e-5, atol=1e-5)

# Expected shard shapes of a few parameters per mesh, from the rules: embed->fsdp, vocab/heads/
# kv_heads/mlp->tensor; a dim the axis does not divide (kv_heads 2 on tensor 4) stays whole.
SHARD_SHAPES = {
    (8, 1, 1): {"embed": (64, 32), "q_proj": (32, 4, 8), "k_proj": (32, 2, 8), "o_proj": (4, 8, 32),
                "gate_proj": (32, 48), "down_proj": (48, 32), "scale": (32,), "lm_head": (32, 64)},
    (2, 2, 2): {"embed": (32, 16), "q_proj": (16, 2, 8), "k_proj": (16, 1, 8), "o_proj": (2, 8, 16),
                "gate_proj": (16, 24), "down_proj": (24, 16), "scale": (16,), "lm_head": (16, 32)},
    (1, 2, 4): {"embed": (16, 16), "q_proj": (16, 1, 8), "k_proj": (16, 2, 8), "o_proj": (1, 8, 16),
                "gate_proj": (16, 12), "down_proj": (12, 16), "scale": (16,), "lm_head": (16, 16)},
}  # fmt: skip
SPECS = {  # the PartitionSpecs behind the table (mesh axes of size 1 are still named)
    "embed": P("tensor", "fsdp"),
    "q_proj": P("fsdp", "tensor", None),
    "o_proj": P("tensor", None, "fsdp"),
    "gate_proj": P("fsdp", "tensor"),
    "down_proj": P("tensor", "fsdp"),
    "lm_head": P("fsdp", "tensor"),
}


def _loss(graphdef, params, tokens, mask):
    s, n = lm_step.loss_sum(graphdef, params, tokens, mask)
    return s / n


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, CFG.vocab_size, (B, T + 1)).astype(np.int32)
    mask = rng.random((B, T + 1)) < 0.8
    return tokens, mask


@pytest.fixture(scope="module")
def reference(one_device_mesh, batch):
    """One-device params, logits and gradients."""
    graphdef, params, _ = api.create(CFG, 0, one_device_mesh, RULES)
    tokens, mask = batch
    logits = jax.jit(api.apply, static_argnums=0)(graphdef, params, tokens[:, :-1])[0]
    grads = jax.jit(jax.grad(_loss, argnums=1), static_argnums=0)(graphdef, params, tokens, mask)
    return graphdef, jax.device_get(params), np.asarray(logits), jax.device_get(grads)


@pytest.fixture(scope="module", params=MESHES, ids=lambda s: "x".join(map(str, s)))
def sharded(request):
    mesh = sharding.make_mesh(request.param)
    graphdef, params, shardings = api.create(CFG, 0, mesh, RULES)
    return request.param, mesh, graphdef, params, shardings


def _leaf_name(path) -> str:
    return path[-1].key


def test_sharded_init_equals_one_device_init(sharded, reference):
    _, _, _, params, _ = sharded
    for got, want in zip(jax.tree.leaves(params), jax.tree.leaves(reference[1])):
        np.testing.assert_array_equal(np.asarray(got), want)


def test_parameters_are_really_split(sharded):
    shape, mesh, _, params, shardings = sharded
    seen = set()
    for path, x in jax.tree_util.tree_leaves_with_path(params):
        name = _leaf_name(path)
        if name not in SHARD_SHAPES[shape]:
            continue
        seen.add(name)
        want = SHARD_SHAPES[shape][name]
        assert len(x.addressable_shards) == 8
        assert {s.data.shape for s in x.addressable_shards} == {want}, (path, shape)
        n_blocks = int(np.prod(x.shape)) // int(np.prod(want))
        assert len({str(s.index) for s in x.addressable_shards}) == n_blocks
        if name in SPECS:
            assert x.sharding.spec == SPECS[name], (name, x.sharding.spec)
    assert seen == set(SHARD_SHAPES[shape])
    if shape == (2, 2, 2):  # optimizer moments follow their parameters (lm_step.init_state)
        tx, _ = optim.make(optim.OptimizerConfig(), 10)
        state, _ = lm_step.init_state(None, params, shardings, tx, mesh)
        mu = state["opt_state"][1][0].mu["embed"]
        assert mu.sharding.spec == SPECS["embed"]
        assert {s.data.shape for s in mu.addressable_shards} == {(32, 16)}


def test_sharded_logits_and_gradients_equal_one_device(sharded, reference, batch):
    shape, mesh, graphdef, params, _ = sharded
    tokens, mask = batch
    tok = sharding.shard_batch(tokens, mesh, RULES)
    msk = sharding.shard_batch(mask, mesh, RULES)
    dp = sharding.data_parallel_size(mesh, RULES)
    assert dp == shape[0] * shape[1]
    assert {s.data.shape for s in tok.addressable_shards} == {(B // dp, T + 1)}
    with jax.set_mesh(mesh):
        logits = jax.jit(api.apply, static_argnums=0)(graphdef, params, tok[:, :-1])[0]
        grads = jax.jit(jax.grad(_loss, argnums=1), static_argnums=0)(graphdef, params, tok, msk)
    np.testing.assert_allclose(np.asarray(logits), reference[2], **TOL)
    g_ref = jax.tree.leaves(reference[3])
    assert max(float(np.abs(g).max()) for g in g_ref) > 1e-3  # gradients are not ~0
    for got, want in zip(jax.tree.leaves(grads), g_ref):
        np.testing.assert_allclose(np.asarray(got), want, **TOL)


def _train(mesh, steps: int = 4) -> tuple[list[dict], dict]:
    """A few lm_train steps (AdamW, clipping, 2 accumulation micro-batches) on `mesh`.

    Adam's update g / (sqrt(v) + eps) has slope lr / eps at g ~ 0, so with eps = 1e-8 the 1e-8
    roundoff of a reordered sum becomes a 1e-3 parameter difference on near-zero gradients (seen:
    loss 3e-5 apart after one update). eps = 1e-3 keeps the comparison well conditioned
    (slope 30) while every other part of the step is the production one.
    """
    ocfg = optim.OptimizerConfig(
        lr=3e-2, warmup_steps=1, eps=1e-3, clip_norm=0.5, grad_accum=2, weight_decay=0.1
    )
    tx, lr_fn = optim.make(ocfg, steps)
    graphdef, params, pshard = api.create(CFG, 0, mesh, RULES)
    state, sshard = lm_step.init_state(graphdef, params, pshard, tx, mesh)
    bshard = lm_step.batch_shardings(mesh, RULES)
    with jax.set_mesh(mesh):
        step_fn = lm_step.make_train_step(graphdef, tx, lr_fn, 2, sshard, bshard)
    rng, history = np.random.default_rng(3), []
    tokens = rng.integers(0, CFG.vocab_size, (B, T + 1)).astype(np.int32)
    mask = rng.random((B, T + 1)) < 0.8
    for _ in range(steps):  # the same batch each step, so that the loss must fall
        batch = {
            "tokens": sharding.shard_batch(tokens, mesh, RULES),
            "loss_mask": sharding.shard_batch(mask, mesh, RULES),
        }
        with jax.set_mesh(mesh):
            state, m = step_fn(state, batch)
        history.append(jax.device_get(m))
    for p, sh in zip(jax.tree.leaves(state["params"]), jax.tree.leaves(pshard)):
        assert p.sharding.is_equivalent_to(sh, p.ndim)  # the step keeps the parameters split
    return history, jax.device_get(state["params"])


@pytest.mark.slow
def test_train_steps_on_2x2x2_equal_one_device(one_device_mesh):
    hist_1, params_1 = _train(one_device_mesh)
    hist_8, params_8 = _train(sharding.make_mesh((2, 2, 2)))
    for m1, m8 in zip(hist_1, hist_8):
        for key in ("loss", "grad_norm", "tokens"):
            np.testing.assert_allclose(m8[key], m1[key], **TOL)
        assert int(m8["nonfinite"]) == 0
    assert hist_1[-1]["loss"] < hist_1[0]["loss"]  # the steps did train
    for got, want in zip(jax.tree.leaves(params_8), jax.tree.leaves(params_1)):
        np.testing.assert_allclose(got, want, **TOL)


@pytest.mark.parametrize(
    "shape,n,want",
    [((-1, 1, 1), 8, (8, 1, 1)), ((2, -1, 2), 8, (2, 2, 2)), ((1, 2, -1), 8, (1, 2, 4)),
     ((-1, 1, 1), 1, (1, 1, 1)), ((2, 2, 2), 8, (2, 2, 2))],
)  # fmt: skip
def test_mesh_shape_fills_minus_one(shape, n, want):
    assert sharding.resolve_mesh_shape(shape, n) == want


@pytest.mark.parametrize(
    "shape,match",
    [((16, 1, 1), "needs 16 devices but 8 are available"),
     ((3, 1, 1), "needs 3 devices but 8 are available"),
     ((-1, 3, 1), "cannot fill 8 devices"),
     ((-1, -1, 1), "at most one entry may be -1"),
     ((2, 0, 4), "positive or -1"),
     ((8, 1), "must have 3 entries")],
)  # fmt: skip
def test_impossible_mesh_shapes_name_the_device_count(shape, match):
    with pytest.raises(ValueError, match=match):
        sharding.resolve_mesh_shape(shape, 8)


def test_make_mesh_uses_all_devices_and_names_the_axes():
    mesh = sharding.make_mesh((2, -1, 2))
    assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 2}
    assert mesh.devices.size == jax.device_count() == 8
