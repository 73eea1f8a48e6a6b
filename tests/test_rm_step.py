"""The Bradley-Terry loss against hand-computed values and gradients, and the step's accumulation.

Hand values: -log sigmoid(z) = log(1 + e^-z); for z = 1, 0, -1: 0.3132617, 0.6931472, 1.3132617
(mean 0.7732235). d loss / d r_chosen[b] = -sigmoid(-z_b) / B: sigmoid(-1) = 0.2689414,
sigmoid(0) = 0.5, sigmoid(1) = 0.7310586, so with B = 3: -0.0896471, -0.1666667, -0.2436862; the
rejected scores get the opposite sign.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from r1jax.model import reward_head
from r1jax.parallel import sharding
from r1jax.train import lm_step, rm_step

RC = jnp.array([1.0, 0.0, -0.5])
RR = jnp.array([0.0, 0.0, 0.5])


def test_loss_and_aux_by_hand():
    loss, aux = rm_step.bt_loss(RC, RR)
    assert float(loss) == pytest.approx((0.3132617 + 0.6931472 + 1.3132617) / 3, abs=1e-6)
    assert float(aux["loss_sum"]) == pytest.approx(0.3132617 + 0.6931472 + 1.3132617, abs=1e-6)
    assert float(aux["accuracy"]) == pytest.approx(1 / 3)  # a tie counts as wrong
    assert float(aux["margin_mean"]) == pytest.approx(0.0, abs=1e-7)
    # margin 0.5 on the first pair: -log sigmoid(0.5) = 0.4740770; aux margins are unchanged
    loss_m, aux_m = rm_step.bt_loss(RC, RR, jnp.array([0.5, 0.0, 0.0]))
    assert float(loss_m) == pytest.approx((0.4740770 + 0.6931472 + 1.3132617) / 3, abs=1e-6)
    assert float(aux_m["margin_mean"]) == pytest.approx(0.0, abs=1e-7)


def test_gradient_by_hand():
    g_c, g_r = jax.grad(lambda c, r: rm_step.bt_loss(c, r)[0], argnums=(0, 1))(RC, RR)
    want = np.array([-0.2689414, -0.5, -0.7310586]) / 3
    np.testing.assert_allclose(np.asarray(g_c), want, atol=1e-6)
    np.testing.assert_allclose(np.asarray(g_r), -want, atol=1e-6)
    # large score gaps stay finite (log_sigmoid, not log(sigmoid))
    loss, _ = rm_step.bt_loss(jnp.array([-200.0]), jnp.array([200.0]))
    assert float(loss) == pytest.approx(400.0, rel=1e-6)


@pytest.fixture(scope="module")
def built(tiny_model_cfg, one_device_mesh):
    """(graphdef, fresh_state(), batch, {accum: compiled step}) shared by the step tests."""
    mesh, rules = one_device_mesh, sharding.DEFAULT_RULES
    sharding.set_rules(rules)
    graphdef, params, pshard = reward_head.create(tiny_model_cfg, 1, mesh, rules)
    tx = optax.sgd(0.1)
    state, sshard = lm_step.init_state(graphdef, params, pshard, tx, mesh)
    rng = np.random.default_rng(4)
    batch = {}
    for name in ("chosen", "rejected"):
        n = rng.integers(2, 9, 4)
        valid = np.arange(8)[None] < n[:, None]
        batch[name] = np.where(valid, rng.integers(4, 64, (4, 8)), 0).astype(np.int32)
        batch[name + "_valid"] = valid
    batch["margin"] = np.zeros(4, np.float32)
    bsh = rm_step.batch_shardings(mesh, rules)
    with jax.set_mesh(mesh):
        steps = {
            a: rm_step.make_train_step(graphdef, tx, lambda s: 0.1, a, sshard, bsh) for a in (1, 2)
        }
    fresh = lambda: jax.tree.map(jnp.copy, state)  # noqa: E731  (the step donates its state)
    return graphdef, fresh, batch, steps


def test_accumulation_does_not_change_the_update(built, one_device_mesh):
    graphdef, fresh, batch, steps = built
    state = fresh()
    rc, rr = jax.jit(rm_step.pair_scores, static_argnums=0)(graphdef, state["params"], batch)
    want_loss, _ = rm_step.bt_loss(rc, rr)
    got = {}
    for accum, step in steps.items():
        with jax.set_mesh(one_device_mesh):
            new, m = step(fresh(), batch)
        assert float(m["loss"]) == pytest.approx(float(want_loss), abs=1e-6)
        got[accum] = jax.device_get(new["params"])
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), got[1], got[2])


def test_steps_fit_the_labels(built, one_device_mesh):
    _, fresh, batch, steps = built
    state, losses = fresh(), []
    with jax.set_mesh(one_device_mesh):
        for _ in range(6):
            state, m = steps[1](state, batch)
            losses.append(float(m["loss"]))
    assert losses[-1] < losses[0] - 0.1, losses
