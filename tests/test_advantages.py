"""Group advantages on literal reward arrays: z-score (ddof, eps), Dr. GRPO, RLOO, NaN and ties.

Expected values are written out by hand (as arithmetic on the literal rewards), not recomputed by a
second implementation of the same formula.
"""

import jax.numpy as jnp
import numpy as np
import pytest

from r1jax.rl import advantages

EPS = 1e-4
NAN = float("nan")


def adv(rewards, g, estimator="grpo", **kw):
    out, aux = advantages.compute(jnp.asarray(rewards, jnp.float32), g, estimator, **kw)
    return np.asarray(out), {k: float(v) for k, v in aux.items()}


def test_zscore_ddof0_and_ddof1():
    # group 0: mean 0.5, population std 0.5, sample std sqrt(1/3); group 1: 0, 1, 2, 5 -> mean 2,
    # squared deviations 4, 1, 0, 9 (sum 14): population std sqrt(3.5), sample std sqrt(14/3).
    r = [1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 2.0, 5.0]
    a0, aux = adv(r, 4, ddof=0, eps=EPS)
    s0 = 0.5 + EPS
    t0 = np.sqrt(3.5) + EPS
    np.testing.assert_allclose(
        a0, [0.5 / s0, -0.5 / s0, -0.5 / s0, 0.5 / s0, -2 / t0, -1 / t0, 0.0, 3 / t0], rtol=1e-6
    )
    a1, _ = adv(r, 4, ddof=1, eps=EPS)
    s1 = np.sqrt(1 / 3) + EPS
    t1 = np.sqrt(14 / 3) + EPS
    np.testing.assert_allclose(
        a1, [0.5 / s1, -0.5 / s1, -0.5 / s1, 0.5 / s1, -2 / t1, -1 / t1, 0.0, 3 / t1], rtol=1e-6
    )
    assert aux == {"nan_rewards": 0.0, "frac_reward_zero_std": 0.0}


def test_eps_matters_for_small_spread():
    # rewards 0 and 0.0002: std 0.0001, so eps 1e-4 halves the advantage (0.0001 / 0.0002)
    a, _ = adv([0.0, 2e-4], 2, eps=1e-4)
    np.testing.assert_allclose(a, [-0.5, 0.5], rtol=1e-4)
    a, _ = adv([0.0, 2e-4], 2, eps=0.0)
    np.testing.assert_allclose(a, [-1.0, 1.0], rtol=1e-4)


def test_dr_grpo_and_rloo():
    r = [1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 2.0, 5.0]
    a, _ = adv(r, 4, "dr_grpo")
    np.testing.assert_allclose(a, [0.5, -0.5, -0.5, 0.5, -2.0, -1.0, 0.0, 3.0], rtol=1e-6)
    a, _ = adv(r, 4, "rloo")
    # r_i - mean of the other three: 1 - 1/3, 0 - 2/3, ...; 0 - 8/3, 1 - 7/3, 2 - 6/3, 5 - 3/3
    want = [2 / 3, -2 / 3, -2 / 3, 2 / 3, -8 / 3, -4 / 3, 0.0, 4.0]
    np.testing.assert_allclose(a, want, rtol=1e-6, atol=1e-7)
    # RLOO is the Dr. GRPO advantage scaled by G / (G - 1)
    np.testing.assert_allclose(a, np.asarray(adv(r, 4, "dr_grpo")[0]) * 4 / 3, rtol=1e-6)


@pytest.mark.parametrize("estimator", ["grpo", "dr_grpo", "rloo"])
def test_equal_groups_get_exactly_zero(estimator):
    # values whose f32 group mean is not exactly the value (e.g. 0.1 summed 8 times, divided by 8)
    values = [0.1, 0.7, 1 / 3, 2.2, 123.456, -1.0, 0.0]
    for g in (3, 7, 8, 16):
        r = np.repeat(np.asarray(values, np.float32), g)
        a, aux = adv(r, g, estimator, **({"ddof": 1} if estimator == "grpo" else {}))
        assert np.all(a == 0.0), (g, np.abs(a).max())
        assert aux["frac_reward_zero_std"] == 1.0


def test_nan_rewards_get_zero_and_are_counted():
    r = [1.0, NAN, 0.0, 0.0, NAN, NAN, NAN, NAN, 1.0, 1.0, NAN, 1.0]
    a, aux = adv(r, 4, ddof=0, eps=EPS)
    # group 0: finite rewards 1, 0, 0 -> mean 1/3, population std sqrt(2/9)
    s = np.sqrt(2 / 9) + EPS
    np.testing.assert_allclose(a[:4], [(2 / 3) / s, 0.0, (-1 / 3) / s, (-1 / 3) / s], rtol=1e-6)
    assert np.all(a[4:] == 0.0)  # all NaN; finite rewards all equal
    assert aux["nan_rewards"] == 6.0
    assert aux["frac_reward_zero_std"] == pytest.approx(2 / 3)
    a, aux = adv(r, 4, "rloo")
    # leave-one-out over the finite rewards: 1 - (0 + 0) / 2, 0 - (1 + 0) / 2
    np.testing.assert_allclose(a[:4], [1.0, 0.0, -0.5, -0.5], rtol=1e-6)
    assert np.all(np.isfinite(a)) and aux["nan_rewards"] == 6.0
    a, _ = adv(r, 4, "dr_grpo")
    np.testing.assert_allclose(a[:4], [2 / 3, 0.0, -1 / 3, -1 / 3], rtol=1e-6)


def test_frac_reward_zero_std_and_single_finite_reward():
    # groups: signal, all 0, all 1, one finite reward (the rest NaN) -> zero std
    r = [0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 2.0, NAN]
    a, aux = adv(r, 2, ddof=1)
    np.testing.assert_allclose(a[:2], [-0.5 / (np.sqrt(0.5) + EPS), 0.5 / (np.sqrt(0.5) + EPS)])
    assert np.all(a[2:] == 0.0)
    assert aux["frac_reward_zero_std"] == 0.75 and aux["nan_rewards"] == 1.0


def test_unknown_estimator():
    with pytest.raises(ValueError, match="unknown advantage estimator"):
        adv([0.0, 1.0], 2, "ppo")
