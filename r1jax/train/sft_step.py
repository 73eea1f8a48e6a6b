"""The SFT loss: next-token NLL on completion tokens of packed rows, optionally plus top-k logit KD.

Letters: B rows, T1 = T + 1 tokens per row (inputs are [:, :-1], targets [:, 1:]), K teacher top-k.

A batch (data/sft_batches.py) holds `tokens`, `loss_mask` (True on the tokens that are trained on:
the completion and its EOS), and for packed rows `segment_ids` (0 = padding, then 1, 2, ... per
example). A target counts only when it is in the loss mask and in the same segment as its input, so
no example is ever trained to predict the next one's first token. With `kd_weight` w > 0 the batch
also holds the teacher's `topk_ids` / `topk_logp` per target token and `kd_mask`, and the loss is

    (1 - w) * NLL + w * KL(teacher top-k || student)      (train/kd_loss.py)

both summed over loss tokens; `lm_step.make_train_step` divides by the step's number of loss tokens.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from r1jax import model as model_lib
from r1jax.train import lm_step
from r1jax.train.kd_loss import topk_forward_kl

AUX_NAMES = ("nll", "kd")


def target_weight(batch: dict) -> jax.Array:
    """[B, T] float: which targets are trained on (loss mask, and never across a segment border)."""
    w = batch["loss_mask"][:, 1:]
    if "segment_ids" in batch:
        seg = batch["segment_ids"]
        w = w & (seg[:, 1:] == seg[:, :-1])
    return w.astype(jnp.float32)


def sft_loss_sum(
    graphdef: nnx.GraphDef, params: dict, batch: dict, kd_weight: float = 0.0
) -> tuple[jax.Array, jax.Array, dict]:
    """(sum of per-token losses, number of loss tokens, {"nll": sum, "kd": sum}) of one micro-batch."""
    tokens = batch["tokens"]
    seg = batch.get("segment_ids")
    logits, _ = model_lib.apply(
        graphdef, params, tokens[:, :-1], segment_ids_BxT=None if seg is None else seg[:, :-1]
    )
    w = target_weight(batch)
    nll = -(model_lib.token_logprobs(logits, tokens[:, 1:]) * w).sum()
    kd = jnp.zeros((), jnp.float32)
    if kd_weight > 0:
        kd_w = w * batch["kd_mask"][:, 1:].astype(jnp.float32)
        kd = topk_forward_kl(logits, batch["topk_ids"][:, 1:], batch["topk_logp"][:, 1:], kd_w)
    total = (1.0 - kd_weight) * nll + kd_weight * kd if kd_weight > 0 else nll
    return total, w.sum(), {"nll": nll, "kd": kd}


def make_sft_step(
    graphdef: nnx.GraphDef,
    tx,
    lr_fn,
    grad_accum: int,
    state_shardings: dict,
    batch_shardings: dict,
    kd_weight: float = 0.0,
):
    """The jitted SFT step (see lm_step.make_train_step); metrics add `nll` and `kd` per token."""
    return lm_step.make_train_step(
        graphdef,
        tx,
        lr_fn,
        grad_accum,
        state_shardings,
        batch_shardings,
        loss_fn=lambda p, mb: sft_loss_sum(graphdef, p, mb, kd_weight),
        aux_names=AUX_NAMES,
    )
