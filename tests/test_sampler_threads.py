"""The sampler as K parts run at once from K host threads (`rl/sampler_threads.py`) gives the
one-call sampler's rollouts and update: the same tokens (each row keeps its column of the whole
batch's uniforms), log-probs and loss within float32 rounding (matmuls over fewer rows), on the
split GRPO step of tests/test_compile_count.py; greedy parts; bad splits are one line.
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
from r1jax.rl.sampler_threads import ThreadedSampler
from r1jax.sampling import sample as sampling
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
        (dict(sampler_threads=0), "must be an int >= 1"),
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
