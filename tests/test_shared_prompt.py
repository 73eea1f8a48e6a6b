"""The sampler's shared prompt cache: the same samples as the repeated-cache sampler, less memory.

Today's sampler (before issue 17) copied each prompt's keys/values to its G rows; the model's own
cached call (`decode(..., fast=False)`, the generic fallback) still decodes that way. The shared
step must give the same tokens for the same key, token for token, with log-probs equal to float32
rounding (the softmax over the prompt and completion parts sums in another order), on long
left-padded prompts where sharing matters; with a scanned model too. Its loop carries an
O(P + G * T) cache, not an O(G * (P + T)) one. The update's shared-prefix forward (the same idea
in training) equals the full sequences on a scanned, rematerialised model.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sampling_reference import abstract_state, numpy_model

from r1jax.data.prompts import pad_prompts
from r1jax.model import transformer
from r1jax.model.layers import stack_layers
from r1jax.rl.logprobs import completion_logprobs
from r1jax.sampling.sample import SamplingConfig, decode

PROMPTS = [list(range(4, 40)), [5, 6, 7], list(range(10, 30))]  # bucket 48: up to 45 pad slots
G, T = 4, 10
run_decode = jax.jit(decode, static_argnums=(0, 5, 6, 7))


@pytest.fixture(scope="module")
def model(tiny_model_cfg, one_device_mesh):
    return numpy_model(tiny_model_cfg, one_device_mesh)


@pytest.fixture(scope="module")
def prompts():
    prompt_BxP, valid_BxP = pad_prompts(PROMPTS, multiple=16)
    assert prompt_BxP.shape == (3, 48)
    return jnp.asarray(prompt_BxP), jnp.asarray(valid_BxP)


@pytest.mark.parametrize(
    "cfg",
    [
        SamplingConfig(max_new_tokens=T, temperature=1.0, eos_id=-1, return_entropy=True),
        SamplingConfig(max_new_tokens=T, temperature=0.8, top_p=0.9, top_k=20, eos_id=7),
    ],
    ids=["plain", "truncated_eos"],
)
def test_shared_prompt_equals_repeated_cache_token_for_token(model, prompts, cfg):
    graphdef, params, _ = model
    key = jax.random.key(11)
    shared = run_decode(graphdef, params, *prompts, key, G, cfg, True)
    repeated = run_decode(graphdef, params, *prompts, key, G, cfg, False)
    np.testing.assert_array_equal(np.asarray(shared.tokens_NxT), np.asarray(repeated.tokens_NxT))
    np.testing.assert_array_equal(np.asarray(shared.length_N), np.asarray(repeated.length_N))
    np.testing.assert_allclose(
        np.asarray(shared.logp_NxT), np.asarray(repeated.logp_NxT), rtol=0, atol=1e-5
    )
    if cfg.return_entropy:
        np.testing.assert_allclose(
            np.asarray(shared.entropy_NxT), np.asarray(repeated.entropy_NxT), rtol=0, atol=1e-5
        )
    assert len(set(np.asarray(shared.tokens_NxT)[:, -1].tolist())) > 1  # real sampling


def test_scanned_model_samples_the_same(model, prompts, tiny_model_cfg):
    graphdef, params, _ = model

    graphdef_s, _ = abstract_state(dataclasses.replace(tiny_model_cfg, scan_layers=True))
    cfg = SamplingConfig(max_new_tokens=T, temperature=1.0, eos_id=-1)
    key = jax.random.key(2)
    want = run_decode(graphdef, params, *prompts, key, G, cfg, True)
    for fast in (True, False):  # the scanned fast step, and the scanned model's own cached call
        got = run_decode(graphdef_s, stack_layers(params), *prompts, key, G, cfg, fast)
        np.testing.assert_array_equal(np.asarray(got.tokens_NxT), np.asarray(want.tokens_NxT))
        np.testing.assert_allclose(
            np.asarray(got.logp_NxT), np.asarray(want.logp_NxT), rtol=0, atol=1e-5
        )


def test_cache_memory_is_one_prompt_copy_plus_completions(model, prompts, tiny_model_cfg):
    """G = 16 samples of 48-slot prompts, 8 new tokens: the loop's cache (its carry, read from the
    traced program's shapes) is one prompt copy per prompt + G completions; the repeated cache of
    the generic path is G copies of prompt + completion, 3.6x larger here."""
    graphdef, params, _ = model
    g, t = 16, 8
    cfg = SamplingConfig(max_new_tokens=t, greedy=True, eos_id=-1)

    def cache_bytes(fast):
        state = jax.eval_shape(
            lambda p, x, v: decode(graphdef, p, x, v, jax.random.key(0), g, cfg, fast),
            params,
            *prompts,
        )
        kv = [state.cache.k, state.cache.v] + ([state.cache.pk, state.cache.pv] if fast else [])
        return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(kv))

    m = tiny_model_cfg
    b, p = prompts[0].shape
    per_slot = 2 * m.n_layers * m.n_kv_heads * m.head_dim * 4  # keys + values of all layers, f32
    assert cache_bytes(True) == per_slot * (b * p + b * g * (t - 1))
    assert cache_bytes(False) == per_slot * b * g * (p + t - 1)
    assert cache_bytes(False) > 3.5 * cache_bytes(True)


def test_shared_prefix_training_forward_with_remat_and_scan(model, tiny_model_cfg):
    """The update's shared-prefix forward (one prompt copy per group) on a scanned, rematerialised
    model: the full sequences' log-probs and gradients of the unrolled model."""
    graphdef, params, _ = model
    cfg_s = dataclasses.replace(
        tiny_model_cfg, scan_layers=True, remat=True, remat_policy="dots_saveable"
    )
    graphdef_s, _ = abstract_state(cfg_s)
    rng = np.random.default_rng(4)
    prompt_BxP, valid_BxP = (jnp.asarray(x) for x in pad_prompts([[5, 6, 7, 8], [9, 10]]))
    completion = jnp.asarray(rng.integers(4, tiny_model_cfg.vocab_size, (2 * G, 6)), jnp.int32)
    w = jnp.asarray(rng.standard_normal(completion.shape), jnp.float32)

    def run(gd, p, share):
        def f(p):
            lp, _ = completion_logprobs(gd, p, prompt_BxP, valid_BxP, completion, 0.9, False, share)
            return (w * lp).sum(), lp

        return jax.jit(jax.value_and_grad(f, has_aux=True))(p)

    (_, lp), g = run(graphdef, params, False)
    (_, lp_s), g_s = run(graphdef_s, stack_layers(params), True)
    np.testing.assert_allclose(np.asarray(lp_s), np.asarray(lp), rtol=1e-5, atol=2e-5)
    for a, b in zip(jax.tree.leaves(g_s), jax.tree.leaves(stack_layers(g)), strict=True):
        scale = float(np.abs(np.asarray(b)).max())
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-5 * scale)


def test_shared_prefix_forward_blocks_long_completions(model, tiny_model_cfg, monkeypatch):
    """Completions of >= 2 attention blocks run block by block (queries [s, e) against the prompt
    and their own keys [0, e)); with blocks of 4 and 13 tokens (3 uneven blocks) the log-probs and
    gradients equal the full sequences under whole (unblocked) attention."""
    graphdef, params, _ = model
    rng = np.random.default_rng(5)
    prompt_BxP, valid_BxP = (jnp.asarray(x) for x in pad_prompts([[5, 6, 7, 8, 9], [9, 10]]))
    completion = jnp.asarray(rng.integers(4, tiny_model_cfg.vocab_size, (2 * G, 13)), jnp.int32)
    w = jnp.asarray(rng.standard_normal(completion.shape), jnp.float32)

    def run(share):  # a fresh jit: the blocks are chosen at trace time
        def f(p):
            lp, _ = completion_logprobs(
                graphdef, p, prompt_BxP, valid_BxP, completion, 0.9, False, share
            )
            return (w * lp).sum(), lp

        return jax.jit(jax.value_and_grad(f, has_aux=True))(params)

    (_, lp_whole), g_whole = run(False)  # block 64 > 2 x 13 + 5: the unblocked reference
    monkeypatch.setattr(transformer, "_CAUSAL_BLOCK", 4)
    assert len(transformer.causal_blocks(13)) == 3
    (_, lp_blocked), g_blocked = run(True)
    np.testing.assert_allclose(np.asarray(lp_blocked), np.asarray(lp_whole), rtol=1e-5, atol=2e-5)
    for a, b in zip(jax.tree.leaves(g_blocked), jax.tree.leaves(g_whole), strict=True):
        scale = float(np.abs(np.asarray(b)).max())
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-5 * scale)
