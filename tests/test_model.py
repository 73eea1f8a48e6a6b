"""The transformer's numerics on one CPU device, float32 unless a test says otherwise.

What is shown: KV-cached decoding (one prefill, or prefill in pieces, then one token at a time)
gives the full-sequence logits; left-padded rows give the logits of the same rows unpadded (with
and without a cache, whatever the pad slots hold); a future token never changes earlier logits;
rotary scores depend only on relative position; bf16 compute is close to f32 but really bf16;
remat changes neither the loss nor the gradients; `num_params` and `flops_per_token` count what the
model holds and computes. On GQA, MHA (qkv bias, tied head), MQA (head_dim, Llama-3 rope scaling).

Parameters are drawn in numpy (norm scales 1 +- 0.2, biases 0.5 * N(0, 1)) from the model's
abstract shapes, so biases and norms matter and no init program has to compile.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from r1jax.model import ModelConfig, RopeScaling, api, init_cache
from r1jax.model.transformer import Transformer, apply_rope, rope_inv_freq
from r1jax.train import lm_step

TOL = dict(rtol=1e-5, atol=1e-5)  # f32, "highest" matmuls; logits are O(1); observed ~2e-6
BASE = dict(vocab_size=64, d_model=32, n_layers=2, mlp_dim=48, max_len=64)
VARIANTS = {
    "gqa": ModelConfig(**BASE, n_heads=4, n_kv_heads=2),
    "mha_bias_tied": ModelConfig(**BASE, n_heads=4, n_kv_heads=4, qkv_bias=True, tie_embeddings=True),
    "mqa_llama3": ModelConfig(
        **BASE, n_heads=4, n_kv_heads=1, head_dim=16, rope_theta=500.0,
        rope_scaling=RopeScaling(factor=4.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position=64),
    ),
}  # fmt: skip
B, T = 3, 14
apply = jax.jit(api.apply, static_argnums=(0, 5))


def build(cfg: ModelConfig, seed: int = 0) -> tuple[nnx.GraphDef, dict]:
    """(graphdef, params) with every parameter drawn in numpy at a scale that keeps logits O(1)."""
    with nnx.use_eager_sharding(False):
        abstract = nnx.eval_shape(lambda: Transformer(cfg, nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    rng = np.random.default_rng(seed)

    def draw(path, s):
        name, noise = path[-1].key, rng.standard_normal(s.shape)
        if name == "scale":
            x = 1.0 + 0.2 * noise
        elif name.endswith("_bias"):
            x = 0.5 * noise
        elif name == "embed":
            x = noise
        else:  # fan-in is every axis but the last (o_proj is [N, H, D])
            x = noise / np.sqrt(np.prod(s.shape[:-1]))
        return jnp.asarray(x, s.dtype)

    return graphdef, jax.tree_util.tree_map_with_path(draw, nnx.to_pure_dict(state))


@pytest.fixture(scope="module", params=list(VARIANTS))
def model(request):
    """(cfg, graphdef, params, tokens [B, T], full-sequence logits); every call passes `valid` so
    that full, padded and right-junk batches of [B, T] share one compiled program."""
    cfg = VARIANTS[request.param]
    graphdef, params = build(cfg)
    tokens = np.random.default_rng(1).integers(0, cfg.vocab_size, (B, T)).astype(np.int32)
    full, _ = apply(graphdef, params, tokens, np.ones((B, T), bool))
    assert np.abs(full).max() > 1.0  # O(1) logits: TOL is a tight bound
    return cfg, graphdef, params, tokens, np.asarray(full)


def _cached(graphdef, params, cfg, tokens, valid, pieces, size=20):
    """Logits of `tokens` fed through a KV cache in consecutive pieces of the given lengths."""
    cache, out, at = init_cache(cfg, tokens.shape[0], size), [], 0
    for n in pieces:
        v = valid[:, at : at + n]
        logits, cache = apply(graphdef, params, tokens[:, at : at + n], v, cache)
        out.append(np.asarray(logits))
        at += n
    assert at == tokens.shape[1]
    return np.concatenate(out, axis=1), cache


def test_cached_decode_equals_full_forward(model):
    """Prefill, decode, then multi-token chunks at non-zero indices; the cache has spare slots.
    (Piece lengths 4 and 1 only, so that the other cached tests reuse the two programs.)"""
    cfg, graphdef, params, tokens, full = model
    valid = np.ones((B, T), bool)
    got, cache = _cached(graphdef, params, cfg, tokens, valid, (4, 1, 1, 4, 4))
    np.testing.assert_allclose(got, full, **TOL)
    assert int(cache.index) == T
    np.testing.assert_array_equal(np.asarray(cache.next_pos_B), [T] * B)
    np.testing.assert_array_equal(np.asarray(cache.valid_BxS), np.arange(20)[None] < [[T]] * B)


def _left_pad(tokens, lengths, junk_seed):
    """Row r keeps its last lengths[r] tokens; the pad slots hold random junk ids."""
    junk = np.random.default_rng(junk_seed).integers(0, 64, tokens.shape).astype(np.int32)
    valid = np.arange(tokens.shape[1])[None, :] >= (tokens.shape[1] - np.asarray(lengths))[:, None]
    return np.where(valid, tokens, junk), valid


def _unpadded(graphdef, params, tokens, lengths):
    """Logits of each row's last lengths[r] tokens run alone: the row moved to the front of a
    [B, T] batch, followed by junk that causality (tested below) keeps out of its logits."""
    moved = np.random.default_rng(5).integers(0, 64, tokens.shape).astype(np.int32)
    for r, n in enumerate(lengths):
        moved[r, :n] = tokens[r, T - n :]
    logits = np.asarray(apply(graphdef, params, moved, np.ones(tokens.shape, bool))[0])
    return [logits[r, :n] for r, n in enumerate(lengths)]


def test_left_padded_rows_equal_unpadded_rows(model):
    cfg, graphdef, params, tokens, _ = model
    lengths = (T, 9, 4)
    alone = _unpadded(graphdef, params, tokens, lengths)
    for junk_seed in (2, 3):  # whatever the pad slots hold
        padded, valid = _left_pad(tokens, lengths, junk_seed)
        got = np.asarray(apply(graphdef, params, padded, valid)[0])
        for r, n in enumerate(lengths):
            np.testing.assert_allclose(got[r, T - n :], alone[r], **TOL)


def test_left_padded_prefill_then_decode_equals_unpadded_rows(model):
    """The sampler's path: a left-padded prompt prefilled, then tokens decoded one by one."""
    cfg, graphdef, params, tokens, _ = model
    prompt, lengths = 4, (T, 12, 11)  # real tokens per row (prompt part: 4, 2, 1)
    padded, valid = _left_pad(tokens, lengths, junk_seed=4)
    got, cache = _cached(graphdef, params, cfg, padded, valid, (prompt,) + (1,) * (T - prompt))
    np.testing.assert_array_equal(np.asarray(cache.next_pos_B), lengths)
    for r, (n, want) in enumerate(zip(lengths, _unpadded(graphdef, params, tokens, lengths))):
        np.testing.assert_allclose(got[r, T - n :], want, **TOL)


def test_future_tokens_do_not_change_earlier_logits(model):
    cfg, graphdef, params, tokens, full = model
    k = 6
    changed = tokens.copy()
    changed[:, k] = (changed[:, k] + 1) % cfg.vocab_size
    changed[:, k + 3 :] = 0
    got = np.asarray(apply(graphdef, params, changed, np.ones((B, T), bool))[0])
    np.testing.assert_allclose(got[:, :k], full[:, :k], rtol=0, atol=1e-6)
    assert np.abs(got[:, k] - full[:, k]).max() > 1e-2  # the change is visible from k on


def _padded_loss(graphdef, params, tokens, valid):
    logits, _ = api.apply(graphdef, params, tokens, valid)
    logp = api.token_logprobs(logits[:, :-1], tokens[:, 1:])
    return -(logp * (valid[:, :-1] & valid[:, 1:])).sum()


def test_rope_scores_depend_only_on_relative_position():
    cfg = VARIANTS["mqa_llama3"]
    inv = rope_inv_freq(cfg)
    q, k = np.random.default_rng(0).standard_normal((2, 1, 1, 1, cfg.head_dim)).astype(np.float32)
    pos = lambda p: jnp.full((1, 1), p, jnp.int32)  # noqa: E731
    score = lambda m, n: float((apply_rope(q, pos(m), inv) * apply_rope(k, pos(n), inv)).sum())  # noqa: E731
    np.testing.assert_allclose(score(3, 1), score(40, 38), rtol=1e-5)
    np.testing.assert_allclose(score(0, 0), float((q * k).sum()), rtol=1e-5)
    assert abs(score(3, 1) - score(3, 2)) > 1e-3


def test_llama3_scaling_keeps_short_and_stretches_long_wavelengths():
    cfg = VARIANTS["mqa_llama3"]
    s = cfg.rope_scaling
    plain = np.asarray(rope_inv_freq(dataclasses.replace(cfg, rope_scaling=None)))
    scaled = np.asarray(rope_inv_freq(cfg))
    wavelen = 2 * np.pi / plain
    short = wavelen < s.original_max_position / s.high_freq_factor
    long = wavelen > s.original_max_position / s.low_freq_factor
    assert short.any() and long.any() and (~short & ~long).any()  # all three regimes present
    np.testing.assert_allclose(scaled[short], plain[short], rtol=1e-6)
    np.testing.assert_allclose(scaled[long], plain[long] / s.factor, rtol=1e-6)
    mid = ~short & ~long
    assert np.all(scaled[mid] < plain[mid]) and np.all(scaled[mid] > plain[mid] / s.factor)


def test_bf16_compute_is_close_to_f32(model):
    cfg, graphdef, params, tokens, full = model
    # bf16 storage too on one variant (the cast of every weight is then a no-op)
    param_dtype = "bfloat16" if cfg.qkv_bias else "float32"
    bf = dataclasses.replace(cfg, dtype="bfloat16", param_dtype=param_dtype)
    graphdef_bf, _ = build(bf)
    params_bf = jax.tree.map(lambda p: p.astype(bf.weight_dtype), params)
    got, _ = apply(graphdef_bf, params_bf, tokens, np.ones((B, T), bool))
    assert got.dtype == jnp.float32  # logits stay f32
    got = np.asarray(got)
    rel = np.linalg.norm(got - full) / np.linalg.norm(full)
    # bf16 keeps 8 mantissa bits (relative rounding 2^-9 ~ 0.2 %); a few dozen roundings through
    # two layers give ~1 %, so 3 % is a bound that still catches a wrong op (which gives O(1)).
    assert 1e-4 < rel < 3e-2, rel  # > 1e-4: the computation really ran in bf16


def _loss_and_grads(graphdef, params, tokens):
    mask = np.ones(tokens.shape, bool)
    fn = lambda p: lm_step.loss_sum(graphdef, p, tokens, mask)[0]  # noqa: E731
    return jax.jit(jax.value_and_grad(fn))(params)


def test_remat_gives_the_same_loss_and_gradients():
    cfg = VARIANTS["mha_bias_tied"]
    graphdef, params = build(cfg)
    tokens = np.random.default_rng(1).integers(0, cfg.vocab_size, (B, T)).astype(np.int32)
    graphdef_remat, _ = build(dataclasses.replace(cfg, remat=True))
    mask = np.ones(tokens.shape, bool)
    jaxpr = jax.make_jaxpr(
        jax.grad(lambda p: lm_step.loss_sum(graphdef_remat, p, tokens, mask)[0])
    )(params)
    assert "checkpoint" in str(jaxpr) or "remat" in str(jaxpr)  # remat is really on
    loss, grads = _loss_and_grads(graphdef, params, tokens)
    loss_r, grads_r = _loss_and_grads(graphdef_remat, params, tokens)
    np.testing.assert_allclose(loss_r, loss, rtol=1e-6)
    # Remat recomputes the forward inside the backward pass, so XLA may fuse and order the float32
    # sums differently (it does with jax 0.12). The rounding error of an entry then scales with the
    # magnitudes of the terms summed into it, i.e. with the leaf's scale, not with the entry itself:
    # the absolute bound is 10 float32 ulps of the leaf's largest entry.
    eps = float(np.finfo(np.float32).eps)
    for g, g_r in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_r), strict=True):
        np.testing.assert_allclose(g_r, g, rtol=1e-5, atol=10 * eps * float(np.abs(g).max()))


def test_token_logprobs_is_the_log_softmax_of_the_target():
    logits = np.random.default_rng(0).standard_normal((2, 5, 11)).astype(np.float32) * 3
    targets = np.random.default_rng(1).integers(0, 11, (2, 5))
    for temp in (1.0, 0.7):
        want = jax.nn.log_softmax(logits / temp, axis=-1)
        want = np.take_along_axis(np.asarray(want), targets[..., None], -1)[..., 0]
        got = api.token_logprobs(jnp.asarray(logits), jnp.asarray(targets), temp)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_num_params_counts_the_parameters(name):
    cfg = VARIANTS[name]
    _, params = build(cfg)
    assert cfg.num_params() == sum(p.size for p in jax.tree.leaves(params))


def _dot_flops(jaxpr) -> int:
    """2 * multiply-adds of every dot_general in a jaxpr (recursing into sub-jaxprs)."""
    total = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            (contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += (
                2
                * int(np.prod(eqn.outvars[0].aval.shape))
                * int(np.prod([lhs[i] for i in contract]))
            )
        for v in eqn.params.values():
            for sub in v if isinstance(v, (tuple, list)) else (v,):
                if hasattr(sub, "eqns"):
                    total += _dot_flops(sub)
                elif hasattr(sub, "jaxpr") and hasattr(sub.jaxpr, "eqns"):
                    total += _dot_flops(sub.jaxpr)
    return total


@pytest.mark.parametrize("name", list(VARIANTS))
def test_flops_per_token_matches_the_forward_matmuls(name):
    """The MFU benchmark's numerator: forward matmul FLOPs x 3, with causal attention at T/2.

    The model computes attention over all T keys (masking the upper half), so its dot FLOPs are
    the formula's with the attention term doubled.
    """
    cfg = VARIANTS[name]
    graphdef, params = build(cfg)
    t = 16
    tokens = jnp.zeros((1, t), jnp.int32)
    jaxpr = jax.make_jaxpr(lambda p: api.apply(graphdef, p, tokens)[0])(params).jaxpr
    attn_causal = cfg.n_layers * 2 * t * cfg.n_heads * cfg.head_dim
    want = (cfg.flops_per_token(t) / 3 + attn_causal) * t
    assert _dot_flops(jaxpr) == want
