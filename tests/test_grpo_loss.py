"""The pure GRPO loss: values and gradients against a hand-written float64 reference, and estimators.

The reference (`by_hand`) is written case by case (which side of the clip range a ratio is on, the sign
of the advantage, whether the dual clip binds), with the derivative of each case written out, so it
is not a transcription of the jnp code. Letters: N sequences, T tokens.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax.rl.grpo_loss import AGGREGATIONS, KL_ESTIMATORS, LossOptions, grpo_loss

N, T = 4, 6
LENGTHS = (6, 3, 1, 0)  # the last sequence is fully masked (e.g. a masked truncated completion)
ADV = (1.3, -0.7, 0.8, -2.0)
OPTS = dict(epsilon_low=0.2, epsilon_high=0.28, beta=0.05, max_tokens=T)


def make_batch(seed=0, pad_value=None):
    rng = np.random.default_rng(seed)
    mask = np.arange(T)[None, :] < np.asarray(LENGTHS)[:, None]
    logp = rng.uniform(-3.0, -0.1, (N, T))
    # ratios inside and on both sides of [0.8, 1.28] (never on an edge), in every active row
    grid = np.log([0.3, 0.9, 4.0, 1.1, 1.5, 2.5, 0.7])
    log_ratio = np.stack([np.roll(grid, seed + 2 * i)[:T] for i in range(N)])
    old = logp - log_ratio
    ref = logp + rng.uniform(-1.0, 1.0, (N, T))
    ent = rng.uniform(0.0, 2.0, (N, T))
    if pad_value is not None:  # padding may hold anything: it must never reach loss or gradient
        logp[~mask], old[~mask], ref[~mask], ent[~mask] = pad_value, 0.0, 0.0, 1e30
    return logp, old, ref, np.asarray(ADV), mask, ent


def by_hand(logp, old, ref, adv, mask, o: LossOptions, denom=None):
    """(loss, d loss / d logp, aux) in float64, case by case."""
    n = logp.shape[0]
    loss, grad = 0.0, np.zeros_like(logp)
    pg_all, kl_all, ratios, lo_clip, hi_clip = [], [], [], [], []
    n_tok = mask.sum()
    for i in range(n):
        a = adv[i]
        for t in range(logp.shape[1]):
            if not mask[i, t]:
                continue
            r = np.exp(logp[i, t] - old[i, t])
            if a > 0 and r > 1 + o.epsilon_high:  # clipped: constant, no gradient
                pg, dpg = -(1 + o.epsilon_high) * a, 0.0
            elif a < 0 and r < 1 - o.epsilon_low:
                pg, dpg = -(1 - o.epsilon_low) * a, 0.0
            else:  # d(-r a)/dlogp = -r a
                pg, dpg = -r * a, -r * a
            if o.dual_clip and a < 0 and pg > -o.dual_clip * a:
                pg, dpg = -o.dual_clip * a, 0.0
            d = ref[i, t] - logp[i, t]
            clamped = bool(o.kl_clamp) and abs(d) > o.kl_clamp
            if clamped:  # d is held at the bound: the KL no longer depends on logp
                d = np.sign(d) * o.kl_clamp
            if o.kl_estimator == "k1":
                kl, dkl = -d, 1.0
            elif o.kl_estimator == "k2":
                kl, dkl = 0.5 * d * d, -d
            else:
                kl, dkl = np.exp(d) - d - 1.0, 1.0 - np.exp(d)
            dkl = 0.0 if clamped else dkl
            # weight of this token in the aggregate
            if o.aggregation == "seq_mean_token_mean":
                w = 1.0 / (mask[i].sum() * n)
            elif o.aggregation == "seq_sum_const":
                w = 1.0 / (n * o.max_tokens)
            elif o.aggregation == "seq_mean_token_sum":
                w = 1.0 / n
            else:
                w = 1.0 / (n_tok if denom is None else denom)
            loss += w * (pg + o.beta * kl)
            grad[i, t] = w * (dpg + o.beta * dkl)
            pg_all.append(pg)
            kl_all.append(kl)
            ratios.append(r)
            lo_clip.append(a < 0 and r < 1 - o.epsilon_low)
            hi_clip.append(a > 0 and r > 1 + o.epsilon_high)
    aux = dict(
        pg_loss=np.mean(pg_all),
        kl=np.mean(kl_all),
        clip_frac_low=np.mean(lo_clip),
        clip_frac_high=np.mean(hi_clip),
        ratio_mean=np.mean(ratios),
        ratio_min=np.min(ratios),
        ratio_max=np.max(ratios),
        active_tokens=float(n_tok),
    )
    return loss, grad, aux


def jax_loss_and_grad(logp, old, ref, adv, mask, o, ent=None, denom=None):
    f = lambda lp: grpo_loss(lp, old, ref, adv, mask, o, ent, denom)  # noqa: E731
    (loss, aux), grad = jax.value_and_grad(f, has_aux=True)(jnp.asarray(logp, jnp.float32))
    return float(loss), np.asarray(grad), {k: float(v) for k, v in aux.items()}


def f32(*arrays):
    return [jnp.asarray(a, jnp.float32) if a.dtype != bool else jnp.asarray(a) for a in arrays]


def test_literal_clip_cases():
    """One token per case, numbers worked out by hand (eps 0.2, no KL, token mean over 1 token)."""
    cases = [  # (ratio, advantage, dual clip, loss, d loss / d logp)
        (1.5, 1.0, 0.0, -1.2, 0.0),  # A > 0 above 1 + eps: clipped to 1.2
        (0.5, 1.0, 0.0, -0.5, -0.5),  # A > 0 below the range: not clipped (min picks r A)
        (0.5, -1.0, 0.0, 0.8, 0.0),  # A < 0 below 1 - eps: clipped to 0.8
        (1.5, -1.0, 0.0, 1.5, 1.5),  # A < 0 above the range: not clipped
        (1.5, -1.0, 1.3, 1.3, 0.0),  # ... unless the dual clip c = 1.3 binds
        (1.1, -1.0, 1.3, 1.1, 1.1),  # dual clip not binding
        (1.1, 2.0, 0.0, -2.2, -2.2),  # inside the range
    ]
    for ratio, a, c, want_loss, want_grad in cases:
        o = LossOptions(epsilon_low=0.2, epsilon_high=0.2, dual_clip=c, beta=0.0)
        old = jnp.asarray([[-np.log(ratio)]], jnp.float32)
        loss, grad, _ = jax_loss_and_grad(
            np.zeros((1, 1)), old, None, jnp.asarray([a]), jnp.ones((1, 1), bool), o
        )
        assert loss == pytest.approx(want_loss, rel=1e-6), (ratio, a, c)
        assert grad[0, 0] == pytest.approx(want_grad, rel=1e-6, abs=1e-7), (ratio, a, c)


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
@pytest.mark.parametrize("kl_estimator", KL_ESTIMATORS)
def test_loss_and_grad_against_hand_reference(aggregation, kl_estimator):
    o = LossOptions(aggregation=aggregation, kl_estimator=kl_estimator, **OPTS)
    logp, old, ref, adv, mask, ent = make_batch(pad_value=-1e4)
    want_loss, want_grad, want_aux = by_hand(logp, old, ref, adv, mask, o)
    loss, grad, aux = jax_loss_and_grad(*f32(logp, old, ref, adv, mask), o, f32(ent)[0])
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    assert loss == pytest.approx(want_loss, rel=1e-5)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-8)
    assert np.all(grad[~mask] == 0.0)
    for k, v in want_aux.items():
        assert aux[k] == pytest.approx(v, rel=1e-5), k
    assert aux["entropy"] == pytest.approx(ent[mask].mean(), rel=1e-5)
    # clipping is really exercised on both sides
    assert 0 < aux["clip_frac_low"] < 1 and 0 < aux["clip_frac_high"] < 1


@pytest.mark.parametrize("kl_estimator", KL_ESTIMATORS)
def test_kl_clamp_against_hand_reference(kl_estimator):
    """With kl_clamp = 0.3, |ref - logp| up to 1 is held at the bound (value), and those tokens get
    no KL gradient; the others are untouched."""
    o = LossOptions(kl_clamp=0.3, kl_estimator=kl_estimator, aggregation="token_mean", **OPTS)
    logp, old, ref, adv, mask, _ = make_batch(seed=5)
    d = (ref - logp)[mask]
    assert (np.abs(d) > 0.3).any() and (np.abs(d) < 0.3).any()  # both cases exercised
    want_loss, want_grad, want_aux = by_hand(logp, old, ref, adv, mask, o)
    loss, grad, aux = jax_loss_and_grad(*f32(logp, old, ref, adv, mask), o)
    assert loss == pytest.approx(want_loss, rel=1e-5)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-8)
    assert aux["kl"] == pytest.approx(want_aux["kl"], rel=1e-5)
    unclamped = by_hand(logp, old, ref, adv, mask, dataclasses.replace(o, kl_clamp=0.0))
    assert abs(unclamped[2]["kl"] - want_aux["kl"]) > 1e-3


def test_dual_clip_against_hand_reference():
    o = LossOptions(dual_clip=2.0, aggregation="token_mean", **OPTS)
    logp, old, ref, adv, mask, _ = make_batch(seed=1)
    want_loss, want_grad, _ = by_hand(logp, old, ref, adv, mask, o)
    loss, grad, _ = jax_loss_and_grad(*f32(logp, old, ref, adv, mask), o)
    assert loss == pytest.approx(want_loss, rel=1e-5)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-8)
    # the dual clip binds (ratio 2.5 > c = 2 with a negative advantage) and lowers the loss
    plain = by_hand(logp, old, ref, adv, mask, dataclasses.replace(o, dual_clip=0.0))[0]
    assert plain > want_loss + 1e-3


def test_denominator_override_and_micro_batch_sums():
    """Every aggregation is sum / normaliser: two halves with the batch's normaliser sum to the whole."""
    logp, old, ref, adv, mask, _ = make_batch(seed=2)
    for agg in AGGREGATIONS:
        o = LossOptions(aggregation=agg, **OPTS)
        whole, g_whole, _ = jax_loss_and_grad(*f32(logp, old, ref, adv, mask), o)
        denom = {"seq_mean_token_mean": N, "seq_mean_token_sum": N, "seq_sum_const": N * T}.get(
            agg, mask.sum()
        )
        parts = [
            jax_loss_and_grad(*f32(logp[s], old[s], ref[s], adv[s], mask[s]), o, denom=denom)
            for s in (slice(0, 2), slice(2, 4))
        ]
        assert parts[0][0] + parts[1][0] == pytest.approx(whole, rel=1e-6), agg
        np.testing.assert_allclose(np.concatenate([parts[0][1], parts[1][1]]), g_whole, rtol=1e-6)
    # global_token_mean with an explicit global count
    o = LossOptions(aggregation="global_token_mean", **OPTS)
    want = by_hand(logp, old, ref, adv, mask, o, denom=100.0)[0]
    assert jax_loss_and_grad(*f32(logp, old, ref, adv, mask), o, denom=100.0)[0] == pytest.approx(
        want, rel=1e-5
    )


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_on_policy_gradient_is_plain_policy_gradient(aggregation):
    """mu = 1: old == new, ratio 1, d loss / d logp = -A * (token weight of the aggregation)."""
    o = LossOptions(aggregation=aggregation, beta=0.0, max_tokens=T)
    logp, _, _, adv, mask, _ = make_batch(seed=3)
    loss, grad, aux = jax_loss_and_grad(*f32(logp, logp, logp, adv, mask), o)
    assert aux["ratio_min"] == 1.0 and aux["ratio_max"] == 1.0
    assert aux["clip_frac_low"] == 0.0 and aux["clip_frac_high"] == 0.0
    n_i = np.maximum(mask.sum(1, keepdims=True), 1)
    w = {
        "seq_mean_token_mean": mask / (n_i * N),
        "token_mean": mask / mask.sum(),
        "seq_sum_const": mask / (N * T),
        "global_token_mean": mask / mask.sum(),
        "seq_mean_token_sum": mask / N,
    }[aggregation]
    np.testing.assert_allclose(grad, -np.asarray(ADV)[:, None] * w, rtol=1e-6, atol=1e-9)
    assert loss == pytest.approx(float((-np.asarray(ADV)[:, None] * w).sum()), rel=1e-6)


def test_beta_zero_ignores_reference():
    logp, old, ref, adv, mask, _ = make_batch(seed=4)
    o = LossOptions(beta=0.0)
    a = jax_loss_and_grad(*f32(logp, old, ref, adv, mask), o)
    b = jax_loss_and_grad(*f32(logp, old), None, *f32(adv, mask), o)
    assert a[0] == b[0] and np.array_equal(a[1], b[1]) and a[2]["kl"] == 0.0


def test_option_validation():
    with pytest.raises(ValueError, match="kl_estimator"):
        LossOptions(kl_estimator="k4")
    with pytest.raises(ValueError, match="aggregation"):
        LossOptions(aggregation="sum")
    with pytest.raises(ValueError, match="max_tokens"):
        LossOptions(aggregation="seq_sum_const")
    with pytest.raises(ValueError, match="dual_clip"):
        LossOptions(dual_clip=0.5)
    with pytest.raises(ValueError, match="kl_clamp"):
        LossOptions(kl_clamp=-1.0)


def test_kl_estimator_gradients_on_policy():
    """Tokens sampled from a small categorical policy pi; each estimator used as the loss.

    E[grad k1] = E[grad log pi] = 0: k1 gives no KL gradient at all on-policy.
    E[grad k2] = sum_x pi (log pi - log ref) grad log pi = grad KL(pi || ref) exactly.
    E[grad k3] = sum_x (pi - ref) grad log pi = -sum_x ref grad log pi = grad KL(ref || pi): not zero,
    and equal to grad KL(pi || ref) only to first order in (pi - ref).
    Monte-Carlo error from 200 batch means of 1000 tokens each.
    """
    v, chunks, per = 6, 200, 1000
    theta = jax.random.normal(jax.random.key(0), (v,)) * 0.8
    phi = theta + jax.random.normal(jax.random.key(1), (v,)) * 0.8
    x = jax.random.categorical(jax.random.key(2), theta, shape=(chunks, 1, per))
    ref_logp = jax.nn.log_softmax(phi)[x]

    @jax.jit(static_argnums=3)
    def chunk_grads(th, xs, rl, est):
        def loss(th, xc, rc):  # one chunk: [1, per] tokens, token mean of beta * k
            lp = jax.nn.log_softmax(th)[xc]
            o = LossOptions(beta=1.0, kl_estimator=est, aggregation="token_mean")
            m = jnp.ones(xc.shape, bool)
            return grpo_loss(lp, jax.lax.stop_gradient(lp), rc, jnp.zeros(1), m, o)[0]

        return jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))(th, xs, rl)

    def mc(est):
        g = np.asarray(chunk_grads(theta, x, ref_logp, est), np.float64)
        return g.mean(0), g.std(0) / np.sqrt(chunks)

    ref = jax.nn.softmax(phi)
    kl_fwd = lambda th: (jax.nn.softmax(th) * (jax.nn.log_softmax(th) - jnp.log(ref))).sum()  # noqa: E731
    kl_rev = lambda th: (ref * (jnp.log(ref) - jax.nn.log_softmax(th))).sum()  # noqa: E731
    g_fwd, g_rev = np.asarray(jax.grad(kl_fwd)(theta)), np.asarray(jax.grad(kl_rev)(theta))
    g1, se1 = mc("k1")
    g2, se2 = mc("k2")
    g3, se3 = mc("k3")
    assert np.all(np.abs(g1) < 5 * se1 + 1e-6), (g1, se1)
    assert np.all(np.abs(g2 - g_fwd) < 5 * se2 + 1e-6), (g2, g_fwd, se2)
    assert np.all(np.abs(g3 - g_rev) < 5 * se3 + 1e-6), (g3, g_rev, se3)
    # k3 has a real (non-zero) gradient, and far from ref it is not the forward-KL gradient
    assert np.abs(g_rev).max() > 20 * se3.max()
    assert np.abs(g3 - g_fwd).max() > 10 * se3.max()
