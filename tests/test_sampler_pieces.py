"""The decode loop in pieces (`SamplingConfig.cache_pieces`): each piece attends to the completion
slots written by its end only, and the sampler must still draw exactly what the uncached reference
draws, with rows that stop inside any piece and a loop that stops when every row is done.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sampling_reference import numpy_model
from test_sampling import PROMPTS, check_layout, compare, eos_after, reference

from r1jax.data.prompts import pad_prompts
from r1jax.sampling import sample as sampling
from r1jax.sampling.decode_cache import DecodeCache
from r1jax.sampling.sample import SamplingConfig, decode, piece_ends, sample

G, T = 4, 8
run_sample = jax.jit(sample, static_argnums=(0, 5, 6))
run_decode = jax.jit(decode, static_argnums=(0, 5, 6))


@pytest.fixture(scope="module")
def model(tiny_model_cfg, one_device_mesh):
    return numpy_model(tiny_model_cfg, one_device_mesh)


@pytest.fixture(scope="module")
def prompts():
    prompt_BxP, valid_BxP = pad_prompts(PROMPTS)
    return jnp.asarray(prompt_BxP), jnp.asarray(valid_BxP)


def test_piece_ends_split_the_steps_evenly():
    assert piece_ends(64, 1) == (64,)
    assert piece_ends(64, 4) == (17, 33, 49, 64)  # 16 steps each after the prefill's token
    assert piece_ends(8, 3) == (4, 6, 8)
    assert piece_ends(5, 10) == (2, 3, 4, 5)  # never more pieces than fed-back tokens
    assert piece_ends(2, 4) == (2,) and piece_ends(1, 3) == (1,)
    with pytest.raises(ValueError, match="cache_pieces=0"):
        SamplingConfig(max_new_tokens=4, cache_pieces=0)


def test_default_pieces_on_the_cpu():
    """From 128 tokens on one piece per 32, at most 8 (what benchmarks/sampling.py measured)."""
    pieces = lambda t: sampling.num_pieces(SamplingConfig(max_new_tokens=t))  # noqa: E731
    assert jax.default_backend() == "cpu"
    assert [pieces(t) for t in (1, 64, 127, 128, 192, 384, 1024)] == [1, 1, 1, 4, 6, 8, 8]
    assert sampling.num_pieces(SamplingConfig(max_new_tokens=64, cache_pieces=2)) == 2


@pytest.mark.parametrize("pieces", [3, 7])
def test_pieces_match_the_uncached_reference(model, prompts, pieces):
    """Rows stop inside the first piece (row 1 at step 3) and the rest run through every piece:
    the tokens equal the reference's with the same draws, the log-probs to float32 rounding."""
    key = jax.random.key(7)
    base = dict(max_new_tokens=T, temperature=1.0, return_entropy=True)
    no_eos = reference(model, *prompts, key, G, SamplingConfig(eos_id=-1, **base))
    cfg = SamplingConfig(eos_id=eos_after(no_eos, 1, 3), cache_pieces=pieces, **base)
    out = run_sample(model[0], model[1], *prompts, key, G, cfg)
    compare(out, reference(model, *prompts, key, G, cfg), with_entropy=True)
    check_layout(out, cfg)
    assert np.asarray(out.truncated_N).any() and not np.asarray(out.truncated_N).all()


def test_later_pieces_do_not_run_once_every_row_is_done(model, prompts):
    key = jax.random.key(0)
    one = (prompts[0][:1], prompts[1][:1])
    probe = SamplingConfig(max_new_tokens=T, greedy=True, eos_id=-1)
    eos = eos_after(reference(model, *one, key, 2, probe), 0, 1)
    cfg = SamplingConfig(max_new_tokens=T, greedy=True, eos_id=eos, cache_pieces=3)
    state = run_decode(model[0], model[1], *one, key, 2, cfg)
    first = int(np.argmax(np.asarray(state.tokens_NxT)[0] == eos))
    assert int(state.step) == first + 1 < piece_ends(T, 3)[0]
    assert state.cache.k[0].shape[-1] == T - 1  # grown to the whole length all the same


@pytest.mark.parametrize("scan", [False, True])
def test_pieces_sample_what_one_loop_samples(tiny_model_cfg, one_device_mesh, prompts, scan):
    """Stacked ([L, ...] cache) and per-layer models, top-k/top-p on, 13 tokens in 4 pieces."""
    cfg = dataclasses.replace(tiny_model_cfg, scan_layers=scan)
    graphdef, params, _ = numpy_model(cfg, one_device_mesh)
    key = jax.random.key(3)
    outs = [
        run_sample(graphdef, params, *prompts, key, 3, SamplingConfig(
            max_new_tokens=13, temperature=0.8, top_k=20, top_p=0.9, eos_id=-1, cache_pieces=p))
        for p in (1, 4)
    ]  # fmt: skip
    np.testing.assert_array_equal(np.asarray(outs[1].tokens_NxT), np.asarray(outs[0].tokens_NxT))
    np.testing.assert_allclose(
        np.asarray(outs[1].logp_NxT), np.asarray(outs[0].logp_NxT), rtol=0, atol=1e-5
    )


def test_resize_keeps_written_slots_and_adds_empty_ones():
    """What the sampler does between pieces; never shrinks (slots may hold written keys)."""
    k = (jnp.arange(2 * 1 * 3 * 4.0).reshape(2, 1, 3, 4),)  # [N, K, H, C]
    v = (jnp.arange(2 * 1 * 4 * 3.0).reshape(2, 1, 4, 3),)  # [N, K, C, H]
    c = DecodeCache(
        pk=k, pv=v, prompt_valid_BxP=jnp.ones((1, 2), bool), k=k, v=v,
        pos_N=jnp.zeros((2,), jnp.int32), index=jnp.array(3, jnp.int32),
    )  # fmt: skip
    grown = c.resize(6)
    assert grown.k[0].shape == (2, 1, 3, 6) and grown.v[0].shape == (2, 1, 6, 3)
    np.testing.assert_array_equal(grown.k[0][..., :4], k[0])
    np.testing.assert_array_equal(grown.v[0][:, :, :4], v[0])
    assert not grown.k[0][..., 4:].any() and not grown.v[0][:, :, 4:].any()
    assert grown.pk is c.pk and int(grown.index) == 3
    with pytest.raises(ValueError, match="would drop completion slots"):
        c.resize(3)
