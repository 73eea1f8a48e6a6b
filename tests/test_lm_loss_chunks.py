"""`lm_step.loss_sum` scores a vocabulary larger than `vocab_chunk` one chunk at a time: the same
loss and gradients as the whole-logits path (which every vocabulary up to 8192 keeps)."""

import jax
import numpy as np
import pytest
from test_model import VARIANTS, build

from r1jax.train import lm_step


@pytest.mark.parametrize("name", ["gqa", "mha_bias_tied"])
def test_chunked_loss_and_gradients_equal_whole_logits(name):
    """V = 64 in chunks of 10 (the last one short), untied and tied heads, a partial loss mask."""
    cfg = VARIANTS[name]
    graphdef, params = build(cfg, seed=5)
    rng = np.random.default_rng(6)
    tokens = rng.integers(0, cfg.vocab_size, (3, 15)).astype(np.int32)
    mask = rng.random((3, 15)) < 0.7

    def loss(p, chunk):
        total, n = lm_step.loss_sum(graphdef, p, tokens, mask, vocab_chunk=chunk)
        return total / n

    whole, g_whole = jax.jit(jax.value_and_grad(lambda p: loss(p, 0)))(params)
    chunked, g_chunked = jax.jit(jax.value_and_grad(lambda p: loss(p, 10)))(params)
    np.testing.assert_allclose(chunked, whole, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(g_chunked), jax.tree.leaves(g_whole)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(np.abs(b).max()))
