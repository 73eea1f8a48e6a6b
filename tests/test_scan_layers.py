"""Scan over layers (`ModelConfig.scan_layers`): the same model as the unrolled one, flat compile.

What is shown, on the three attention variants of test_model (GQA, MHA with bias and tied head,
MQA with Llama-3 rope scaling): the scanned model's logits (uncached, and prefill + decode through
its stacked KV cache) and its loss gradients equal the unrolled model's on the same parameters, with
and without remat (two policies); the program XLA receives does not grow with depth; the params
convert between layouts exactly; checkpoints and Hugging Face export/import of the stacked layout are
bit for bit.
"""

import dataclasses

import jax
import numpy as np
import pytest
from test_model import VARIANTS, B, T, build

from r1jax.model import api, hf, init_cache
from r1jax.model.layers import is_stacked, stack_layers, to_layout, unstack_layers
from r1jax.parallel import sharding
from r1jax.train import checkpoint as ckpt_lib
from r1jax.train import lm_step

TOL = dict(rtol=1e-5, atol=1e-5)  # f32 logits are O(1); the observed gap is ~1e-6
EPS = float(np.finfo(np.float32).eps)
apply = jax.jit(api.apply, static_argnums=(0,))


def _scanned(cfg, **kw):
    return dataclasses.replace(cfg, scan_layers=True, **kw)


def _grads(graphdef, params, tokens):
    mask = np.ones(tokens.shape, bool)
    fn = lambda p: lm_step.loss_sum(graphdef, p, tokens, mask)[0]  # noqa: E731
    return jax.jit(jax.value_and_grad(fn))(params)


@pytest.fixture(scope="module")
def models():
    """name -> (cfg, unrolled graphdef, params, scanned graphdef, stacked params, tokens, memo);
    built lazily, so that each variant's unrolled gradients compile once for all remat policies."""
    built = {}

    def get(name):
        if name not in built:
            cfg = VARIANTS[name]
            graphdef, params = build(cfg)
            graphdef_s, abstract = build(_scanned(cfg))
            stacked = stack_layers(params)
            assert jax.tree.structure(stacked) == jax.tree.structure(abstract)
            tokens = np.random.default_rng(1).integers(0, cfg.vocab_size, (B, T)).astype(np.int32)
            built[name] = (cfg, graphdef, params, graphdef_s, stacked, tokens, {})
        return built[name]

    return get


@pytest.mark.parametrize("name", list(VARIANTS))
def test_scanned_logits_equal_unrolled(models, name):
    cfg, graphdef, params, graphdef_s, stacked, tokens, _ = models(name)
    want, _ = apply(graphdef, params, tokens)
    got, _ = apply(graphdef_s, stacked, tokens)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), **TOL)
    # prefill 10 tokens, then 4 one at a time, through the stacked [L, B, S, K, H] cache
    cache = init_cache(_scanned(cfg), B, 16)
    assert cache.stacked and cache.k.shape == (cfg.n_layers, B, 16, cfg.n_kv_heads, cfg.head_dim)
    out, cache = apply(graphdef_s, stacked, tokens[:, :10], None, cache)
    pieces = [np.asarray(out)]
    for i in range(10, T):
        out, cache = apply(graphdef_s, stacked, tokens[:, i : i + 1], None, cache)
        pieces.append(np.asarray(out))
    np.testing.assert_allclose(np.concatenate(pieces, 1), np.asarray(want), **TOL)


@pytest.mark.parametrize(
    "name,remat",
    [(n, None) for n in VARIANTS] + [("gqa", "nothing_saveable"), ("mqa_llama3", "dots_saveable")],
)
def test_scanned_gradients_equal_unrolled(models, name, remat):
    cfg, graphdef, params, _, stacked, tokens, memo = models(name)
    policy = dict(remat=remat is not None, remat_policy=remat or "nothing_saveable")
    graphdef_s, _ = build(_scanned(cfg, **policy))
    if "grads" not in memo:
        memo["grads"] = _grads(graphdef, params, tokens)
    loss, grads = memo["grads"]
    loss_s, grads_s = _grads(graphdef_s, stacked, tokens)
    np.testing.assert_allclose(loss_s, loss, rtol=1e-6)
    # float32 sums over the scan's loop body are ordered differently from the unrolled program's:
    # the bound is 10 ulps of the leaf's largest entry (as in test_model's remat test)
    want = stack_layers(grads)
    for g, g_s in zip(jax.tree.leaves(want), jax.tree.leaves(grads_s), strict=True):
        np.testing.assert_allclose(g_s, g, rtol=1e-5, atol=10 * EPS * float(np.abs(g).max()))


def _program_size(cfg) -> int:
    """Lines of the StableHLO that XLA compiles for loss + gradients (what its compile time follows)."""
    graphdef, params = build(cfg)
    tokens = np.zeros((2, 8), np.int32)
    mask = np.ones(tokens.shape, bool)
    fn = jax.grad(lambda p: lm_step.loss_sum(graphdef, p, tokens, mask)[0])
    return len(jax.jit(fn).lower(params).as_text().splitlines())


def test_program_size_is_flat_in_depth():
    base = VARIANTS["gqa"]
    sizes = {
        (scan, depth): _program_size(dataclasses.replace(base, n_layers=depth, scan_layers=scan))
        for scan in (False, True)
        for depth in (2, 8)
    }
    assert sizes[(True, 8)] == sizes[(True, 2)], sizes  # one layer body, whatever the depth
    assert sizes[(False, 8)] > 3 * sizes[(False, 2)] / 2, sizes  # unrolled: grows with depth
    assert sizes[(True, 8)] < sizes[(False, 8)] / 2, sizes


def test_layout_conversion_is_exact():
    _, params = build(VARIANTS["mqa_llama3"])
    stacked = stack_layers(params)
    assert is_stacked(stacked) and not is_stacked(params)
    assert to_layout(stacked, True) is stacked and to_layout(params, False) is params
    back = unstack_layers(stacked)
    assert jax.tree.structure(back) == jax.tree.structure(params)
    jax.tree.map(np.testing.assert_array_equal, back, params)


def test_stacked_checkpoint_round_trip(tmp_path, one_device_mesh):
    """Orbax saves and restores the stacked layout bit for bit, with the target's shardings."""
    cfg = _scanned(VARIANTS["gqa"])
    _, params, shardings = api.create(cfg, 0, one_device_mesh, sharding.DEFAULT_RULES)
    assert shardings["layers"]["attn"]["q_proj"].spec[0] is None  # the layers axis is not split
    ck = ckpt_lib.Checkpointer(str(tmp_path / "ck"), ("params",), every_steps=1)
    ck.save(1, {"params": params}, {"step": 1})
    ck.close()
    reader = ckpt_lib.Checkpointer(str(tmp_path / "ck"), ("params",))
    _, items, _ = reader.restore(1, {"params": ckpt_lib.abstract_like(params)})
    got = items["params"]
    reader.close()
    jax.tree.map(np.testing.assert_array_equal, got, params)


def test_hf_export_and_import_of_the_stacked_layout(tmp_path, one_device_mesh):
    """An unrolled model exported to HF imports stacked exactly; the stacked export is the same file."""
    pytest.importorskip("safetensors", reason="the `hf` extra is not installed")
    cfg = VARIANTS["mha_bias_tied"]
    _, params = build(cfg)
    hf.save_hf(str(tmp_path / "a"), params, cfg)
    _, stacked, cfg_s = hf.load_hf(
        str(tmp_path / "a"), one_device_mesh, sharding.DEFAULT_RULES, scan_layers=True
    )
    assert cfg_s.scan_layers and is_stacked(stacked)
    jax.tree.map(np.testing.assert_array_equal, stacked, stack_layers(params))
    hf.save_hf(str(tmp_path / "b"), stacked, cfg_s)
    from safetensors.numpy import load_file

    a = load_file(str(tmp_path / "a" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
