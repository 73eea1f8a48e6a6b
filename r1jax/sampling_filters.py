"""Choosing one token per row from logits: greedy, temperature, top-k, top-p; log-probs, entropy.

Letters: N rows, V vocab, K kept candidates.

Sampling is Gumbel-max: `argmax(z + g)` with `g ~ Gumbel(0, 1)` i.i.d. draws a token from
`softmax(z)`, and with excluded tokens set to -inf it draws from the truncated, renormalised
distribution. The noise of step `t` is a pure function of `(key, t)` (`step_gumbel`), so a slow
reference loop can replay exactly the draws of the jitted loop, and an excluded token (-inf) can never
win. The log-prob reported for the trainer is always under the FULL distribution at the sampling
temperature (GRPO's old-policy ratio needs that, not the truncated one).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def step_gumbel(key: jax.Array, step: jax.Array | int, n: int, v: int) -> jax.Array:
    """The Gumbel noise [n, v] used at decode step `step` (0 = first generated token)."""
    return jax.random.gumbel(jax.random.fold_in(key, step), (n, v), jnp.float32)


def truncate_logits(z_NxV: jax.Array, top_k: int, top_p: float) -> jax.Array:
    """Sets tokens outside the top-k, then outside the top-p nucleus, to -inf.

    top-k keeps the k largest logits; top-p then keeps the smallest set of the remaining tokens, in
    decreasing order, whose renormalised mass reaches top_p (a token is kept while the mass strictly
    before it is < top_p, so the top token always survives). Tokens tied with the last kept value are
    kept too. With both off this is the identity, decided statically (no sort in the decode loop).
    """
    v = z_NxV.shape[-1]
    k = min(top_k, v) if top_k > 0 else 0
    if k == 0 and top_p >= 1.0:
        return z_NxV
    # (1) Candidates in decreasing order: only k of them when top-k is on, else the whole vocab.
    vals_NxK = jax.lax.top_k(z_NxV, k if k else v)[0]
    if top_p < 1.0:
        # (2) Mass strictly before each candidate, under the distribution renormalised over them.
        probs_NxK = jax.nn.softmax(vals_NxK, axis=-1)
        before_NxK = jnp.cumsum(probs_NxK, axis=-1) - probs_NxK
        n_keep_N = jnp.sum(before_NxK < top_p, axis=-1)  # >= 1: before[0] == 0
    else:
        n_keep_N = jnp.full(z_NxV.shape[:-1], vals_NxK.shape[-1])
    # (3) The smallest kept value is the threshold.
    thresh_N = jnp.take_along_axis(vals_NxK, (n_keep_N - 1)[:, None], axis=-1)
    return jnp.where(z_NxV >= thresh_N, z_NxV, -jnp.inf)


def choose_tokens(
    logits_NxV: jax.Array,
    noise_NxV: jax.Array | None,
    temperature: float,
    top_k: int = 0,
    top_p: float = 1.0,
) -> jax.Array:
    """int32 [N]: argmax of the tempered logits (noise None = greedy), after top-k/top-p.

    Greedy ignores top-k/top-p: the argmax always survives truncation.
    """
    z_NxV = logits_NxV.astype(jnp.float32) / temperature
    if noise_NxV is None:
        return jnp.argmax(z_NxV, axis=-1).astype(jnp.int32)
    z_NxV = truncate_logits(z_NxV, top_k, top_p)
    return jnp.argmax(z_NxV + noise_NxV, axis=-1).astype(jnp.int32)


def token_stats(
    logits_NxV: jax.Array, token_N: jax.Array, temperature: float, with_entropy: bool
) -> tuple[jax.Array, jax.Array | None]:
    """(log-prob of token_N, entropy or None) under the full softmax(logits / temperature), f32."""
    z_NxV = logits_NxV.astype(jnp.float32) / temperature
    lse_N = jax.nn.logsumexp(z_NxV, axis=-1)
    picked_N = jnp.take_along_axis(z_NxV, token_N[:, None], axis=-1)[:, 0]
    logp_N = picked_N - lse_N
    if not with_entropy:
        return logp_N, None
    logq_NxV = z_NxV - lse_N[:, None]
    entropy_N = -jnp.sum(jnp.exp(logq_NxV) * logq_NxV, axis=-1)
    return logp_N, entropy_N
