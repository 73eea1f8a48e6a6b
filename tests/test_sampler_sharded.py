"""The jitted `Sampler` over a mesh: sharded equals unsharded, no recompilation within a prompt
bucket, and the KV cache updated in place (donated), on the tiny model of the sampling tests.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from sampling_reference import numpy_model, param_shardings

from r1jax.data.prompts import pad_prompts
from r1jax.model import api
from r1jax.parallel import sharding
from r1jax.sampling.sample import SamplingConfig, sample
from r1jax.sampling.sampler import Sampler

PROMPTS = [[5, 9, 17, 2, 33], [40, 41], [7, 8, 9, 10, 11, 12, 13]]  # bucket 8
G, T = 4, 8
PROMPTS8 = [[i + 1] * (1 + i % 5) + [30 + i] for i in range(8)]
run_sample = jax.jit(sample, static_argnums=(0, 5, 6))


@pytest.fixture(scope="module")
def model(tiny_model_cfg, one_device_mesh):
    return numpy_model(tiny_model_cfg, one_device_mesh)


@pytest.fixture(scope="module")
def prompts():
    prompt_BxP, valid_BxP = pad_prompts(PROMPTS)
    return jnp.asarray(prompt_BxP), jnp.asarray(valid_BxP)


@pytest.fixture(scope="module")
def unsharded8(model):
    prompt_BxP, valid_BxP = (jnp.asarray(x) for x in pad_prompts(PROMPTS8))
    # in 2 pieces: the cache grown between them keeps its sharding (tests/test_sampler_pieces.py)
    cfg = SamplingConfig(max_new_tokens=6, greedy=True, eos_id=-1, cache_pieces=2)
    return cfg, run_sample(model[0], model[1], prompt_BxP, valid_BxP, jax.random.key(0), 2, cfg)


@pytest.mark.parametrize("shape", [(8, 1, 1), (2, 2, 2), (1, 2, 4)])
def test_sharded_matches_unsharded(model, unsharded8, tiny_model_cfg, shape):
    graphdef, params, _ = model
    cfg, want = unsharded8
    mesh = sharding.make_mesh(shape)
    shardings = param_shardings(tiny_model_cfg, mesh)
    sampler = Sampler(graphdef, shardings, mesh)
    prompt_BxP, valid_BxP = pad_prompts(PROMPTS8)
    got = sampler(
        jax.device_put(params, shardings), prompt_BxP, valid_BxP, jax.random.key(0), 2, cfg
    )
    np.testing.assert_array_equal(np.asarray(got.tokens_NxT), np.asarray(want.tokens_NxT))
    np.testing.assert_allclose(np.asarray(got.logp_NxT), np.asarray(want.logp_NxT), atol=1e-5)
    rows = sharding.data_parallel_size(mesh, sharding.DEFAULT_RULES)
    assert len(got.tokens_NxT.sharding.device_set) == 8
    assert got.tokens_NxT.addressable_shards[0].data.shape == (16 // rows, 6)
    if rows > 1:
        with pytest.raises(ValueError, match="cannot be split"):
            sampler(params, prompt_BxP[:1], valid_BxP[:1], jax.random.key(0), 2, cfg)


def test_no_recompile_for_new_prompts_in_the_same_bucket(model, one_device_mesh):
    graphdef, params, shardings = model
    sampler = Sampler(graphdef, shardings, one_device_mesh)
    cfg = SamplingConfig(max_new_tokens=4, greedy=True)
    key = jax.random.key(1)
    for batch in ([[1, 2, 3], [4]], [[5, 6, 7, 8, 9, 10, 11], [12, 13]], [[7], [8, 9]]):
        sampler(params, *pad_prompts(batch), key, 2, cfg)
    assert sampler.num_compilations == 1
    sampler(params, *pad_prompts([[1] * 9, [2]]), key, 2, cfg)  # bucket 16: one new program
    sampler(params, *pad_prompts([[3] * 12, [4, 5]]), key, 2, cfg)
    assert sampler.num_compilations == 2


def test_cache_is_updated_in_place(model, prompts):
    """The while loop carries the KV cache without a second copy (the reason to donate it)."""
    graphdef, params, _ = model
    cfg = SamplingConfig(max_new_tokens=120, greedy=True, eos_id=-1)
    compiled = run_sample.lower(graphdef, params, *prompts, jax.random.key(0), 16, cfg).compile()
    mem = compiled.memory_analysis()
    if mem is None:
        pytest.skip("no memory analysis on this backend")
    m = nnx.merge(graphdef, params).cfg
    n, s = len(PROMPTS) * 16, prompts[0].shape[1] + cfg.max_new_tokens - 1
    cache_bytes = 2 * m.n_layers * n * s * m.n_kv_heads * m.head_dim * 4
    assert mem.temp_size_in_bytes < 2 * cache_bytes, (mem.temp_size_in_bytes, cache_bytes)


def test_unrolled_layout_under_a_mesh_matches_the_unsharded_scan(tiny_model_cfg):
    """A stacked model sampled through its unrolled layout (`unroll_layers`, the GPU default) on
    a (2, 2, 2) mesh, weights sharded over fsdp and tensor, gives the unsharded scan's rollouts."""
    cfg = dataclasses.replace(tiny_model_cfg, scan_layers=True)
    graphdef, params, _ = numpy_model(cfg, sharding.make_mesh((1, 1, 1), jax.devices()[:1]))
    prompt_BxP, valid_BxP = pad_prompts(PROMPTS8)
    want_cfg = SamplingConfig(max_new_tokens=6, temperature=0.8, eos_id=-1, unroll_layers=False)
    key = jax.random.key(4)
    want = run_sample(graphdef, params, jnp.asarray(prompt_BxP), jnp.asarray(valid_BxP), key, 2,
                      want_cfg)  # fmt: skip
    mesh = sharding.make_mesh((2, 2, 2))
    shardings = param_shardings(cfg, mesh)
    sampler = Sampler(graphdef, shardings, mesh)
    got_cfg = dataclasses.replace(want_cfg, unroll_layers=True)
    got = sampler(jax.device_put(params, shardings), prompt_BxP, valid_BxP, key, 2, got_cfg)
    np.testing.assert_array_equal(np.asarray(got.tokens_NxT), np.asarray(want.tokens_NxT))
    np.testing.assert_allclose(np.asarray(got.logp_NxT), np.asarray(want.logp_NxT), atol=1e-5)


def test_unrolled_layer_scan_samples_what_the_loop_samples(
    tiny_model_cfg, one_device_mesh, prompts
):
    """`unroll_layers` (the default on a GPU, where the unrolled layout decoded 1.73x faster on an
    H200) samples a stacked model through its unrolled layout: the same tokens, log-probs and
    lengths as the scan."""
    cfg = dataclasses.replace(tiny_model_cfg, scan_layers=True)
    graphdef, params, _ = numpy_model(cfg, one_device_mesh)
    gd_u, params_u = api.unrolled(graphdef, params)  # what the sampler runs when unrolling
    assert not api.model_config(gd_u, params_u).scan_layers and 1 in params_u["layers"]
    prompt_BxP, valid_BxP = prompts
    key = jax.random.key(5)
    outs = []
    for unroll in (False, True):
        scfg = SamplingConfig(max_new_tokens=T, temperature=0.9, eos_id=-1, unroll_layers=unroll)
        run = jax.jit(lambda p, x, v, k, c=scfg: sample(graphdef, p, x, v, k, 3, c))
        outs.append(run(params, prompt_BxP, valid_BxP, key))
    loop, unrolled = outs
    np.testing.assert_array_equal(np.asarray(unrolled.tokens_NxT), np.asarray(loop.tokens_NxT))
    np.testing.assert_array_equal(np.asarray(unrolled.lengths_N), np.asarray(loop.lengths_N))
    np.testing.assert_allclose(
        np.asarray(unrolled.logp_NxT), np.asarray(loop.logp_NxT), rtol=0, atol=1e-5
    )
