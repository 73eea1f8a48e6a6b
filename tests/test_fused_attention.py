"""`model.attention="cudnn"`: the mask of the fused path, checked on the CPU through the same
`jax.nn.dot_product_attention` call with its unfused "xla" implementation; the cuDNN kernel itself
runs only on a GPU (benchmarks/device_suite.py compares its logits and gradients there)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from test_model import build

from r1jax.model import ModelConfig, api, fused_attention, packing
from r1jax.model.transformer import Attention
from r1jax.sampling import decode

CFG = ModelConfig(d_model=64, n_heads=4, n_kv_heads=2, head_dim=16)


def _core(*args) -> jax.Array:
    """The blocked path's attention (`Attention._core`, which reads only the config)."""
    with nnx.use_eager_sharding(False):
        return Attention(CFG, nnx.Rngs(0))._core(*args)


def _qkv(b: int, t: int, seed: int):
    r = np.random.default_rng(seed)
    q = r.normal(size=(b, t, CFG.n_heads, CFG.head_dim)).astype(np.float32)
    k, v = (r.normal(size=(b, t, CFG.n_kv_heads, CFG.head_dim)).astype(np.float32) for _ in "kv")
    return jnp.asarray(q), jnp.asarray(k), jnp.asarray(v)


def test_fused_mask_equals_blocked_core_on_left_padded_rows():
    """Causal, grouped-query, left padding (row 1 half padding, row 2 one valid token): the fused
    call's outputs at valid queries are `_core`'s; its padding queries stay finite."""
    b, t = 3, 24
    q, k, v = _qkv(b, t, 0)
    valid = np.arange(t)[None, :] >= np.array([[0], [t // 2], [t - 1]])
    core = _core(q, k, v, jnp.arange(t), jnp.asarray(valid))
    got = fused_attention.attention(q, k, v, jnp.arange(t), jnp.asarray(valid), "xla")
    np.testing.assert_allclose(np.asarray(got)[valid], np.asarray(core)[valid], atol=2e-6)
    assert np.isfinite(np.asarray(got)).all()


def test_fused_mask_equals_blocked_core_on_packed_rows():
    """Packed rows (3-D key validity: a token sees only its own segment) with right padding."""
    b, t = 2, 20
    q, k, v = _qkv(b, t, 1)
    seg = np.array([[0] * 7 + [1] * 9 + [2] * 4, [5] * 12 + [6] * 8], np.int32)
    valid = np.ones((b, t), bool)
    valid[1, 17:] = False
    _, key_valid = packing.positions_and_mask(jnp.asarray(seg), jnp.asarray(valid))
    core = _core(q, k, v, jnp.arange(t), key_valid)
    got = fused_attention.attention(q, k, v, jnp.arange(t), key_valid, "xla")
    np.testing.assert_allclose(np.asarray(got)[valid], np.asarray(core)[valid], atol=2e-6)


@pytest.mark.parametrize("packed", [False, True])
def test_even_padding_leaves_valid_outputs_and_gradients_unchanged(packed):
    """cuDNN's masked training kernel takes only even lengths, so `cudnn` pads T and S by one
    (`pad_even`): at an odd length, outputs and input gradients at valid queries equal the
    unpadded call's, for 2-D (left padding) and packed 3-D validity."""
    b, t = 2, 23
    q, k, v = _qkv(b, t, 2)
    if packed:
        seg = jnp.asarray(np.array([[0] * 10 + [1] * 13, [4] * 23], np.int32))
        _, valid = packing.positions_and_mask(seg, jnp.ones((b, t), bool))
        valid_q = np.ones((b, t), bool)
    else:
        valid_q = np.arange(t)[None, :] >= np.array([[0], [9]])
        valid = jnp.asarray(valid_q)
    w = jnp.asarray(np.random.default_rng(3).normal(size=q.shape), jnp.float32)
    w = w * jnp.asarray(valid_q)[:, :, None, None]  # the loss reads valid queries only

    def loss(q, k, v, pad):
        args = (q, k, v, jnp.arange(t), valid)
        if pad:
            padded = fused_attention.pad_even(*args)
            assert all(x.shape[1] % 2 == 0 for x in padded[:3])
            out = fused_attention.attention(*padded, "xla")[:, :t]
        else:
            out = fused_attention.attention(*args, "xla")
        return jnp.sum(out * w), out

    (l0, o0), g0 = jax.value_and_grad(loss, (0, 1, 2), has_aux=True)(q, k, v, False)
    (l1, o1), g1 = jax.value_and_grad(loss, (0, 1, 2), has_aux=True)(q, k, v, True)
    np.testing.assert_allclose(np.asarray(o1)[valid_q], np.asarray(o0)[valid_q], atol=1e-6)
    np.testing.assert_allclose(float(l1), float(l0), rtol=1e-6)
    for a, b_ in zip(g1, g0):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b_), atol=1e-6)


def test_cudnn_attention_config_errors():
    """Float32 compute or an unknown kernel is refused by the config; on a machine without a
    CUDA GPU the first uncached call names the fix."""
    with pytest.raises(ValueError, match="model.attention='cudnn' needs model.dtype bfloat16"):
        ModelConfig(attention="cudnn")
    with pytest.raises(ValueError, match="model.attention='flash' is not one of"):
        ModelConfig(attention="flash")
    cfg = ModelConfig(
        vocab_size=64, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, mlp_dim=64,
        dtype="bfloat16", attention="cudnn",
    )  # fmt: skip
    graphdef, params = build(cfg)
    if jax.default_backend() == "gpu":
        pytest.skip("this machine has a GPU: the kernel runs (device_suite.py checks it)")
    with pytest.raises(ValueError, match="needs a CUDA GPU .* use model.attention='blocked'"):
        api.apply(graphdef, params, jnp.zeros((1, 4), jnp.int32))


def test_the_fast_decode_step_serves_a_cudnn_model():
    """The kernel choice concerns uncached calls only, so the sampler's fast decode step (every
    call of it cached) still serves such a model instead of falling back to the generic call."""
    cfg = ModelConfig(
        vocab_size=64, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, mlp_dim=64,
        dtype="bfloat16", attention="cudnn",
    )  # fmt: skip
    graphdef, params = build(cfg)
    assert decode.unsupported(nnx.merge(graphdef, params), params) is None
