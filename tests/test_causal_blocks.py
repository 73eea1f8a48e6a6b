"""Causal attention block by block (`transformer.causal_blocks`) equals whole attention.

Uncached calls of >= 2 blocks attend block by block (queries [s, e) against keys [0, e)); the
shared-prefix training forward's version is in tests/test_shared_prompt.py.
"""

import jax
import numpy as np
import pytest
from test_model import TOL, VARIANTS, _padded_loss, build

from r1jax.model import api, transformer


@pytest.mark.parametrize("name", list(VARIANTS))
def test_causal_blocks_equal_whole_attention(name, monkeypatch):
    """Uncached calls of >= 2 blocks attend block by block (queries [s, e) against keys [0, e));
    on left-padded rows that gives the logits (and, on one variant, the gradients) of the unsplit
    attention. T is not a multiple of the block, so the blocks are uneven."""
    cfg = VARIANTS[name]
    graphdef, params = build(cfg, seed=3)
    t = 3 * transformer._CAUSAL_BLOCK + 5
    assert len(transformer.causal_blocks(t)) == 3
    tokens = np.random.default_rng(4).integers(0, cfg.vocab_size, (2, t)).astype(np.int32)
    valid = np.arange(t)[None, :] >= np.array([[0], [t // 2 + 9]])  # row 1: padding past t/2
    fns = lambda: (  # noqa: E731 - fresh jits: the split is decided at trace time
        jax.jit(lambda p: api.apply(graphdef, p, tokens, valid)[0]),
        jax.jit(jax.grad(lambda p: _padded_loss(graphdef, p, tokens, valid))),
    )
    split_logits, split_grad = fns()
    got = np.asarray(split_logits(params))
    monkeypatch.setattr(transformer, "_CAUSAL_BLOCK", 10**9)
    whole_logits, whole_grad = fns()
    want = np.asarray(whole_logits(params))
    np.testing.assert_allclose(got[valid], want[valid], **TOL)
    if name == "gqa":
        for a, b in zip(jax.tree.leaves(split_grad(params)), jax.tree.leaves(whole_grad(params))):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(np.abs(b).max()))


def test_causal_blocks_cover_every_query_once():
    """Blocks tile [0, t) in order, about _CAUSAL_BLOCK long; short calls stay whole."""
    blk = transformer._CAUSAL_BLOCK
    assert transformer.causal_blocks(blk) == [(0, blk)]
    for t in (2 * blk, 2 * blk + 1, 7 * blk - 1, 1000):
        blocks = transformer.causal_blocks(t)
        assert blocks[0][0] == 0 and blocks[-1][1] == t
        assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
        assert all(blk <= e - s < 2 * blk for s, e in blocks)
