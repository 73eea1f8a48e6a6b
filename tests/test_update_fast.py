"""The update without avoidable work: chunked vocabulary, no known forward passes, shuffled order.

What is shown (tiny model of test_grpo_step, one device, f32 at the highest matmul precision):
- log-probs, entropy and their gradients over vocabulary chunks (an uneven split whose last chunk
  overlaps the previous one) equal the whole-vocabulary ones; at V = 151,936 the chunked program
  needs a fraction of the memory (XLA's own accounting of the compiled program);
- at mu = 1 with one mini-batch, `old_logp="recompute"` (now stop_gradient of the loss's own
  forward) gives the update of the old path (a separate forward pass, fed in as old log-probs), with
  the matmul FLOPs of a run without recomputation: no extra forward pass;
- the single-update path (reference log-probs inside the micro-batch scan) equals the loss
  assembled by hand; the entropy metric can be switched off without changing the update;
- mini-batch order: a permutation per inner iteration, a function of (seed, step) only.
"""

# ruff: noqa: F811 - the fixtures model, rollouts and state come from test_grpo_step
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from sampling_reference import abstract_state
from test_grpo_step import (  # noqa: F401
    TX,
    WEIGHTS,
    G,
    assert_trees_close,
    grads,
    model,
    rollouts,
    run_update,
    state,
)
from test_model import _dot_flops

from r1jax.model import ModelConfig
from r1jax.rl import advantages, train_step
from r1jax.rl.grpo_loss import LossOptions, grpo_loss
from r1jax.rl.logprobs import completion_logprobs


def _single(**kw) -> train_step.UpdateConfig:
    """One optimiser update (mu = 1, one mini-batch), 2 micro-batches, KL on, shared prefix."""
    loss = LossOptions(beta=0.1)
    return train_step.UpdateConfig(
        group_size=G, grad_accum=2, reward_weights=WEIGHTS, loss=loss, **kw
    )


def test_chunked_logprobs_entropy_and_grads_equal_whole_vocabulary(model, rollouts):
    graphdef, params = model
    r = rollouts
    w = jax.random.normal(jax.random.key(3), r["mask_NxT"].shape)

    def run(chunk):
        def f(p):
            logp, ent = completion_logprobs(
                graphdef, p, r["prompt"], r["prompt_valid"], r["completion"], 0.7, True, True, chunk
            )
            return (w * logp).sum(), (logp, ent)

        return jax.jit(jax.value_and_grad(f, has_aux=True))(params)

    (_, (lp, ent)), g = run(0)
    for chunk in (22, 40):  # V = 64: 3 chunks of 22 (the last overlaps), 2 of 32
        (_, (lp_c, ent_c)), g_c = run(chunk)
        np.testing.assert_allclose(lp_c, lp, rtol=1e-6, atol=2e-6)
        np.testing.assert_allclose(ent_c, ent, rtol=1e-6, atol=2e-6)
        assert_trees_close(jax.tree.map(np.asarray, g_c), jax.tree.map(np.asarray, g), 1e-5)


def test_chunked_vocabulary_needs_a_fraction_of_the_memory():
    """Qwen's vocabulary, a narrow model: the loss's forward + backward, compiled, not run."""
    cfg = ModelConfig(
        vocab_size=151_936, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, mlp_dim=32, max_len=64
    )
    graphdef, state_ = abstract_state(cfg)
    shapes = nnx.to_pure_dict(state_)
    n, t = 8, 32  # 256 tokens: whole-vocabulary f32 logits are 156 MB
    args = (
        jax.ShapeDtypeStruct((1, 4), jnp.int32),
        jax.ShapeDtypeStruct((1, 4), bool),
        jax.ShapeDtypeStruct((n, t), jnp.int32),
    )

    def temp_bytes(chunk):
        def f(p, prompt, valid, completion):
            out = completion_logprobs(
                graphdef, p, prompt, valid, completion, 1.0, True, True, chunk
            )
            return out[0].sum()

        mem = jax.jit(jax.grad(f)).lower(shapes, *args).compile().memory_analysis()
        if mem is None:
            pytest.skip("no memory analysis on this backend")
        return mem.temp_size_in_bytes

    whole, chunked = temp_bytes(0), temp_bytes(8192)
    logits_bytes = n * t * cfg.vocab_size * 4
    assert whole > 2 * logits_bytes, (whole, logits_bytes)  # logits, softmax and their gradient
    assert chunked < logits_bytes / 2, (chunked, logits_bytes)


def test_recompute_free_update_equals_the_old_update(model, rollouts, state):
    """Old path: a separate forward pass gave the old log-probs; now the loss's own (stop_gradient)."""
    graphdef, params = model
    r = rollouts
    logp, _ = completion_logprobs(graphdef, params, r["prompt"], r["prompt_valid"], r["completion"])
    old_way = dict(r, old_logp_NxT=jnp.where(r["mask_NxT"], logp, 0.0))
    new, m = run_update(graphdef, TX, state, r, _single(old_logp="recompute"))
    want, m_want = run_update(graphdef, TX, state, old_way, _single(old_logp="sampler"))
    assert float(m["ratio_min"]) == float(m["ratio_max"]) == 1.0  # exactly on-policy
    assert_trees_close(grads(new), grads(want), 1e-5)
    for k in ("loss", "kl", "pg_loss", "entropy", "grad_norm"):
        assert float(m[k]) == pytest.approx(float(m_want[k]), rel=1e-5, abs=1e-7), k

    # no forward pass whose result is known: the same matmul FLOPs as without recomputation
    def update_flops(how: str) -> int:
        fn = lambda s, b: train_step.update(graphdef, TX, s, b, _single(old_logp=how))  # noqa: E731
        return _dot_flops(jax.make_jaxpr(fn)(state, r).jaxpr)

    flops = {how: update_flops(how) for how in ("recompute", "sampler")}
    assert flops["recompute"] == flops["sampler"], flops


def test_single_update_equals_hand_assembled_loss(model, rollouts, state):
    """Reference log-probs taken micro-batch by micro-batch inside the scan: the loss by hand."""
    graphdef, params = model
    r = rollouts
    cfg = _single()
    new, m = run_update(graphdef, TX, state, r, cfg)
    total = (r["rewards_NxR"] * jnp.asarray(WEIGHTS)[None, :]).sum(1)
    adv, _ = advantages.group_zscore(total, G)
    args = (r["prompt"], r["prompt_valid"], r["completion"])
    ref, _ = completion_logprobs(graphdef, state["ref_params"], *args)

    def loss(p):
        logp, _ = completion_logprobs(graphdef, p, *args)
        return grpo_loss(logp, r["old_logp_NxT"], ref, adv, r["mask_NxT"], cfg.loss)[0]

    want = jax.jit(jax.grad(loss))(params)
    assert_trees_close(grads(new), jax.tree.map(np.asarray, want), 1e-5)
    # the entropy metric off: the same update, no entropy key
    quiet, m_quiet = run_update(graphdef, TX, state, r, dataclasses.replace(cfg, entropy=False))
    assert "entropy" in m and "entropy" not in m_quiet
    jax.tree.map(np.testing.assert_array_equal, grads(quiet), grads(new))


def test_minibatch_order_is_a_fresh_permutation_per_pass_from_seed_and_step():
    cfg = train_step.UpdateConfig(mu=3, mini_batches=4, seed=5)
    orders = {s: np.asarray(train_step.minibatch_order(cfg, jnp.int32(s))) for s in range(4)}
    for o in orders.values():
        for it in o.reshape(3, 4):
            assert sorted(it) == [0, 1, 2, 3]
    assert len({tuple(o) for o in orders.values()}) == 4  # differs between steps
    assert any(len({tuple(it) for it in o.reshape(3, 4)}) > 1 for o in orders.values())
    again = np.asarray(train_step.minibatch_order(cfg, jnp.int32(2)))
    np.testing.assert_array_equal(again, orders[2])  # a resumed step replays its order
    other = np.asarray(train_step.minibatch_order(dataclasses.replace(cfg, seed=6), jnp.int32(2)))
    assert not np.array_equal(other, orders[2])
    one = train_step.UpdateConfig(mu=2, mini_batches=1)
    np.testing.assert_array_equal(train_step.minibatch_order(one, jnp.int32(9)), [0, 0])
