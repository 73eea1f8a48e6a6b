"""Packed SFT rows equal unpacked ones (loss and gradients), and the loss is on completions only.

Packing puts several examples in one row with segment ids (model/packing.py): each must get exactly
the logits, loss and gradient it would get alone in its own row. Checked on short rows and on a
128-position row, where the attention takes its split-queries path.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax.data import sft_batches
from r1jax.model import ModelConfig, api
from r1jax.parallel import sharding
from r1jax.train import sft_step


@pytest.fixture(scope="module")
def model():
    cfg = ModelConfig(
        vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, mlp_dim=48, max_len=256
    )
    mesh = sharding.make_mesh((1, 1, 1), jax.devices()[:1])
    graphdef, params, _ = api.create(cfg, 0, mesh, sharding.DEFAULT_RULES)
    return graphdef, params


def _examples(lengths, prompt_lens, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for n, p in zip(lengths, prompt_lens):
        ids = rng.integers(4, 64, size=n).astype(np.int32)
        mask = np.arange(n) >= p
        out.append((ids, mask))
    return out


@functools.partial(jax.jit, static_argnums=0)
def _apply(graphdef, params, tokens, segment_ids=None):
    return api.apply(graphdef, params, tokens, segment_ids_BxT=segment_ids)[0]


@functools.partial(jax.jit, static_argnums=0)
def _loss(graphdef, params, batch):
    return sft_step.sft_loss_sum(graphdef, params, batch)


@functools.partial(jax.jit, static_argnums=0)
def _loss_and_grad(graphdef, params, batch):
    def f(p):
        total, n, aux = sft_step.sft_loss_sum(graphdef, p, batch)
        return total, n

    return jax.value_and_grad(f, has_aux=True)(params)


def _both(model, examples, seq_len):
    graphdef, params = model
    lengths = [len(e[0]) for e in examples]
    packed_cfg = sft_batches.BatchConfig(seq_len=seq_len, batch_size=1, packing=True)
    packed = sft_batches.make_batch([list(range(len(examples)))], examples, packed_cfg, 0)
    assert packed["segment_ids"].max() == len(examples)
    assert sum(lengths) <= seq_len + 1
    plain_cfg = sft_batches.BatchConfig(
        seq_len=seq_len, batch_size=len(examples), packing=False, bucket=8
    )
    rows = [[i] for i in range(len(examples))]
    plain = sft_batches.make_batch(rows, examples, plain_cfg, 0)
    assert "segment_ids" not in plain
    (lp, np_), gp = _loss_and_grad(graphdef, params, packed)
    (lu, nu), gu = _loss_and_grad(graphdef, params, plain)
    return (lp, np_, gp), (lu, nu, gu)


@pytest.mark.parametrize(
    "lengths,prompt_lens,seq_len",
    [((7, 11, 5), (3, 4, 2), 32), ((40, 33, 29, 20), (10, 8, 12, 5), 128)],
    ids=["short", "split_queries"],
)
def test_packed_loss_and_grads_equal_unpacked(model, lengths, prompt_lens, seq_len):
    examples = _examples(lengths, prompt_lens)
    (lp, np_, gp), (lu, nu, gu) = _both(model, examples, seq_len)
    # the loss counts each completion token once (the first token of a row is never a target)
    assert float(np_) == float(nu) == sum(n - p for n, p in zip(lengths, prompt_lens))
    np.testing.assert_allclose(float(lp), float(lu), rtol=1e-6)
    # leaf by leaf, relative to the leaf's largest entry (the two layouts sum in different orders;
    # a leak between segments would show at the 1e-2 level)
    for a, b in zip(jax.tree.leaves(gp), jax.tree.leaves(gu)):
        scale = np.abs(np.asarray(b)).max()
        assert scale > 0
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-5 * scale)


def test_packed_logits_equal_each_example_alone(model):
    graphdef, params = model
    examples = _examples((9, 6, 12), (0, 0, 0), seed=3)
    cfg = sft_batches.BatchConfig(seq_len=31, batch_size=1, packing=True)
    b = sft_batches.make_batch([[0, 1, 2]], examples, cfg, 0)
    logits = _apply(graphdef, params, b["tokens"], b["segment_ids"])
    alone = np.zeros((3, 12), np.int32)  # each example in its own row (right padding is unseen)
    for i, (ids, _) in enumerate(examples):
        alone[i, : len(ids)] = ids
    alone_logits = _apply(graphdef, params, alone)
    pos = 0
    for i, (ids, _) in enumerate(examples):
        n = len(ids)
        np.testing.assert_allclose(
            logits[0, pos : pos + n], alone_logits[i, :n], rtol=1e-5, atol=1e-5
        )
        pos += n
    # without segment ids the second example would see the first: the logits differ
    mixed = _apply(graphdef, params, b["tokens"])
    assert not np.allclose(mixed[0, 9:15], logits[0, 9:15], atol=1e-3)


def test_loss_is_on_completion_tokens_only(model):
    """sft_loss_sum == the NLL of the completion targets, computed by hand from the logits."""
    graphdef, params = model
    ids, mask = _examples((12,), (5,), seed=1)[0]
    cfg = sft_batches.BatchConfig(seq_len=16, batch_size=1, packing=True)
    batch = sft_batches.make_batch([[0]], [(ids, mask)], cfg, 0)
    total, n, aux = _loss(graphdef, params, batch)
    logits = _apply(graphdef, params, jnp.asarray(ids)[None])
    logp = np.asarray(jax.nn.log_softmax(np.asarray(logits[0], np.float64)))
    want = -sum(logp[t - 1, ids[t]] for t in range(5, 12))  # targets 5..11: the completion
    assert float(n) == 7
    np.testing.assert_allclose(float(total), want, rtol=1e-6)
    np.testing.assert_allclose(float(aux["nll"]), want, rtol=1e-6)


def test_packing_never_trains_across_a_segment_border():
    """With loss on every token, the first token of the next example is not a target."""
    examples = [
        (np.arange(4, 9, dtype=np.int32), np.ones(5, bool)),
        (np.arange(10, 14, dtype=np.int32), np.ones(4, bool)),
    ]
    cfg = sft_batches.BatchConfig(seq_len=11, batch_size=1, packing=True)
    batch = sft_batches.make_batch([[0, 1]], examples, cfg, 0)
    w = np.asarray(sft_step.target_weight(batch))[0]
    # targets are tokens 1..11: 1-4 (first example), 6-8 (second), not 5 (its first token)
    np.testing.assert_array_equal(w, [1, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0])
