"""Top-k logit distillation: forward KL from the teacher's top-k next-token distribution.

Letters: B rows, T positions, V vocab, K the teacher's top-k.

While the teacher's samples are recorded, its k most likely next tokens and their log-probs are
kept at every completion position (a few numbers per token instead of V). The student then
minimises, per position,

    KL(p || q) = sum_k p_k (log p_k - log q_k),   p = softmax over the teacher's top-k log-probs
                                                   (the mass outside the top-k is dropped),
                                                   q = the student's full-vocabulary softmax,

which is >= 0 (Gibbs: q restricted to the k ids sums to at most 1) and is 0 only when the student
puts exactly the teacher's renormalised top-k mass on those ids. This is the forward KL ("mode
covering") of standard logit distillation, restricted to what was recorded. Pure: arrays in, sums out.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def topk_forward_kl(
    logits_BxTxV: jax.Array,
    topk_ids_BxTxK: jax.Array,
    topk_logp_BxTxK: jax.Array,
    weight_BxT: jax.Array,
) -> jax.Array:
    """Sum over positions of weight * KL(teacher top-k || student); float32 scalar."""
    logq_BxTxV = jax.nn.log_softmax(logits_BxTxV.astype(jnp.float32), axis=-1)
    logq_BxTxK = jnp.take_along_axis(logq_BxTxV, topk_ids_BxTxK, axis=-1)
    t = topk_logp_BxTxK.astype(jnp.float32)
    logp_BxTxK = t - jax.nn.logsumexp(t, axis=-1, keepdims=True)
    kl_BxT = (jnp.exp(logp_BxTxK) * (logp_BxTxK - logq_BxTxK)).sum(-1)
    return (kl_BxT * weight_BxT.astype(jnp.float32)).sum()
