"""The research API (r1jax.lab) against the trainer's own update and hand-computed gradient weights.

A tiny random model with the toy tokenizer samples B x G rollouts of Countdown prompts (the README
example's, so its compiled programs are shared); the reward that varies inside every group is the
share of digits in the completion's text (a random model writes some), so advantages are non-zero. Checked: the .npz round trip; every loss value and aux
equals `train_step.update`'s metrics on the same batch and params, and the per-token gradient
weights, pulled back through the log-probs, equal the update's parameter gradient; the weights
equal hand-derived formulas (each aggregation, each KL estimator) and jax.grad of the pure loss;
k updates lower the batch's loss (and edited advantages are the ones that train); the README's
"Research API" example runs as written, at a tiny size.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from r1jax import lab
from r1jax.data import corpus
from r1jax.model import ModelConfig, api, hf
from r1jax.parallel import sharding
from r1jax.rewards.registry import Reward
from r1jax.rl import grpo_loss, losses, train_step
from r1jax.tokenizers import sentencepiece as tok_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
B, G, T = 2, 8, 16
SGD1 = optax.sgd(1.0)  # new = old - grad: the update's gradient is the parameter difference


def _digit_share(texts, examples):
    del examples
    return np.array([sum(c.isdigit() for c in t) / max(len(t), 1) for t in texts], np.float32)


DIGITS = Reward("digit_share", _digit_share, 0.0, 1.0)


@pytest.fixture(scope="module")
def policy(one_device_mesh):
    tok = tok_lib.train(corpus.texts(0, 0, 200, corpus.CorpusConfig()), 320)
    cfg = ModelConfig(
        vocab_size=320, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, mlp_dim=48, max_len=512
    )
    graphdef, params, _ = api.create(cfg, 0, one_device_mesh, sharding.DEFAULT_RULES)
    return lab.Policy(graphdef, params, cfg, tok, one_device_mesh, source="tiny")


@pytest.fixture(scope="module")
def batch(policy):
    examples = lab.load_task("countdown", n_numbers=3, max_number=9, max_target=99).examples[:B]
    specs = [DIGITS, "format(weight=0.5)", "arithmetic_accuracy(weight=0)"]  # the last is NaN here
    return lab.collect_rollouts(policy, examples, specs, group_size=G, max_new_tokens=T)


@pytest.fixture(scope="module")
def moved(policy):
    """Params away from the sampler's (a random nudge), so ratios leave the clip range and KL > 0."""
    leaves, tree = jax.tree.flatten(policy.params)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    nudged = [x + 0.2 * jax.random.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys)]
    return jax.tree.unflatten(tree, nudged)


def test_batch_is_consistent_and_round_trips(policy, batch, tmp_path):
    assert np.isnan(batch.reward("arithmetic_accuracy")).all()  # weight 0: never in the advantages
    assert np.isfinite(batch.adv_N).all() and np.abs(batch.adv_N).max() > 0.5
    np.testing.assert_allclose(batch.adv_N.reshape(B, G).mean(1), 0.0, atol=1e-5)
    logp, _ = lab.policy_logprobs(policy, batch)  # the sampler's log-probs are the policy's
    np.testing.assert_allclose(
        np.where(batch.mask_NxT, logp, 0.0), batch.old_logp_NxT, rtol=1e-5, atol=1e-5
    )
    dists = lab.token_logdists(policy, batch, prompts_per_call=2)  # two calls, concatenated
    picked = np.take_along_axis(dists, batch.completion_NxT[..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(picked, logp, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.exp(dists).sum(-1), 1.0, rtol=1e-5)
    again = lab.load_batch(lab.save_batch(batch, str(tmp_path / "b.npz")))
    for f in dataclasses.fields(batch):
        a, b = getattr(batch, f.name), getattr(again, f.name)
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype, f.name
            np.testing.assert_array_equal(a, b, err_msg=f.name)  # NaN == NaN here
        else:
            assert a == b, f.name
    assert again.rows([1]).completions == batch.completions[G : 2 * G]
    assert again.rows([1]).prompts == batch.prompts[1:]


def _update_grads(policy, batch, params, loss, opts):
    """One SGD (lr 1) update at `params`: (its metrics, its parameter gradient). The default loss
    goes through train_step.update itself with the batch's rewards and the GRPO estimator (so the
    batch's advantages are checked too); a Loss object through lab.run_updates."""
    if not isinstance(loss, str):
        res = lab.run_updates(policy, batch, 1, SGD1, loss, opts, params=params)
        return res.metrics[0], jax.tree.map(lambda a, b: a - b, params, res.params)
    cfg = train_step.UpdateConfig(
        group_size=G,
        temperature=batch.temperature,
        reward_weights=batch.reward_weights,
        loss=opts,
        loss_fn=loss,
    )
    state = {"params": params, "opt_state": SGD1.init(params), "step": jnp.int32(0)}
    state["ref_params"] = policy.params
    with jax.set_mesh(policy.mesh):
        new, m = jax.jit(train_step.update, static_argnums=(0, 1, 4))(
            policy.graphdef, SGD1, state, jax.tree.map(jnp.asarray, batch.update_inputs()), cfg
        )
    return train_step.metrics_to_host(m), jax.tree.map(lambda a, b: a - b, params, new["params"])


def _reinforce(opts):
    def fn(x, denom):
        return -(x.adv_N[:, None] * x.logp_NxT * x.mask_NxT).sum() / denom, {}

    return losses.Loss("reinforce", fn, losses.token_count)


@pytest.mark.parametrize(
    "loss,options",
    [
        ("grpo", {"epsilon_high": 0.28}),  # k3, beta 0.04, seq_mean_token_mean, clip-higher
        ("custom", None),  # a Loss passed directly
    ],
)
def test_loss_and_weights_equal_the_update(policy, batch, moved, loss, options):
    opts = lab.loss_eval.loss_options(options, T)
    loss = _reinforce(opts) if loss == "custom" else loss
    report = lab.evaluate_loss(policy, batch, loss, opts, params=moved)
    m, grads = _update_grads(policy, batch, moved, loss, opts)
    # the two paths compute logp in different programs (f32 rounding, ~1e-6 relative); REINFORCE's
    # loss is a cancelling sum of A * logp with |logp| ~ 6, so compare at 1e-6 of its terms' size
    scale = float(np.abs(batch.adv_N[:, None] * report.logp_NxT)[batch.mask_NxT].mean())
    assert report.loss == pytest.approx(m["loss"], rel=1e-5, abs=1e-6 * max(scale, 0.1))
    for k, v in report.aux.items():
        assert v == pytest.approx(m[k], rel=1e-5, abs=1e-7), k
    if options:
        assert (
            report.aux["kl"] > 0 and report.aux["clip_frac_low"] + report.aux["clip_frac_high"] > 0
        )
    # the per-token weights pulled back through the log-probs are the update's gradient
    pulled = lab.parameter_gradient(policy, batch, report.grad_logp_NxT, moved)
    top = max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grads))
    for a, b in zip(jax.tree.leaves(pulled), jax.tree.leaves(grads)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * top)


@pytest.mark.parametrize("agg", grpo_loss.AGGREGATIONS)
def test_on_policy_weights_by_hand(policy, batch, agg):
    """beta 0 at the sampling params: w_it = -A_i * ratio_it / c_i with the aggregation's c_i."""
    report = lab.evaluate_loss(policy, batch, "grpo", {"beta": 0.0, "aggregation": agg})
    m = batch.mask_NxT.astype(np.float64)
    n_i = m.sum(1, keepdims=True)
    c = {
        "seq_mean_token_mean": len(m) * n_i,
        "token_mean": m.sum(),
        "global_token_mean": m.sum(),
        "seq_sum_const": len(m) * T,
        "seq_mean_token_sum": len(m),
    }[agg]
    ratio = np.exp(report.logp_NxT - batch.old_logp_NxT)
    want = -batch.adv_N[:, None] * ratio * m / c
    np.testing.assert_allclose(report.grad_logp_NxT, want, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("est", grpo_loss.KL_ESTIMATORS)
def test_kl_weights_by_hand_and_jax_grad(policy, batch, moved, est):
    """Advantages edited to 0 leave only beta * KL: d k / d logp is 1 (k1), logp - ref (k2),
    1 - exp(ref - logp) (k3), over the token count. With the real advantages the weights equal
    jax.grad of the pure `grpo_loss` w.r.t. logp."""
    opts = {"beta": 0.5, "kl_estimator": est, "aggregation": "token_mean"}
    no_adv = dataclasses.replace(batch, adv_N=np.zeros_like(batch.adv_N))
    report = lab.evaluate_loss(policy, no_adv, "grpo", opts, params=moved)
    lp, ref = report.logp_NxT, np.asarray(lab.policy_logprobs(policy, batch)[0])
    d = {"k1": np.ones_like(lp), "k2": lp - ref, "k3": 1.0 - np.exp(ref - lp)}[est]
    m = batch.mask_NxT
    np.testing.assert_allclose(report.grad_logp_NxT, 0.5 * d * m / m.sum(), rtol=1e-4, atol=1e-9)

    full = lab.evaluate_loss(policy, batch, "grpo", opts, params=moved)
    o = grpo_loss.LossOptions(**opts, max_tokens=T)
    pure = lambda x: grpo_loss.grpo_loss(x, batch.old_logp_NxT, ref, batch.adv_N, m, o)[0]  # noqa: E731
    np.testing.assert_allclose(full.grad_logp_NxT, jax.grad(pure)(jnp.asarray(lp)), rtol=1e-6)


def test_k_updates_lower_the_loss_and_use_the_batch_advantages(policy, batch):
    sgd = optax.sgd(0.01)
    opts = {"beta": 0.0}
    four = lab.run_updates(policy, batch, 4, sgd, "grpo", opts)
    at = lambda p, b=batch: lab.evaluate_loss(policy, b, "grpo", opts, params=p).loss  # noqa: E731
    curve = [m["loss"] for m in four.metrics] + [at(four.params)]
    assert curve[0] == pytest.approx(at(policy.params), abs=1e-6)
    assert all(b < a for a, b in zip(curve, curve[1:])), curve
    # two calls of 2 continue each other exactly (params and optimizer state carried)
    two = lab.run_updates(policy, batch, 2, sgd, "grpo", opts)
    more = lab.run_updates(policy, batch, 2, sgd, "grpo", opts, two.params, two.opt_state)
    for a, b in zip(jax.tree.leaves(more.params), jax.tree.leaves(four.params)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # negated advantages train the other way: the original batch's loss goes up
    flipped = dataclasses.replace(batch, adv_N=-batch.adv_N)
    up = lab.run_updates(policy, flipped, 4, sgd, "grpo", opts)
    assert at(up.params) > curve[0] + 0.5 * (curve[0] - curve[-1])


def test_hugging_face_folder_and_bad_inputs(policy, batch, tmp_path):
    """A policy exported with model.hf.save_hf loads back through load_policy's HF branch: the same
    params, tokenizer ids and loss; stage-directory export refuses its HF tokenizer; a missing
    directory and a batch file of another format are one-line errors."""
    tokdir = tmp_path / "tok"
    tokdir.mkdir()
    tok = policy.tokenizer
    tok.save(str(tokdir / "tokenizer.model"))
    special = {"bos_token": tok.id_to_piece(tok.bos_id), "eos_token": tok.id_to_piece(tok.eos_id)}
    (tokdir / "tokenizer_config.json").write_text(json.dumps(special))
    folder = str(tmp_path / "hf")
    hf.save_hf(folder, policy.params, policy.config, tokenizer_dir=str(tokdir))
    again = lab.load_policy(folder)
    for a, b in zip(jax.tree.leaves(again.params), jax.tree.leaves(policy.params)):
        np.testing.assert_array_equal(a, b)
    assert again.tokenizer.encode(batch.examples[0]["question"]) == tok.encode(
        batch.examples[0]["question"]
    )
    opts = {"beta": 0.0}
    assert lab.evaluate_loss(again, batch, "grpo", opts).loss == pytest.approx(
        lab.evaluate_loss(policy, batch, "grpo", opts).loss, abs=1e-7
    )
    with pytest.raises(ValueError, match="save_hf"):
        lab.save_policy(again, str(tmp_path / "stage"))
    with pytest.raises(FileNotFoundError, match="pretrain_toy.py"):
        lab.load_policy(str(tmp_path / "missing"))
    path = lab.save_batch(batch, str(tmp_path / "b.npz"))
    with np.load(path) as z:
        arrays = dict(z)
    arrays["meta"] = np.asarray(json.dumps({**json.loads(str(arrays["meta"])), "format": 99}))
    np.savez(str(tmp_path / "old.npz"), **arrays)
    with pytest.raises(ValueError, match="collect the batch again"):
        lab.load_batch(str(tmp_path / "old.npz"))


def test_readme_example_runs(policy, tmp_path):
    """The README's Research API block, with the base model and sizes shrunk (each once)."""
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    block = re.search(r"<!-- research-api -->\s*```python\n(.*?)```", readme, re.S)
    assert block, "README.md lost its <!-- research-api --> example"
    code = block.group(1)
    assert len(code.strip().splitlines()) <= 14
    base = lab.save_policy(policy, str(tmp_path / "base"))
    for old, new in [
        ('"/tmp/r1jax/base"', repr(base)),
        ('"/tmp/r1jax/batch.npz"', repr(str(tmp_path / "batch.npz"))),
        ("task.examples[:16]", f"task.examples[:{B}]"),
        ("max_new_tokens=192", f"max_new_tokens={T}"),
    ]:
        assert code.count(old) == 1, old
        code = code.replace(old, new)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert os.path.exists(tmp_path / "batch.npz")
    assert len(scope["result"].metrics) == 4
