"""Top-k logit distillation: the loss against a hand-computed value, its place in the SFT loss,
and the one-tokenizer check.
"""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

from r1jax.config_check import ConfigError
from r1jax.data import sft_batches
from r1jax.model import ModelConfig, api
from r1jax.parallel import sharding
from r1jax.stages import distill
from r1jax.train import sft_step
from r1jax.train.kd_loss import topk_forward_kl


def test_topk_forward_kl_by_hand():
    # one position, V = 4, teacher top-2 = ids 2 and 0 with log-probs log 0.5, log 0.3
    logits = np.array([[[1.0, 0.0, 2.0, -1.0]]], np.float32)
    ids = np.array([[[2, 0]]], np.int32)
    logp = np.log(np.array([[[0.5, 0.3]]], np.float32))
    got = float(jax.jit(topk_forward_kl)(logits, ids, logp, np.ones((1, 1), np.float32)))
    z = math.e**1 + 1 + math.e**2 + math.e**-1
    q2, q0 = math.e**2 / z, math.e / z  # the student's full-vocabulary probabilities
    p2, p0 = 0.5 / 0.8, 0.3 / 0.8  # the teacher's top-2, renormalised
    want = p2 * math.log(p2 / q2) + p0 * math.log(p0 / q0)
    assert got == pytest.approx(want, rel=1e-6)
    assert want == pytest.approx(
        0.153626, abs=1e-6
    )  # 0.625 ln(0.625/0.64392) + 0.375 ln(0.375/0.23688)


def test_kl_is_zero_when_the_student_matches_and_weighted_by_position():
    probs = np.array([[[0.625, 0.0, 0.375, 0.0], [0.25, 0.25, 0.25, 0.25]]], np.float32)
    logits = np.log(probs + 1e-30).astype(np.float32)
    ids = np.array([[[0, 2], [1, 3]]], np.int32)
    logp = np.log(np.array([[[0.5, 0.3], [0.2, 0.2]]], np.float32))
    kl = jax.jit(topk_forward_kl)
    first = kl(logits, ids, logp, np.array([[1.0, 0.0]], np.float32))
    assert float(first) == pytest.approx(0.0, abs=1e-6)  # exactly the renormalised top-2
    both = kl(logits, ids, logp, np.array([[1.0, 2.0]], np.float32))
    assert float(both) == pytest.approx(2 * math.log(0.5 / 0.25), rel=1e-6)


def test_sft_loss_mixes_nll_and_kd_on_recorded_tokens_only():
    cfg = ModelConfig(
        vocab_size=32, d_model=16, n_layers=1, n_heads=2, n_kv_heads=1, mlp_dim=16, max_len=32
    )
    mesh = sharding.make_mesh((1, 1, 1), jax.devices()[:1])
    graphdef, params, _ = api.create(cfg, 0, mesh, sharding.DEFAULT_RULES)
    rng = np.random.default_rng(0)
    examples = [
        (rng.integers(4, 32, 9).astype(np.int32), np.arange(9) >= 3),
        (rng.integers(4, 32, 7).astype(np.int32), np.arange(7) >= 2),
    ]
    topk = [
        (rng.integers(0, 32, (9, 3)).astype(np.int32), np.log(rng.dirichlet(np.ones(3), 9))),
        None,  # a general example: no teacher, NLL only
    ]
    bcfg = sft_batches.BatchConfig(seq_len=15, batch_size=1, packing=True)
    batch = sft_batches.make_batch([[0, 1]], examples, bcfg, 0, topk)
    loss = jax.jit(sft_step.sft_loss_sum, static_argnums=(0, 3))
    total, n, aux = loss(graphdef, params, batch, 0.25)
    assert float(n) == 6 + 5
    np.testing.assert_allclose(float(total), 0.75 * aux["nll"] + 0.25 * aux["kd"], rtol=1e-6)
    # the KD term covers the first example's completion targets (tokens 3..8) only
    apply = jax.jit(lambda p, t, sg: api.apply(graphdef, p, t, segment_ids_BxT=sg)[0])
    logits = apply(params, batch["tokens"][:, :-1], batch["segment_ids"][:, :-1])
    w = np.zeros((1, 15), np.float32)
    w[0, 2:8] = 1.0  # input positions 2..7 predict tokens 3..8
    want = jax.jit(topk_forward_kl)(logits, batch["topk_ids"][:, 1:], batch["topk_logp"][:, 1:], w)
    np.testing.assert_allclose(float(aux["kd"]), float(want), rtol=1e-5)
    assert float(aux["kd"]) > 0
    total0, _, aux0 = loss(graphdef, params, batch, 0.0)
    assert float(aux0["kd"]) == 0.0 and float(total0) == pytest.approx(float(aux["nll"]), rel=1e-6)


def test_teacher_and_student_tokenizers_must_match(tmp_path):
    teacher, student = tmp_path / "distill_data", tmp_path / "distill"
    teacher.mkdir()
    student.mkdir()
    (teacher / "tokenizer.model").write_bytes(b"teacher pieces")
    (student / "tokenizer.model").write_bytes(b"student pieces")
    with pytest.raises(ConfigError, match="needs one tokenizer, but .* differs from") as e:
        distill._same_tokenizer(str(teacher), str(student))
    assert "\n" not in str(e.value)
    (student / "tokenizer.model").write_bytes(b"teacher pieces")
    distill._same_tokenizer(str(teacher), str(student))  # the same bytes: fine
