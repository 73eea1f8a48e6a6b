"""The GRPO update (accumulation, mini-batches, skips), shared-prefix log-probs, the tiny experiments.

Letters: B prompts, G samples each, N = B * G, P prompt length, T completion length. Tiny models,
one device, f32 at the highest matmul precision (conftest); plain SGD with every update's gradient
summed in the optimiser state, so that updates can be compared gradient by gradient.
"""

import functools
import json
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from r1jax.model import api
from r1jax.parallel import sharding
from r1jax.rl import advantages, train_step
from r1jax.rl.grpo_loss import AGGREGATIONS, LossOptions, grpo_loss
from r1jax.rl.logprobs import completion_logprobs

B, G, P, T = 8, 2, 5, 6
PROMPT_LENS = (5, 3, 1, 4, 2, 5, 1, 3)
COMP_LENS = (6, 2, 5, 6, 1, 3, 6, 4, 2, 2, 6, 6, 3, 5, 4, 1)  # 6 = no EOS within T (truncated)
# reward columns weighted (1, 0.5): group totals 1, .5 | 1.5, 1.5 (no signal) | 0, 2.5 | 1.25, 0 | ...
REWARDS = [[1, 0], [0, 1], [1, 1], [1, 1], [0, 0], [2, 1], [1, 0.5], [0, 0]]
REWARDS += [[0, 1], [1, 0], [0, 0], [0, 0], [2, 0], [0, 1], [1, 1], [0, 1]]
WEIGHTS = (1.0, 0.5)
LR = 0.01  # small enough that the 4 sequential updates stay well conditioned


def summed_grads() -> optax.GradientTransformation:
    """Keeps the sum of every update's raw gradient in the optimiser state: exact f32 gradients to
    compare, which the parameters (rounded to f32 after each small step) cannot give."""
    init = lambda params: jax.tree.map(jnp.zeros_like, params)  # noqa: E731
    return optax.GradientTransformation(init, lambda g, s, p=None: (g, jax.tree.map(jnp.add, s, g)))


TX = optax.chain(summed_grads(), optax.sgd(LR))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ucfg(aggregation: str, grad_accum: int = 1) -> train_step.UpdateConfig:
    """mu = 2 passes over 2 mini-batches (4 optimiser updates), truncated rollouts masked out,
    clip-higher, dual clip and a k3 KL term: every part of the update is active. Full-sequence
    log-probs compile faster; the shared-prefix path is checked against them below and runs in the
    fused-vs-split test and the experiments."""
    loss = LossOptions(
        epsilon_high=0.28, dual_clip=2.0, beta=0.1, aggregation=aggregation, max_tokens=T
    )
    return train_step.UpdateConfig(
        group_size=G,
        mu=2,
        mini_batches=2,
        grad_accum=grad_accum,
        reward_weights=WEIGHTS,
        mask_truncated=True,
        share_prefix=False,
        loss=loss,
    )


run_update = jax.jit(train_step.update, static_argnums=(0, 1, 4))
logp_fn = jax.jit(completion_logprobs, static_argnums=(0, 5, 6, 7))


def perturbed(params, seed: int, scale: float):
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda x: x + scale * rng.standard_normal(x.shape, np.float32), params)


@pytest.fixture(scope="module")
def model(tiny_model_cfg, one_device_mesh):
    graphdef, params, _ = api.create(tiny_model_cfg, 0, one_device_mesh, sharding.DEFAULT_RULES)
    return graphdef, params


@pytest.fixture(scope="module")
def rollouts(model):
    """Random prompts and completions; old log-probs = the policy's own, off by up to +-0.6 nats."""
    graphdef, params = model
    rng = np.random.default_rng(0)
    valid = np.arange(P)[None, :] >= P - np.asarray(PROMPT_LENS)[:, None]
    prompt = np.where(valid, rng.integers(4, 64, (B, P)), 0).astype(np.int32)
    mask = np.arange(T)[None, :] < np.asarray(COMP_LENS)[:, None]
    completion = np.where(mask, rng.integers(4, 64, (B * G, T)), 0).astype(np.int32)
    logp, _ = logp_fn(graphdef, params, prompt, valid, completion, 1.0, False, False)
    old = np.where(mask, np.asarray(logp) + rng.uniform(-0.6, 0.6, mask.shape), 0.0)
    return {
        "prompt": jnp.asarray(prompt),
        "prompt_valid": jnp.asarray(valid),
        "completion": jnp.asarray(completion),
        "mask_NxT": jnp.asarray(mask),
        "old_logp_NxT": jnp.asarray(old, jnp.float32),
        "rewards_NxR": jnp.asarray(REWARDS, jnp.float32),
        "truncated_N": jnp.asarray(np.asarray(COMP_LENS) == T),
    }


@pytest.fixture(scope="module")
def state(model):
    _, params = model
    return {
        "params": params,
        "opt_state": TX.init(params),
        "step": jnp.int32(0),
        "ref_params": perturbed(params, 1, 0.05),
    }


def grads(new_state) -> dict:
    return jax.tree.map(lambda x: np.asarray(x, np.float64), new_state["opt_state"][0])


def assert_trees_close(a, b, rtol):
    """Leaf by leaf, relative to the leaf's largest entry (f32 sums in a different order)."""
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        scale = max(np.abs(y).max(), 1e-30)
        np.testing.assert_allclose(x, y, rtol=0, atol=rtol * scale)


def assert_params_close(a, b):
    """Parameters after 4 f32 SGD steps: equal up to a few roundings of the leaf's largest entry."""
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        ulp = np.spacing(np.abs(np.asarray(y, np.float32)).max())
        np.testing.assert_allclose(x, y, rtol=0, atol=8 * ulp)


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_grad_accum_4_equals_one_batch(model, rollouts, state, aggregation):
    graphdef, _ = model
    new1, m1 = run_update(graphdef, TX, state, rollouts, ucfg(aggregation))
    new4, m4 = run_update(graphdef, TX, state, rollouts, ucfg(aggregation, grad_accum=4))
    g1, g4 = grads(new1), grads(new4)
    assert max(np.abs(x).max() for x in jax.tree.leaves(g1)) > 1e-2  # a real update
    assert_trees_close(g4, g1, 1e-5)
    assert_params_close(new4["params"], new1["params"])
    assert float(m4["loss"]) == pytest.approx(float(m1["loss"]), rel=1e-5)
    assert float(m4["active_tokens"]) == float(m1["active_tokens"])
    assert float(m1["clip_frac_low"]) > 0 and float(m1["clip_frac_high"]) > 0
    assert float(m1["frac_reward_zero_std"]) == 0.25 and int(new1["step"]) == 1


@pytest.mark.parametrize("aggregation", ["seq_mean_token_mean", "global_token_mean"])
def test_update_equals_hand_assembled_sgd(model, rollouts, state, aggregation):
    """The 4 optimiser updates, rebuilt here from grpo_loss on full-sequence log-probs: weighted
    rewards -> group z-scores over the whole batch, fixed old and reference log-probs, truncated
    rollouts masked, each mini-batch's own normaliser (the whole batch's for global_token_mean),
    mini-batches in the order drawn for the step."""
    graphdef, params = model
    cfg = ucfg(aggregation, grad_accum=4)
    new, _ = run_update(graphdef, TX, state, rollouts, cfg)
    r = rollouts
    total = (r["rewards_NxR"] * jnp.asarray(WEIGHTS)[None, :]).sum(1)
    adv, _ = advantages.group_zscore(total, G)
    mask = r["mask_NxT"] & ~r["truncated_N"][:, None]
    ref_logp, _ = logp_fn(
        graphdef,
        state["ref_params"],
        r["prompt"],
        r["prompt_valid"],
        r["completion"],
        1.0,
        False,
        False,
    )

    @jax.jit
    def grad(p, rows, prompt_rows, denom):
        def loss(p):
            logp, _ = completion_logprobs(
                graphdef,
                p,
                r["prompt"][prompt_rows],
                r["prompt_valid"][prompt_rows],
                r["completion"][rows],
                1.0,
                False,
                False,
            )
            o = cfg.loss
            return grpo_loss(
                logp, r["old_logp_NxT"][rows], ref_logp[rows], adv[rows], mask[rows], o, denom=denom
            )[0]

        return jax.grad(loss)(p)

    p, total_g = params, jax.tree.map(jnp.zeros_like, params)
    half = B // 2
    order = np.asarray(train_step.minibatch_order(cfg, state["step"])).reshape(cfg.mu, 2)
    assert sorted(order[0]) == sorted(order[1]) == [0, 1]  # each pass visits every mini-batch
    for it in range(cfg.mu):
        for k in order[it]:
            prompts = np.arange(k * half, (k + 1) * half)
            rows = np.arange(k * half * G, (k + 1) * half * G)
            if aggregation == "global_token_mean":
                denom = mask.sum()
            else:
                denom = jnp.float32(half * G)
            g = grad(p, rows, prompts, denom)
            p = jax.tree.map(lambda x, y: x - LR * y, p, g)
            total_g = jax.tree.map(jnp.add, total_g, g)
    assert_trees_close(grads(new), jax.tree.map(np.asarray, total_g), 1e-5)
    assert_params_close(new["params"], p)


def test_nonfinite_update_is_skipped(model, rollouts, state):
    """A NaN old log-prob in mini-batch 0: its 2 updates (one per pass) are skipped, the others run.
    (A NaN on a masked position, e.g. of a masked truncated row, must change nothing.)"""
    graphdef, _ = model
    orig = rollouts["old_logp_NxT"]
    # row 0 is truncated (masked out by mask_truncated); row 1 has 2 tokens, so slot 5 is padding
    masked = dict(rollouts, old_logp_NxT=orig.at[0, 0].set(jnp.nan).at[1, 5].set(jnp.nan))
    new, m = run_update(graphdef, TX, state, masked, ucfg("seq_mean_token_mean"))
    ok, _ = run_update(graphdef, TX, state, rollouts, ucfg("seq_mean_token_mean"))
    assert int(m["skipped_inner_updates"]) == 0
    for a, b in zip(jax.tree.leaves(new["params"]), jax.tree.leaves(ok["params"])):
        assert np.array_equal(a, b)
    bad = dict(rollouts, old_logp_NxT=orig.at[1, 0].set(jnp.nan))
    new, m = run_update(graphdef, TX, state, bad, ucfg("seq_mean_token_mean"))
    assert int(m["nonfinite"]) == 1 and int(m["skipped_inner_updates"]) == 2
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(new["params"]))
    assert max(np.abs(x).max() for x in jax.tree.leaves(grads(new))) > 1e-2
    assert int(new["step"]) == 1


def test_shared_prefix_logprobs_and_grads_equal_full_sequences(model, rollouts):
    graphdef, params = model
    r = rollouts
    w = jax.random.normal(jax.random.key(3), r["mask_NxT"].shape) * r["mask_NxT"]

    @functools.partial(jax.jit, static_argnums=0)
    def value_and_grad(share):
        def f(p):
            logp, ent = completion_logprobs(
                graphdef, p, r["prompt"], r["prompt_valid"], r["completion"], 0.7, True, share
            )
            return (w * logp).sum() + (w * ent).sum(), (logp, ent)

        return jax.value_and_grad(f, has_aux=True)(params)

    (_, (lp_s, ent_s)), g_s = value_and_grad(True)
    (_, (lp_f, ent_f)), g_f = value_and_grad(False)
    np.testing.assert_allclose(lp_s, lp_f, rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(ent_s, ent_f, rtol=1e-5, atol=2e-5)
    assert_trees_close(
        jax.tree.map(np.asarray, g_s), jax.tree.map(lambda x: np.asarray(x, np.float64), g_f), 1e-5
    )


def _run_experiment(config: str, workdir: str, *flags: str, devices: int = 1) -> None:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = ""  # the experiment runs on one device, as on a laptop
    if devices > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    out = subprocess.run(
        [sys.executable, "-m", "r1jax.main", f"--config={config}", f"--workdir={workdir}", *flags],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["r1_zero_countdown", "r1_zero_arithmetic"])
def test_experiment_tiny_runs_three_steps(tmp_path_factory, name):
    """Both share one base model (built by the first into <root>/base, as the real runs do)."""
    root = tmp_path_factory.getbasetemp() / "r1_zero_runs"
    workdir = str(root / name)
    _run_experiment(f"experiments/{name}.py:tiny", workdir)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    assert [r["step"] for r in rows] == [0, 1, 2]
    for r in rows:
        assert {"reward", "loss", "kl", "grad_norm", "entropy", "accuracy"} <= set(r)
        for k, v in r.items():
            assert isinstance(v, int | float) and math.isfinite(v), (k, v)
        assert r["nonfinite"] == 0
    # held-out pass@1 of the starting model (step 0, before its update), then every 2 steps
    assert ["eval_pass@1" in r for r in rows] == [True, True, False]
    # countdown's accuracy is host-only (split step); arithmetic's rewards are all jittable (fused)
    assert all(r["fused"] == (name == "r1_zero_arithmetic") for r in rows)
    assert any(f.endswith(".png") for f in os.listdir(os.path.join(workdir, "plots")))
    with open(os.path.join(workdir, "final_eval.json")) as f:
        summary = json.load(f)["summary"]
    assert summary["problems"] == 8 and 0.0 <= summary["pass@1"] <= 1.0
