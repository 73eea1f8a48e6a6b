"""Choosing one token per row from logits: greedy, temperature, top-k, top-p; log-probs, entropy.

Letters: N rows, V vocab, C candidates (V, or top_k), M blocks of W = _BLOCK candidates.

Sampling is by inverse CDF with ONE uniform per row per step: the token is the first whose cumulative
probability exceeds `u * total`. Without truncation the tokens are in vocabulary order; with top-k or
top-p they are the kept candidates in decreasing order of logit (ties: lower id first), so an
excluded token is never even a candidate. The uniforms of all steps are one draw from the key
(`draw_uniforms`), so a slow reference loop can replay exactly the draws of the jitted loop.

Why not Gumbel-max (`argmax(z + g)`)? It needs N x V random numbers and two logs per element per
step; on the benchmark's CPU that cost ~1.2 ms per step, a quarter of the whole step budget, against
~0.05 ms here. For the same reason argmax is a max plus a first-index min (XLA:CPU's variadic argmax
reduce is ~5x slower), and prefix sums are blocked (a flat cumsum over V lowers to a quadratic
reduce_window).

The log-prob reported for the trainer is always under the FULL distribution at the sampling
temperature (GRPO's old-policy ratio needs that, not the truncated one).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

_BLOCK = 16  # W: prefix sums are taken over M = C / W block totals, then inside one block


def draw_uniforms(key: jax.Array, steps: int, n: int) -> jax.Array:
    """The uniforms [steps, n] in [0, 1): row t is what decode step t (0 = first token) uses.

    Drawn once before the loop: on XLA:CPU each threefry call is a small rolled while loop, and
    two of them per step (fold_in + uniform) more than doubled the decode step's op count.
    """
    return jax.random.uniform(key, (steps, n), jnp.float32)


def first_argmax(x_NxC: jax.Array) -> jax.Array:
    """int32 [N]: index of the first maximum (as argmax), as two plain reductions."""
    c = x_NxC.shape[-1]
    top_N = jnp.max(x_NxC, axis=-1)
    iota = jnp.arange(c, dtype=jnp.int32)[None, :]
    return jnp.min(jnp.where(x_NxC == top_N[:, None], iota, c), axis=-1)


def count_prefix_below(p_NxC: jax.Array, x_N: jax.Array, strict: bool) -> jax.Array:
    """int32 [N]: how many inclusive prefix sums of p (>= 0) are < x (strict) or <= x.

    Two levels: prefix sums of the M block totals pick the block, then sums inside that block.
    """
    n, c = p_NxC.shape
    w = _BLOCK
    pad = -c % w
    if pad:
        p_NxC = jnp.concatenate([p_NxC, jnp.zeros((n, pad), p_NxC.dtype)], axis=1)
    m = (c + pad) // w
    below = (lambda s, x: s < x) if strict else (lambda s, x: s <= x)
    blocks_NxMxW = p_NxC.reshape(n, m, w)
    cum_NxM = jnp.cumsum(jnp.sum(blocks_NxMxW, axis=-1), axis=-1)
    full_N = jnp.sum(below(cum_NxM, x_N[:, None]), axis=-1, dtype=jnp.int32)  # whole blocks
    b_N = jnp.minimum(full_N, m - 1)
    start_N = jnp.where(b_N > 0, jnp.take_along_axis(cum_NxM, (b_N - 1)[:, None], 1)[:, 0], 0.0)
    inner_NxW = jnp.take_along_axis(blocks_NxMxW, b_N[:, None, None], axis=1)[:, 0]
    cum_NxW = start_N[:, None] + jnp.cumsum(inner_NxW, axis=-1)
    part_N = jnp.sum(below(cum_NxW, x_N[:, None]), axis=-1, dtype=jnp.int32)
    return jnp.minimum(jnp.where(full_N == m, m * w, b_N * w + part_N), c)


def choose_tokens(
    logits_NxV: jax.Array,
    u_N: jax.Array | None,
    temperature: float,
    top_k: int = 0,
    top_p: float = 1.0,
) -> jax.Array:
    """int32 [N]: the sampled token for uniforms u_N (None = greedy: the first argmax).

    Greedy ignores top-k/top-p: the argmax always survives truncation.
    """
    z_NxV = logits_NxV.astype(jnp.float32) / temperature
    if u_N is None:
        return first_argmax(z_NxV)
    v = z_NxV.shape[-1]
    if top_k <= 0 and top_p >= 1.0:  # static: no sort in the common case
        p_NxV = jnp.exp(z_NxV - jnp.max(z_NxV, axis=-1, keepdims=True))
        total_N = jnp.sum(p_NxV, axis=-1)
        return jnp.minimum(count_prefix_below(p_NxV, u_N * total_N, strict=False), v - 1)
    # (1) Candidates in decreasing order: the top k, or the whole vocabulary for top-p alone.
    vals_NxC, ids_NxC = jax.lax.top_k(z_NxV, min(top_k, v) if top_k > 0 else v)
    c = vals_NxC.shape[-1]
    p_NxC = jnp.exp(vals_NxC - vals_NxC[:, :1])
    # (2) top-p keeps a candidate while the mass strictly before it is < top_p (the first is kept).
    keep_N = jnp.full(u_N.shape, c, jnp.int32)
    if top_p < 1.0:
        mass_N = top_p * jnp.sum(p_NxC, axis=-1)
        keep_N = jnp.minimum(count_prefix_below(p_NxC, mass_N, strict=True) + 1, c)
    kept_NxC = jnp.where(jnp.arange(c)[None, :] < keep_N[:, None], p_NxC, 0.0)
    # (3) Inverse CDF over the kept candidates; clamping to the last kept one keeps rounding safe.
    pick_N = count_prefix_below(kept_NxC, u_N * jnp.sum(kept_NxC, axis=-1), strict=False)
    pick_N = jnp.minimum(pick_N, keep_N - 1)
    return jnp.take_along_axis(ids_NxC, pick_N[:, None], axis=-1)[:, 0].astype(jnp.int32)


def token_stats(
    logits_NxV: jax.Array, token_N: jax.Array, temperature: float, with_entropy: bool
) -> tuple[jax.Array, jax.Array | None]:
    """(log-prob of token_N, entropy or None) under the full softmax(logits / temperature), f32."""
    z_NxV = logits_NxV.astype(jnp.float32) / temperature
    top_N = jnp.max(z_NxV, axis=-1)
    e_NxV = jnp.exp(z_NxV - top_N[:, None])
    sum_N = jnp.sum(e_NxV, axis=-1)
    lse_N = top_N + jnp.log(sum_N)
    logp_N = jnp.take_along_axis(z_NxV, token_N[:, None], axis=-1)[:, 0] - lse_N
    if not with_entropy:
        return logp_N, None
    # H = lse - E[z] = lse - sum(e * z) / sum(e)
    entropy_N = lse_N - jnp.sum(e_NxV * z_NxV, axis=-1) / sum_N
    return logp_N, entropy_N
