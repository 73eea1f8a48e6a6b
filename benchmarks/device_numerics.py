"""bf16 numerics of the GPU attention kernel: `model.attention="cudnn"` against "blocked".

One set of float32 parameters (the suite's Qwen2.5-0.5B shape), random tokens, 2 rows of `seq`
with the second left-padded by 300, run through three models that differ only in the attention
kernel and compute dtype: blocked float32 (the reference), blocked bfloat16, cuDNN bfloat16.
Reported against the reference: the largest logit error at valid positions (relative to the
largest |logit|), the relative loss error, and the gradient's cosine and relative L2 error. The
fused kernel passes if its errors are of the order of blocked bf16's (what bf16 itself costs).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from r1jax.model import ModelConfig, api
from r1jax.parallel import sharding
from r1jax.train import lm_step

KERNELS = {"blocked_f32": ("blocked", "float32"), "blocked_bf16": ("blocked", "bfloat16"),
           "cudnn_bf16": ("cudnn", "bfloat16")}  # fmt: skip


def compare(cfg: ModelConfig, mesh, seq: int = 1024) -> dict:
    """{kernel: errors against blocked float32} on one set of parameters (see module doc)."""
    rng = np.random.default_rng(1)
    tokens = jnp.asarray(rng.integers(0, cfg.vocab_size, (2, seq)), jnp.int32)
    valid = jnp.asarray(np.arange(seq)[None, :] >= np.array([[0], [300]]))
    params, runs = None, {}
    for name, (attention, dtype) in KERNELS.items():
        vcfg = dataclasses.replace(cfg, attention=attention, dtype=dtype, param_dtype="float32")
        graphdef, p, _ = api.create(vcfg, 0, mesh, sharding.DEFAULT_RULES)
        params = p if params is None else params  # every kernel reads the first draw
        logits = jax.jit(lambda q, g=graphdef: api.apply(g, q, tokens, valid)[0])(params)
        loss = lambda q, g=graphdef: jnp.divide(*lm_step.loss_sum(g, q, tokens, valid))  # noqa: E731
        value, grad = jax.jit(jax.value_and_grad(loss))(params)
        flat = jnp.concatenate([x.astype(jnp.float32).ravel() for x in jax.tree.leaves(grad)])
        runs[name] = (np.asarray(logits)[np.asarray(valid)], float(value), np.asarray(flat))
        del logits, grad, flat
    ref_logits, ref_loss, ref_grad = runs["blocked_f32"]
    out = {"seq_len": seq, "rows": 2, "left_padding_row_2": 300, "loss_f32": round(ref_loss, 6)}
    for name in ("blocked_bf16", "cudnn_bf16"):
        lg, lo, gr = runs[name]
        cos = float(gr @ ref_grad / (np.linalg.norm(gr) * np.linalg.norm(ref_grad)))
        out[name] = {
            "finite": bool(np.isfinite(lg).all() and np.isfinite(gr).all()),
            "max_logit_err_rel": float(np.abs(lg - ref_logits).max() / np.abs(ref_logits).max()),
            "loss_err_rel": abs(lo - ref_loss) / abs(ref_loss),
            "grad_cosine": cos,
            "grad_l2_err_rel": float(np.linalg.norm(gr - ref_grad) / np.linalg.norm(ref_grad)),
        }
    return out
