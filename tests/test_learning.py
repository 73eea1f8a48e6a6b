"""Learning tests that can fail: on a task where rewards vary inside groups, GRPO must raise the reward.

The task: the reward of a completion is the share of its tokens whose id is below 8 (1/8 of the
vocabulary), so a random tiny model scores ~0.125 with spread inside every group, and a policy can
learn to raise it. Sampling, reward and update are one jitted program (as in the fused step).

(a) 30 GRPO steps raise the mean reward well above its start;
(c) the same program with the reward negated - which flips the sign of every GRPO advantage, since
    the group z-score is odd in r - LOWERS the share of those tokens, so a broken update direction
    fails (a). Checked by hand once (2026-12-01): with the advantage negated inside
    train_step.update, test_grpo_raises_the_reward fails (share 0.12 -> 0.01 instead of rising).
(b) every aggregation, KL estimator and advantage estimator, through the registries the update
    uses, turns real sampled rollouts of this task into a non-zero gradient.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from r1jax.model import api
from r1jax.parallel import sharding
from r1jax.rl import advantages, grpo_loss, losses, train_step
from r1jax.rl.rollout import rollout_batch
from r1jax.sampling.sample import SamplingConfig, sample

B, G, P, T, STEPS = 4, 8, 4, 8, 30
LOW = 8  # token ids below this are "good"


def low_share(tokens_NxT, mask_NxT):
    m = mask_NxT.astype(jnp.float32)
    return ((tokens_NxT < LOW) * m).sum(1, keepdims=True) / jnp.maximum(m.sum(1, keepdims=True), 1)


@pytest.fixture(scope="module")
def run(tiny_model_cfg, one_device_mesh):
    """Two 30-step runs (reward, then negated reward) of ONE compiled program; first rollouts."""
    graphdef, params, _ = api.create(tiny_model_cfg, 0, one_device_mesh, sharding.DEFAULT_RULES)
    params = jax.device_put(
        params, jax.devices()[0]
    )  # the placement the step returns: no recompile
    prompt = jnp.asarray(np.random.default_rng(0).integers(LOW, 64, (B, P)), jnp.int32)
    valid = jnp.ones(prompt.shape, bool)
    tx = optax.adam(3e-3)
    scfg = SamplingConfig(max_new_tokens=T, temperature=1.0, eos_id=-1)
    ucfg = train_step.UpdateConfig(group_size=G, reward_weights=(1.0,), share_prefix=False)

    @jax.jit
    def step(state, key, sign):
        out = sample(graphdef, state["params"], prompt, valid, key, G, scfg)
        r = sign * low_share(out.tokens_NxT, out.mask_NxT)
        new, m = train_step.update(graphdef, tx, state, rollout_batch(prompt, valid, out, r), ucfg)
        return new, dict(m, share=low_share(out.tokens_NxT, out.mask_NxT).mean()), out

    init = {"params": params, "opt_state": tx.init(params), "step": jnp.int32(0)}
    curves, first = {}, None
    for sign in (1.0, -1.0):
        state, curve = init, []
        for i in range(STEPS):
            state, m, out = step(state, jax.random.key(i), sign)
            curve.append(float(m["share"]))
            first = first or out
        curves[sign] = curve
    return curves, first


def test_grpo_raises_the_reward(run):
    """(a): the mean share of the last 5 steps is far above the first 5 (start ~0.125)."""
    up = run[0][1.0]
    start, end = np.mean(up[:5]), np.mean(up[-5:])
    assert 0.05 < start < 0.25, start
    assert end > start + 0.3, (start, end, up)


def test_flipped_advantage_lowers_the_reward(run):
    """(c): with every advantage negated the share falls: the rise in (a) is the update's doing."""
    up, down = run[0][1.0], run[0][-1.0]
    assert np.mean(down[-5:]) < np.mean(down[:5]) - 0.05, down
    assert np.mean(up[-5:]) > np.mean(down[-5:]) + 0.4


VARIANTS = [dict(aggregation=a, max_tokens=T) for a in grpo_loss.AGGREGATIONS]
VARIANTS += [dict(beta=0.1, kl_estimator=k) for k in grpo_loss.KL_ESTIMATORS]


@pytest.mark.parametrize("estimator", ["grpo", "dr_grpo", "rloo"])
@pytest.mark.parametrize("opts", VARIANTS, ids=lambda o: o.get("aggregation") or o["kl_estimator"])
def test_every_variant_gives_a_nonzero_gradient(run, estimator, opts):
    """(b): real rollouts of the task -> advantages -> the registered loss -> d loss / d logp != 0."""
    out = run[1]
    reward_N = low_share(out.tokens_NxT, out.mask_NxT)[:, 0]
    adv_N, aux = advantages.compute(reward_N, G, estimator)
    assert float(aux["frac_reward_zero_std"]) == 0.0  # every group carries signal
    loss = losses.build("grpo", grpo_loss.LossOptions(**opts))
    rng = np.random.default_rng(1)
    logp = jnp.asarray(out.logp_NxT)
    ref = logp + jnp.asarray(rng.uniform(-0.3, 0.3, logp.shape), jnp.float32)

    def f(lp):
        x = losses.TokenInputs(lp, jax.lax.stop_gradient(lp), ref, adv_N, out.mask_NxT)
        return loss(x, loss.normalizer(out.mask_NxT))[0]

    grad = jax.grad(f)(logp)
    assert float(jnp.abs(grad).sum()) > 1e-3
    assert float(jnp.abs(jnp.where(out.mask_NxT, 0.0, grad)).max()) == 0.0  # padding gets none
