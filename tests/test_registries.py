"""Losses, advantage estimators and tasks are registries that code outside the package extends.

Each test registers a variant here (as a notebook or an experiment file would), selects it by name,
and checks that the library really uses it: the update's gradient equals the gradient of the
hand-written loss, the advantages are the custom estimator's, and the task loads through the
registry. Also: weight-0 rewards are diagnostics that never reach the advantages, NaN or not.
"""

from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from r1jax import config_check
from r1jax.data import tasks, tfds_base
from r1jax.model import api
from r1jax.parallel import sharding
from r1jax.rl import advantages, losses, train_step
from r1jax.rl.grpo_loss import LossOptions
from r1jax.rl.logprobs import completion_logprobs

B, G, P, T = 4, 2, 3, 5
REWARDS = [[1.0, np.nan], [0.0, 1.0], [0.5, 0.5], [0.5, 0.0]] + [[1.0, 0.0], [0.0, 0.0]] * 2


@losses.register("reinforce_test")
def reinforce(opts: LossOptions, scale: float = 1.0) -> losses.Loss:
    """Plain REINFORCE with a token-mean normaliser: -scale * A * logp."""
    del opts

    def fn(x: losses.TokenInputs, denom):
        per_token = -scale * x.adv_N[:, None] * x.logp_NxT
        return (per_token * x.mask_NxT).sum() / denom, {"logp_sum": (x.logp_NxT * x.mask_NxT).sum()}

    return losses.Loss("reinforce_test", fn, losses.token_count)


@advantages.register("centered_test")
def centered(rewards_N, group_size):
    """r - 0.5, ignoring the group: a deliberately odd estimator the test can recognise."""
    return rewards_N.astype(jnp.float32) - 0.5, {}


@tasks.register("echo_test", accuracy="general_match")
class EchoTask(tfds_base.TaskBuilder, skip_registration=True):
    TASK = "echo_test"

    def generate(self, split: str) -> Iterator[dict]:
        for i in range(3 if split == "train" else 2):
            yield {"id": f"{split}{i}", "task": "echo_test", "question": f"say {i}",
                   "answer": str(i), "ground_truth": "{}", "difficulty": 1}  # fmt: skip


@pytest.fixture(scope="module")
def setup(tiny_model_cfg, one_device_mesh):
    graphdef, params, _ = api.create(tiny_model_cfg, 0, one_device_mesh, sharding.DEFAULT_RULES)
    rng = np.random.default_rng(0)
    mask = np.arange(T)[None, :] < rng.integers(1, T + 1, (B * G,))[:, None]
    batch = {
        "prompt": jnp.asarray(rng.integers(4, 64, (B, P)), jnp.int32),
        "prompt_valid": jnp.ones((B, P), bool),
        "completion": jnp.asarray(np.where(mask, rng.integers(4, 64, mask.shape), 0), jnp.int32),
        "mask_NxT": jnp.asarray(mask),
        "old_logp_NxT": jnp.zeros(mask.shape, jnp.float32),  # replaced: old_logp = "recompute"
        "rewards_NxR": jnp.asarray(REWARDS, jnp.float32),
        "truncated_N": jnp.zeros(B * G, bool),
    }
    return graphdef, params, batch


def summed_sgd() -> optax.GradientTransformation:
    """SGD that keeps the raw gradient in its state (exact f32 gradients to compare)."""
    keep = optax.GradientTransformation(
        lambda p: jax.tree.map(jnp.zeros_like, p), lambda g, s, p=None: (g, g)
    )
    return optax.chain(keep, optax.sgd(0.01))


def run(setup, **cfg):
    graphdef, params, batch = setup
    tx = summed_sgd()
    ucfg = train_step.UpdateConfig(
        group_size=G, reward_weights=(1.0, 0.0), old_logp="recompute", share_prefix=False, **cfg
    )
    state = {"params": params, "opt_state": tx.init(params), "step": jnp.int32(0)}
    new, m = jax.jit(train_step.update, static_argnums=(0, 1, 4))(graphdef, tx, state, batch, ucfg)
    return new["opt_state"][0], m


def test_a_loss_registered_outside_is_the_one_the_update_differentiates(setup):
    graphdef, params, batch = setup
    grads, m = run(setup, loss_fn="reinforce_test(scale=2.0)")
    reward_N = train_step.total_reward(batch["rewards_NxR"], (1.0, 0.0))
    adv_N, _ = advantages.group_zscore(reward_N, G)
    mask = batch["mask_NxT"]

    def hand(p):
        logp, _ = completion_logprobs(
            graphdef,
            p,
            batch["prompt"],
            batch["prompt_valid"],
            batch["completion"],
            1.0,
            False,
            False,
        )
        return (-2.0 * adv_N[:, None] * logp * mask).sum() / mask.sum(), (logp * mask).sum()

    (want_loss, logp_sum), want = jax.value_and_grad(hand, has_aux=True)(params)
    assert float(m["loss"]) == pytest.approx(float(want_loss), rel=1e-5)
    assert float(m["logp_sum"]) == pytest.approx(float(logp_sum), rel=1e-5)  # its own aux, merged
    for g, w in zip(jax.tree.leaves(grads), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-5 * float(jnp.abs(w).max()) + 1e-12)
    assert float(optax.tree.norm(grads)) > 0


def test_an_advantage_estimator_registered_outside_is_used(setup):
    _, m = run(setup, advantage="centered_test")
    reward_N = np.nan_to_num(np.asarray(REWARDS)[:, 0])
    assert float(m["adv_abs_mean"]) == pytest.approx(np.abs(reward_N - 0.5).mean(), rel=1e-6)
    assert sorted(advantages.names()) == sorted({"grpo", "dr_grpo", "rloo", "centered_test"})


def test_a_task_registered_outside_loads_with_its_accuracy_reward(tmp_path):
    test = tasks.load("echo_test", "test", str(tmp_path))
    assert [ex["question"] for ex in test] == ["say 0", "say 1"]
    assert tasks.accuracy_reward("echo_test") == "general_match"
    assert "echo_test" in tasks.names() and "countdown" in tasks.names()


def test_weight_zero_rewards_never_reach_the_advantages():
    """A NaN in a weight-0 (diagnostic) column leaves its rollout's advantage and group intact."""
    r = jnp.asarray(REWARDS, jnp.float32)
    total = train_step.total_reward(r, (1.0, 0.0))
    assert np.isfinite(np.asarray(total)).all()
    np.testing.assert_array_equal(total, r[:, 0])
    adv, aux = advantages.compute(total, G)
    assert int(aux["nan_rewards"]) == 0 and float(adv[0]) > 0.9  # 1 vs 0 in its group
    naive = (r * jnp.asarray([[1.0, 0.0]])).sum(1)  # what multiplying by the weight would give
    assert not np.isfinite(np.asarray(naive[0]))
    with pytest.raises(ValueError, match="weight 0"):
        train_step.total_reward(r, (0.0, 0.0))


def test_unknown_names_are_config_errors():
    with pytest.raises(config_check.ConfigError, match="unknown loss"):
        losses.build("no_such_loss", LossOptions())
    with pytest.raises(config_check.ConfigError, match="reinforce_test"):
        losses.build("reinforce_test(bogus=1)", LossOptions())
    with pytest.raises(ValueError, match="unknown advantage"):
        advantages.compute(jnp.zeros(4), 2, "no_such")
    with pytest.raises(ValueError, match="unknown task"):
        tasks.load("no_such_task", "test")
