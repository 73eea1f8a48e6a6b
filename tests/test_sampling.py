"""The sampler against a slow uncached reference, plus filters, log-probs, sharding, compilation.

The reference loop runs the model's full forward (no cache) over prompt + tokens so far at every step
and replays the jitted loop's random draws (`draw_uniforms(key, T, N)`), so sampled tokens must match
exactly. Tiny model (conftest), few steps, compiled functions shared at module scope.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from sampling_reference import abstract_state, draw_reference, numpy_model

from r1jax.data.prompts import pad_prompts
from r1jax.model import api, init_cache
from r1jax.sampling.decode import (
    DecodeCache,
    decode_step,
    fuse_weights,
    rope_table,
    unsupported,
)
from r1jax.sampling.filters import draw_uniforms
from r1jax.sampling.sample import SamplingConfig, decode, sample

PROMPTS = [[5, 9, 17, 2, 33], [40, 41], [7, 8, 9, 10, 11, 12, 13]]  # bucket 8
G, T = 4, 8
LOGP_ATOL = 2e-5  # f32: cached vs uncached forwards sum in different orders

run_sample = jax.jit(sample, static_argnums=(0, 5, 6))
full_forward = jax.jit(api.apply, static_argnums=(0,))


@pytest.fixture(scope="module")
def model(tiny_model_cfg, one_device_mesh):
    return numpy_model(tiny_model_cfg, one_device_mesh)


@pytest.fixture(scope="module")
def prompts():
    prompt_BxP, valid_BxP = pad_prompts(PROMPTS)
    return jnp.asarray(prompt_BxP), jnp.asarray(valid_BxP)


def reference(model, prompt_BxP, valid_BxP, key, g: int, cfg: SamplingConfig) -> dict:
    """Slow loop: full forward over the whole sequence so far at each step, no cache."""
    graphdef, params, _ = model
    prompt_NxP = np.repeat(np.asarray(prompt_BxP), g, 0)
    n, p = prompt_NxP.shape
    t = cfg.max_new_tokens
    buf = np.concatenate([prompt_NxP, np.full((n, t), cfg.pad_id, np.int32)], 1)
    vbuf = np.concatenate([np.repeat(np.asarray(valid_BxP), g, 0), np.zeros((n, t), bool)], 1)
    out = {k: np.zeros((n, t), dt) for k, dt in [("tok", np.int32), ("mask", bool)]}
    out |= {k: np.zeros((n, t), np.float64) for k in ("logp", "ent")}
    done = np.zeros(n, bool)
    for s in range(t):
        # Slots after the current one are marked invalid: they are never attended.
        logits, _ = full_forward(graphdef, params, jnp.asarray(buf), jnp.asarray(vbuf))
        z = np.asarray(logits[:, p + s - 1], np.float32) / np.float32(cfg.temperature)
        if cfg.greedy:
            tok = z.argmax(-1)
        else:
            u = np.asarray(draw_uniforms(key, t, n))[s]
            tok = np.array([draw_reference(z[i], u[i], cfg.top_k, cfg.top_p) for i in range(n)])
        z64 = z.astype(np.float64)
        logq = (
            z64 - (np.log(np.exp(z64 - z64.max(-1, keepdims=True)).sum(-1)) + z64.max(-1))[:, None]
        )
        live = ~done
        out["tok"][:, s] = np.where(live, tok, cfg.pad_id)
        out["mask"][:, s] = live
        out["logp"][:, s] = np.where(live, logq[np.arange(n), tok], 0.0)
        out["ent"][:, s] = np.where(live, -(np.exp(logq) * logq).sum(-1), 0.0)
        done |= live & (tok == cfg.eos_id)
        buf[:, p + s], vbuf[:, p + s] = out["tok"][:, s], True
    return out


def check_layout(out, cfg: SamplingConfig) -> None:
    """Mask is a prefix ending at the first EOS; pad after it; lengths and truncation agree."""
    tok, mask = np.asarray(out.tokens_NxT), np.asarray(out.mask_NxT)
    lengths, trunc = np.asarray(out.lengths_N), np.asarray(out.truncated_N)
    t = tok.shape[1]
    assert tok.dtype == np.int32 and np.asarray(out.logp_NxT).dtype == np.float32
    np.testing.assert_array_equal(mask, np.arange(t)[None] < lengths[:, None])
    assert (tok[~mask] == cfg.pad_id).all() and (np.asarray(out.logp_NxT)[~mask] == 0).all()
    for row, n, tr in zip(tok, lengths, trunc):
        assert (row[: n - 1] != cfg.eos_id).all()
        assert tr == (row[n - 1] != cfg.eos_id) and (not tr or n == t)


def eos_after(ref: dict, row: int, step: int) -> int:
    """A token id that makes `row` stop at `step` (used to exercise EOS in a random tiny model)."""
    return int(ref["tok"][row, step])


def compare(out, ref: dict, with_entropy: bool = False) -> None:
    np.testing.assert_array_equal(np.asarray(out.tokens_NxT), ref["tok"])
    np.testing.assert_array_equal(np.asarray(out.mask_NxT), ref["mask"])
    np.testing.assert_allclose(np.asarray(out.logp_NxT), ref["logp"], rtol=0, atol=LOGP_ATOL)
    if with_entropy:
        np.testing.assert_allclose(np.asarray(out.entropy_NxT), ref["ent"], rtol=0, atol=LOGP_ATOL)


def test_greedy_matches_uncached_reference(model, prompts):
    key = jax.random.key(0)
    no_eos = SamplingConfig(max_new_tokens=T, greedy=True, eos_id=-1, temperature=0.9)
    cfg = SamplingConfig(
        max_new_tokens=T,
        greedy=True,
        temperature=0.9,
        eos_id=eos_after(reference(model, *prompts, key, G, no_eos), 0, 2),
    )
    ref = reference(model, *prompts, key, G, cfg)
    out = run_sample(model[0], model[1], *prompts, key, G, cfg)
    compare(out, ref)
    check_layout(out, cfg)
    trunc = np.asarray(out.truncated_N)
    assert trunc.any() and not trunc.all()  # both EOS and max_new_tokens exits are exercised
    # Greedy: the G rows of a prompt are identical (they share the prompt's prefilled cache).
    tok_BxGxT = np.asarray(out.tokens_NxT).reshape(len(PROMPTS), G, T)
    assert (tok_BxGxT == tok_BxGxT[:, :1]).all()


@pytest.fixture(scope="module")
def sampled(model, prompts):
    """One plain sampled run (T=1, entropy on) with an EOS that stops row 1 at step 3."""
    key = jax.random.key(7)
    base = dict(max_new_tokens=T, temperature=1.0, return_entropy=True)
    eos = eos_after(reference(model, *prompts, key, G, SamplingConfig(eos_id=-1, **base)), 1, 3)
    cfg = SamplingConfig(eos_id=eos, **base)
    return key, cfg, run_sample(model[0], model[1], *prompts, key, G, cfg)


def test_sampled_matches_reference_with_same_draws(model, prompts, sampled):
    key, cfg, out = sampled
    compare(out, reference(model, *prompts, key, G, cfg), with_entropy=True)
    check_layout(out, cfg)
    assert not np.asarray(out.truncated_N).all()


def test_generic_fallback_decodes_the_same(model, prompts, sampled):
    """The model's own cached call (used for models the fast step does not know) agrees."""
    key, cfg, fast = sampled
    generic = jax.jit(decode, static_argnums=(0, 5, 6, 7))(
        model[0], model[1], *prompts, key, G, cfg, False
    )
    np.testing.assert_array_equal(np.asarray(generic.tokens_NxT), np.asarray(fast.tokens_NxT))
    np.testing.assert_allclose(np.asarray(generic.logp_NxT), np.asarray(fast.logp_NxT), atol=1e-5)
    assert unsupported(nnx.merge(*model[:2]), model[1]) is None
    extra = dict(
        model[1],
        layers={0: dict(model[1]["layers"][0], attn=dict(model[1]["layers"][0]["attn"], q_norm=1))},
    )
    assert "attn.q_norm" in unsupported(nnx.merge(*model[:2]), extra)


def test_truncated_sampling_matches_reference_with_same_draws(model, prompts):
    key = jax.random.key(3)
    cfg = SamplingConfig(max_new_tokens=T, temperature=0.7, top_k=8, top_p=0.8, eos_id=-1)
    ref = reference(model, *prompts, key, G, cfg)
    out = run_sample(model[0], model[1], *prompts, key, G, cfg)
    compare(out, ref)
    check_layout(out, cfg)


def test_logp_equals_full_rerun_on_completions(model, prompts, sampled):
    """What the trainer computes: one uncached forward over prompt + completion."""
    graphdef, params, _ = model
    _, cfg, out = sampled
    prompt_BxP, valid_BxP = prompts
    p = prompt_BxP.shape[1]
    seq = jnp.concatenate([jnp.repeat(prompt_BxP, G, 0), out.tokens_NxT], 1)
    valid = jnp.concatenate([jnp.repeat(valid_BxP, G, 0), out.mask_NxT], 1)
    logits, _ = full_forward(graphdef, params, seq, valid)
    logp = api.token_logprobs(logits[:, p - 1 : p + T - 1], out.tokens_NxT, cfg.temperature)
    logp = np.where(np.asarray(out.mask_NxT), np.asarray(logp), 0.0)
    np.testing.assert_allclose(np.asarray(out.logp_NxT), logp, rtol=0, atol=LOGP_ATOL)


def test_samples_of_a_prompt_share_its_prefix(sampled):
    """Step 0 sees only the prompt: its distribution (entropy) is bit-identical within a group."""
    _, _, out = sampled
    ent0_BxG = np.asarray(out.entropy_NxT)[:, 0].reshape(len(PROMPTS), G)
    assert (ent0_BxG == ent0_BxG[:, :1]).all()
    assert len(set(ent0_BxG[:, 0].tolist())) == len(PROMPTS)  # and differs between prompts
    tok_BxGxT = np.asarray(out.tokens_NxT).reshape(len(PROMPTS), G, T)
    assert (tok_BxGxT != tok_BxGxT[:, :1]).any(axis=(1, 2)).all()  # draws differ per row


def test_loop_stops_when_every_row_is_done(model, prompts):
    key = jax.random.key(0)
    one = (prompts[0][:1], prompts[1][:1])
    probe = SamplingConfig(max_new_tokens=T, greedy=True, eos_id=-1)
    eos = eos_after(reference(model, *one, key, 2, probe), 0, 1)
    cfg = SamplingConfig(max_new_tokens=T, greedy=True, eos_id=eos)
    state = jax.jit(decode, static_argnums=(0, 5, 6))(model[0], model[1], *one, key, 2, cfg)
    first = int(np.argmax(np.asarray(state.tokens_NxT)[0] == eos))
    assert int(state.step) == first + 1 < T  # no step ran after the last row finished


# bfloat16: the two paths round intermediates in different places; 0.04 is ~2.5 bf16 ulps (2^-6)
# of these logits (|logit| < 4), the observed gap is ~1 ulp.
@pytest.mark.parametrize("dtype,atol", [("float32", 1e-5), ("bfloat16", 0.04)])
def test_decode_step_matches_model_cached_call(model, prompts, tiny_model_cfg, dtype, atol):
    """The sampler's decode step gives the model's own cached-call logits."""
    _, params, _ = model
    graphdef, _ = abstract_state(dataclasses.replace(tiny_model_cfg, dtype=dtype))
    prompt_BxP, valid_BxP = prompts

    def both(params, tokens_Bx3):
        m = nnx.merge(graphdef, params)
        b, p = prompt_BxP.shape
        _, prefill = m(prompt_BxP, valid_BxP, init_cache(m.cfg, b, p))
        _, cache = m(prompt_BxP, valid_BxP, init_cache(m.cfg, b, 11))
        fast = DecodeCache.from_prefill(prefill, 1, 3)
        out = []
        for i in range(3):
            want, cache = m(tokens_Bx3[:, i : i + 1], None, cache)
            got, fast = decode_step(m, fast, tokens_Bx3[:, i], rope_table(m.cfg, 11))
            out.append((want[:, 0], got))
        return out

    tokens = jnp.asarray([[3, 4, 5], [60, 1, 2], [9, 9, 9]], jnp.int32)
    for want, got in jax.jit(both)(params, tokens):
        assert np.abs(np.asarray(want)).max() < 4
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0, atol=atol)


@pytest.mark.parametrize("scan", [False, True])
def test_fused_projections_give_the_unfused_step(tiny_model_cfg, one_device_mesh, prompts, scan):
    """`fuse_weights` (q/k/v as one matmul, gate/up as one; q/k/v biases, unrolled and scanned
    layers) gives the unfused decode step's logits and caches, which the test above ties to the
    model's own cached call."""
    cfg = dataclasses.replace(tiny_model_cfg, qkv_bias=True, scan_layers=scan)
    graphdef, params, _ = numpy_model(cfg, one_device_mesh)
    prompt_BxP, valid_BxP = prompts

    def both(params, tokens_Bx3):
        m = nnx.merge(graphdef, params)
        _, prefill = m(prompt_BxP, valid_BxP, init_cache(m.cfg, *prompt_BxP.shape))
        plain = fused = DecodeCache.from_prefill(prefill, 2, 3)
        tokens_Nx3 = jnp.repeat(tokens_Bx3, 2, axis=0)
        out, rope, fw = [], rope_table(m.cfg, 11), fuse_weights(m)
        for i in range(3):
            want, plain = decode_step(m, plain, tokens_Nx3[:, i], rope)
            got, fused = decode_step(m, fused, tokens_Nx3[:, i], rope, fw)
            out.append((want, got))
        return out, (plain.k, plain.v), (fused.k, fused.v)

    tokens = jnp.asarray([[3, 4, 5], [60, 1, 2], [9, 9, 9]], jnp.int32)
    steps, plain_kv, fused_kv = jax.jit(both)(params, tokens)
    for want, got in steps:
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0, atol=1e-5)
    for a, b in zip(jax.tree.leaves(fused_kv), jax.tree.leaves(plain_kv)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-5)


def test_stop_ids_end_rows_like_eos(model, prompts):
    """A chat model's extra end ids (e.g. <|im_end|> besides <|endoftext|>) stop a row as EOS does."""
    key = jax.random.key(3)
    free = SamplingConfig(max_new_tokens=T, greedy=True, eos_id=-1, temperature=0.9)
    base = np.asarray(run_sample(model[0], model[1], *prompts, key, G, free).tokens_NxT)
    stop = int(base[0, 2])  # the third token of row 0 becomes a stop id
    cfg = dataclasses.replace(free, stop_ids=(stop,))
    out = run_sample(model[0], model[1], *prompts, key, G, cfg)
    toks, lengths = np.asarray(out.tokens_NxT), np.asarray(out.lengths_N)
    for r in range(toks.shape[0]):
        hits = np.flatnonzero(base[r] == stop)
        want = hits[0] + 1 if hits.size else T
        assert lengths[r] == want
        assert (toks[r, :want] == base[r, :want]).all() and (toks[r, want:] == cfg.pad_id).all()
        assert bool(np.asarray(out.truncated_N)[r]) == (not hits.size)
