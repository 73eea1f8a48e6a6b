"""The sampler as K parts run at once from K host threads (`sampling/threads.py`) gives the
one-call sampler's rollouts and update: the same tokens (each row keeps its column of the whole
batch's uniforms), log-probs and loss within float32 rounding (matmuls over fewer rows), on the
split GRPO step of tests/test_compile_count.py; greedy parts; bad splits are one line; what 0
(auto) resolves to; `Sampler` (evaluation, rejection sampling) in threads equals its one call.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_compile_count import CFG, G, P
from test_sampler_mesh import B, run_steps

from r1jax import config_base
from r1jax.config_check import ConfigError
from r1jax.model import api
from r1jax.parallel import sharding
from r1jax.sampling import sample as sampling
from r1jax.sampling import threads as threads_lib
from r1jax.sampling.sampler import Sampler
from r1jax.sampling.threads import ThreadedSampler
from r1jax.stages import grpo_config


@pytest.fixture(scope="module")
def one_call():
    return run_steps(None)


@pytest.mark.parametrize("threads", [2, 4])
def test_threads_give_the_one_call_rollouts_and_update(one_call, threads):
    for (tok_a, logp_a, loss_a), (tok_b, logp_b, loss_b) in zip(
        one_call, run_steps(None, threads=threads)
    ):
        np.testing.assert_array_equal(tok_b, tok_a)
        np.testing.assert_allclose(logp_b, logp_a, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(loss_b, loss_a, rtol=1e-5, atol=1e-7)


def _greedy_sampler(threads: int):
    mesh = sharding.make_mesh((1, 1, 1), jax.devices()[:1])
    graphdef, params, _ = api.create(CFG, 0, mesh, sharding.DEFAULT_RULES)
    scfg = sampling.SamplingConfig(max_new_tokens=6, greedy=True, eos_id=5)
    whole = jax.jit(lambda p, x, v, k: sampling.sample(graphdef, p, x, v, k, G, scfg))
    part = jax.jit(lambda p, x, v, k, u: sampling.sample(graphdef, p, x, v, k, G, scfg, u))
    return params, whole, ThreadedSampler(part, whole, threads, G, 6, True, mesh)


def test_greedy_parts_and_bad_splits():
    params, whole, threaded = _greedy_sampler(2)
    ids = jnp.asarray(np.random.default_rng(1).integers(6, 64, (B, P)), jnp.int32)
    valid = jnp.ones((B, P), bool)
    want = whole(params, ids, valid, jax.random.key(0))
    for _ in range(2):  # the first call compiles the part once; both run the parts on threads
        got = threaded(params, ids, valid, jax.random.key(0))
        np.testing.assert_array_equal(np.asarray(got.tokens_NxT), np.asarray(want.tokens_NxT))
        np.testing.assert_array_equal(np.asarray(got.lengths_N), np.asarray(want.lengths_N))
    with pytest.raises(ValueError, match="3 prompts do not split into 2 sampler threads"):
        threaded(params, ids[:3], valid[:3], jax.random.key(0))
    with pytest.raises(ValueError, match=">= 2 threads"):
        ThreadedSampler(None, whole, 1, G, 6, True, None)


@pytest.mark.parametrize(
    "overrides,match",
    [
        (dict(sampler_threads=-1), r"must be an int >= 1, or 0 \(auto\)"),
        (dict(sampler_threads=2, fused="on"), "set rl.fused='auto' or 'off'"),
        (dict(sampler_threads=2, sampler_mesh=(2, 1, 1)), "leave rl.sampler_mesh"),
        (dict(sampler_threads=3), "prompts_per_step=8 does not split into rl.sampler_threads=3"),
        (dict(sampler_threads=2, devices=2), "one-device training mesh; this one has 2 devices"),
    ],
)
def test_bad_sampler_threads_are_one_line(overrides, match):
    overrides = dict(overrides)
    devices = overrides.pop("devices", 1)
    rl = config_base.rl(**{"prompts_per_step": 8, "fused": "auto", **overrides})
    mesh = sharding.make_mesh((devices, 1, 1), jax.devices()[:devices])
    with pytest.raises(ConfigError, match=match):
        grpo_config._check_sampler_threads(rl, mesh)
    rl.sampler_threads, rl.fused, rl.sampler_mesh = 2, "auto", ()
    one = sharding.make_mesh((1, 1, 1), jax.devices()[:1])
    grpo_config._check_sampler_threads(rl, one)  # 8 = 2 x 4 on one device: fine


def test_auto_resolves_to_threads_only_on_a_cpu_hosts_one_device():
    one = sharding.make_mesh((1, 1, 1), jax.devices()[:1])
    two = sharding.make_mesh((2, 1, 1), jax.devices()[:2])
    assert threads_lib.resolve(0, 8, one) == threads_lib.AUTO_THREADS == 2  # 2 cores here
    assert threads_lib.resolve(0, 7, one) == 1  # the prompts do not split
    assert threads_lib.resolve(0, 8, two) == 1  # a multi-device mesh: one call
    assert threads_lib.resolve(3, 7, two) == 3  # asked for: as asked (grpo_config checks it)


@pytest.mark.parametrize("greedy", [False, True])
def test_sampler_in_auto_threads_equals_its_one_call(greedy):
    """Sampler's default (0, auto) splits a call over 2 threads on this CPU; an odd batch falls
    back to one call; both compile one program per signature."""
    mesh = sharding.make_mesh((1, 1, 1), jax.devices()[:1])
    graphdef, params, _ = api.create(CFG, 0, mesh, sharding.DEFAULT_RULES)
    shardings = jax.tree.map(lambda x: x.sharding, params)
    scfg = sampling.SamplingConfig(max_new_tokens=6, greedy=greedy, top_p=0.9, eos_id=5)
    auto, one = Sampler(graphdef, shardings, mesh), Sampler(graphdef, shardings, mesh, threads=1)
    assert (auto.threads, one.threads) == (2, 1)
    ids = np.random.default_rng(2).integers(6, 64, (B, P)).astype(np.int32)
    valid = np.ones((B, P), bool)
    for b in (B, B - 1):  # B splits in 2; B - 1 runs as one call
        for key in (jax.random.key(0), jax.random.key(1)):
            want = one(params, ids[:b], valid[:b], key, G, scfg)
            got = auto(params, ids[:b], valid[:b], key, G, scfg)
            np.testing.assert_array_equal(np.asarray(got.tokens_NxT), np.asarray(want.tokens_NxT))
            np.testing.assert_array_equal(np.asarray(got.mask_NxT), np.asarray(want.mask_NxT))
            np.testing.assert_allclose(
                np.asarray(got.logp_NxT), np.asarray(want.logp_NxT), rtol=1e-5, atol=1e-6
            )
    assert auto.num_compilations == 2 and one.num_compilations == 2  # B parts + the odd B - 1
