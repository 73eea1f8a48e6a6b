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
from scipy import stats

from r1jax import sharding
from r1jax.model import Transformer, api, init_cache
from r1jax.sampler import Sampler, bucket_length, pad_prompts
from r1jax.sampling import SamplingConfig, decode, sample
from r1jax.sampling_decode import DecodeCache, decode_step, rope_table, unsupported
from r1jax.sampling_filters import choose_tokens, draw_uniforms

PROMPTS = [[5, 9, 17, 2, 33], [40, 41], [7, 8, 9, 10, 11, 12, 13]]  # bucket 8
G, T = 4, 8
LOGP_ATOL = 2e-5  # f32: cached vs uncached forwards sum in different orders

run_sample = jax.jit(sample, static_argnums=(0, 5, 6))
full_forward = jax.jit(api.apply, static_argnums=(0,))


def abstract_state(cfg):
    with nnx.use_eager_sharding(False):
        return nnx.split(nnx.eval_shape(lambda: Transformer(cfg, nnx.Rngs(0))))


def param_shardings(cfg, mesh):
    """The shardings `api.create` would give, without running the initialiser."""
    _, state = abstract_state(cfg)
    names = sharding.param_names(state)
    return sharding.tree_shardings(nnx.to_pure_dict(state), names, mesh, sharding.DEFAULT_RULES)


@pytest.fixture(scope="module")
def model(tiny_model_cfg, one_device_mesh):
    """(graphdef, params, shardings) with numpy-drawn weights: XLA:CPU takes ~12 s to compile the
    threefry initialiser of `api.create`, and any generic weights serve these tests."""
    graphdef, state = abstract_state(tiny_model_cfg)
    rng = np.random.default_rng(0)

    def draw(path, x):
        if path[-1].key == "scale":  # RMSNorm gains around 1
            return 1.0 + 0.1 * rng.standard_normal(x.shape, np.float32)
        return rng.standard_normal(x.shape, np.float32) / np.sqrt(x.shape[0])

    shardings = param_shardings(tiny_model_cfg, one_device_mesh)
    params = jax.tree_util.tree_map_with_path(draw, nnx.to_pure_dict(state))
    return graphdef, jax.device_put(params, shardings), shardings


@pytest.fixture(scope="module")
def prompts():
    prompt_BxP, valid_BxP = pad_prompts(PROMPTS)
    return jnp.asarray(prompt_BxP), jnp.asarray(valid_BxP)


def draw_reference(z_V: np.ndarray, u: float, top_k: int, top_p: float) -> int:
    """Obviously-correct inverse-CDF draw for one row, in float64.

    No truncation: tokens in id order. Otherwise: sort by decreasing logit (ties: lower id), keep
    the top k, then keep candidates while the (renormalised) mass before them is < top_p.
    """
    if top_k == 0 and top_p >= 1.0:
        order = np.arange(z_V.shape[0])
    else:
        order = np.argsort(-z_V, kind="stable")[: top_k or None]
        p = np.exp(z_V[order].astype(np.float64) - z_V[order].max())
        p /= p.sum()
        order = order[(np.cumsum(p) - p) < top_p]
    p = np.exp(z_V[order].astype(np.float64) - z_V[order].max())
    cum = np.cumsum(p)
    return int(order[np.searchsorted(cum, u * cum[-1], side="right")])


def kept_probs(z_V: np.ndarray, top_k: int, top_p: float) -> np.ndarray:
    """The truncated, renormalised distribution (float64) that draws must follow."""
    order = np.argsort(-z_V, kind="stable")[: top_k or None]
    p = np.exp(z_V[order].astype(np.float64) - z_V[order].max())
    p /= p.sum()
    order = order[(np.cumsum(p) - p) < top_p]
    out = np.zeros(z_V.shape, np.float64)
    out[order] = np.exp(z_V[order].astype(np.float64) - z_V[order].max())
    return out / out.sum()


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


@pytest.mark.parametrize("top_k,top_p", [(0, 1.0), (3, 1.0), (0, 0.8), (4, 0.6)])
def test_truncation_frequencies(top_k, top_p):
    """Many draws from one logits row follow the truncated, renormalised softmax (chi-square)."""
    logits_V = jnp.asarray([2.0, 1.5, 1.2, 0.9, 0.5, 0.1, -0.3, -0.8, -1.5, -2.5])
    temperature, m, v = 0.8, 40_000, logits_V.shape[0]
    u = draw_uniforms(jax.random.key(11), 1, m)[0]
    draw = jax.jit(choose_tokens, static_argnums=(2, 3, 4))
    tok = np.asarray(draw(jnp.broadcast_to(logits_V, (m, v)), u, temperature, top_k, top_p))
    p = kept_probs(np.asarray(logits_V, np.float32) / np.float32(temperature), top_k, top_p)
    keep = p > 0
    counts = np.bincount(tok, minlength=v)
    assert counts[~keep].sum() == 0, "an excluded token was sampled"
    assert keep.sum() == {(0, 1.0): 10, (3, 1.0): 3, (0, 0.8): 4, (4, 0.6): 2}[(top_k, top_p)]
    chi2 = ((counts[keep] - m * p[keep]) ** 2 / (m * p[keep])).sum()
    assert chi2 < stats.chi2.ppf(1 - 1e-4, keep.sum() - 1), (chi2, counts, m * p)
    assert 0.5 * np.abs(counts / m - p).sum() < 0.02


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
        _, cache = m(prompt_BxP, valid_BxP, init_cache(m.cfg, prompt_BxP.shape[0], 11))
        fast = DecodeCache.from_kv_cache(cache)
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


PROMPTS8 = [[i + 1] * (1 + i % 5) + [30 + i] for i in range(8)]


@pytest.fixture(scope="module")
def unsharded8(model):
    prompt_BxP, valid_BxP = (jnp.asarray(x) for x in pad_prompts(PROMPTS8))
    cfg = SamplingConfig(max_new_tokens=6, greedy=True, eos_id=-1)
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


def test_pad_prompts_left_pads_into_buckets():
    prompt, valid = pad_prompts([[5, 6, 7], [8]], pad_id=0)
    np.testing.assert_array_equal(prompt, [[0] * 5 + [5, 6, 7], [0] * 7 + [8]])
    np.testing.assert_array_equal(valid, prompt != 0)
    assert prompt.dtype == np.int32 and valid.dtype == bool
    assert [bucket_length(n) for n in (1, 8, 9, 17, 100)] == [8, 8, 16, 32, 128]
    assert [bucket_length(n, multiple=24) for n in (1, 24, 25)] == [24, 24, 48]
    assert bucket_length(90, max_len=96) == 96
    with pytest.raises(ValueError, match="max_len"):
        pad_prompts([[1] * 10], max_len=8)
    with pytest.raises(ValueError, match="at least one token"):
        pad_prompts([[1], []])


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(max_new_tokens=0),
        dict(max_new_tokens=4, temperature=0.0),
        dict(max_new_tokens=4, top_k=-1),
        dict(max_new_tokens=4, top_p=0.0),
        dict(max_new_tokens=4, top_p=1.5),
    ],
)
def test_sampling_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        SamplingConfig(**kwargs)


@pytest.mark.parametrize("top_k,top_p", [(0, 1.0), (5, 1.0), (0, 0.9), (7, 0.5)])
def test_draws_equal_float64_inverse_cdf(top_k, top_p):
    """choose_tokens == the float64 reference row by row, including u at 0 and just below 1."""
    n, v = 256, 100  # v not a multiple of the block size
    z = jax.random.normal(jax.random.key(5), (n, v)) * 3.0
    u = jax.random.uniform(jax.random.key(6), (n,)).at[:2].set(jnp.asarray([0.0, 1 - 2**-23]))
    tok = np.asarray(jax.jit(choose_tokens, static_argnums=(2, 3, 4))(z, u, 1.0, top_k, top_p))
    z, u = np.asarray(z), np.asarray(u)
    want = np.array([draw_reference(z[i], u[i], top_k, top_p) for i in range(n)])
    # float32 vs float64 could only differ if u * total fell within rounding of an interval
    # boundary (~1e-5 chance per row); with these fixed keys every row agrees.
    np.testing.assert_array_equal(tok, want)
    for i in range(n):
        assert kept_probs(z[i], top_k, top_p)[tok[i]] > 0, "an excluded token was drawn"


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
