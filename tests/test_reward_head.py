"""The reward model's scalar head: reads the last real token under any padding; sharded == unsharded.

Left and right padding of the same sequence (and the sequence with no padding at all, and with a
masked hole in the middle) give the same score, equal to the head applied by hand to the
transformer's final hidden state at the last real token. On 8 simulated devices (mesh 2x2x2) the
scores and one Bradley-Terry training step equal the one-device ones.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from r1jax.model import api, reward_head
from r1jax.parallel import sharding
from r1jax.train import lm_step, rm_step

SEQ = [2, 17, 5, 9, 33, 41, 8]  # BOS + six tokens
PAD = 0


def _row(ids, width, left):
    toks = np.full(width, PAD, np.int32)
    valid = np.zeros(width, bool)
    sl = slice(width - len(ids), width) if left else slice(0, len(ids))
    toks[sl], valid[sl] = ids, True
    return toks, valid


@pytest.fixture(scope="module")
def rm(tiny_model_cfg, one_device_mesh):
    sharding.set_rules(sharding.DEFAULT_RULES)
    return reward_head.create(tiny_model_cfg, 3, one_device_mesh, sharding.DEFAULT_RULES)


def test_left_and_right_padding_give_the_same_score(rm, one_device_mesh):
    graphdef, params, pshard = rm
    score = rm_step.make_score_fn(graphdef, pshard, one_device_mesh, sharding.DEFAULT_RULES)
    left, right = _row(SEQ, 12, True), _row(SEQ, 12, False)
    # a masked hole: a junk token inside the row that valid marks as absent
    holed = np.array(SEQ[:3] + [55] + SEQ[3:] + [PAD] * 4, np.int32)
    hole_valid = np.array([True] * 3 + [False] + [True] * 4 + [False] * 4)
    repad = np.where(right[1], right[0], 7)  # another pad id
    changed = right[0].copy()
    changed[len(SEQ) - 1] = 60  # another last real token
    toks = np.stack([left[0], right[0], holed, repad, changed])
    valid = np.stack([left[1], right[1], hole_valid, right[1], right[1]])
    got = np.asarray(score(params, toks, valid))
    unpadded = float(reward_head.score(graphdef, params, np.array([SEQ]), np.ones((1, 7), bool))[0])
    np.testing.assert_allclose(got[:4], [unpadded] * 4, rtol=0, atol=2e-6)
    assert abs(got[4] - unpadded) > 1e-4


def test_score_is_the_head_at_the_last_real_token(rm):
    graphdef, params, _ = rm
    t, v = _row(SEQ, 12, False)
    model = nnx.merge(graphdef, params)
    backbone_g, backbone_p = nnx.split(model.backbone)
    h, _ = api.apply(backbone_g, nnx.to_pure_dict(backbone_p), t[None], v[None], return_hidden=True)
    by_hand = float(h[0, len(SEQ) - 1] @ params["head"] + params["head_bias"])
    assert float(reward_head.score(graphdef, params, t[None], v[None])[0]) == pytest.approx(
        by_hand, abs=1e-6
    )


def test_from_policy_keeps_the_policy_backbone(tiny_model_cfg, one_device_mesh):
    rules = sharding.DEFAULT_RULES
    _, policy, _ = api.create(tiny_model_cfg, 5, one_device_mesh, rules)
    _, params, _ = reward_head.from_policy(tiny_model_cfg, policy, 0, one_device_mesh, rules)
    same = jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), params["backbone"], policy)
    assert all(jax.tree.leaves(same))
    assert params["head"].shape == (tiny_model_cfg.d_model,) and float(params["head_bias"]) == 0.0
    other = tiny_model_cfg.__class__(**dict(tiny_model_cfg.to_dict(), d_model=64, mlp_dim=64))
    with pytest.raises(ValueError, match="do not match the reward model's backbone"):
        reward_head.from_policy(other, policy, 0, one_device_mesh, rules)


def _batch(rng: np.random.Generator, b: int, t: int) -> dict:
    out = {}
    for name in ("chosen", "rejected"):
        lengths = rng.integers(3, t + 1, b)
        toks = rng.integers(4, 64, (b, t)).astype(np.int32)
        valid = np.arange(t)[None] < lengths[:, None]
        out[name], out[name + "_valid"] = np.where(valid, toks, PAD), valid
    out["margin"] = np.full(b, 0.1, np.float32)
    return out


def _one_step(cfg, mesh):
    rules = sharding.DEFAULT_RULES
    sharding.set_rules(rules)
    graphdef, params, pshard = reward_head.create(cfg, 7, mesh, rules)
    # Plain SGD, not AdamW: the head's bias cancels in score(chosen) - score(rejected), so its true
    # gradient is exactly 0 and Adam would divide whatever rounding noise reaches it (~1e-9, which
    # differs between meshes and CPUs) by its own size, turning noise into a full-size update.
    tx = optax.sgd(1e-2)
    state, sshard = lm_step.init_state(graphdef, params, pshard, tx, mesh)
    batch = _batch(np.random.default_rng(0), 8, 10)
    score = rm_step.make_score_fn(graphdef, pshard, mesh, rules)
    before = np.asarray(score(params, batch["chosen"], batch["chosen_valid"]))
    bsh = rm_step.batch_shardings(mesh, rules)
    with jax.set_mesh(mesh):
        step = rm_step.make_train_step(graphdef, tx, lambda s: 1e-2, 1, sshard, bsh)
        state, m = step(state, {k: jax.device_put(v, bsh[k]) for k, v in batch.items()})
    return before, jax.device_get(m), jax.device_get(state["params"])


def test_sharded_equals_unsharded(tiny_model_cfg, one_device_mesh):
    mesh8 = sharding.make_mesh((2, 2, 2))
    s1, m1, p1 = _one_step(tiny_model_cfg, one_device_mesh)
    s8, m8, p8 = _one_step(tiny_model_cfg, mesh8)
    np.testing.assert_allclose(s8, s1, rtol=1e-5, atol=1e-5)
    for k in ("loss", "accuracy", "margin_mean", "grad_norm"):
        assert float(m8[k]) == pytest.approx(float(m1[k]), rel=1e-5, abs=1e-6), k
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), p8, p1)
