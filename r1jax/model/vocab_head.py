"""Log-probs (and entropy) of target tokens from final hidden states, one vocabulary chunk at a time.

Letters: M rows (tokens), D d_model, V vocab, C columns per chunk, J = ceil(V / C) chunks.

The plain path materialises float32 logits [M, V], their softmax and, in the backward pass, their
gradient: at Qwen's V = 151,936 that is 0.6 MB per token, several GB for one micro-batch, only to
read one entry per row. Here a `lax.scan` over vocabulary chunks keeps a running max, sum of exps,
target logit and (for the entropy) sum of exp * logit per row, so at most one [M, C] chunk of
logits exists at a time. The backward pass (a custom VJP) recomputes each chunk's logits from the
saved log-sum-exp and accumulates the hidden-state and head gradients chunk by chunk: 3 matmuls
per chunk, the same FLOPs as the plain path's forward + backward.

Chunks are C = ceil(V / J) columns; the last one starts at V - C and ignores the columns an earlier
chunk already counted, so no weight is ever padded or copied. The entropy is a diagnostic: it gets
no gradient.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

_NEG = -1e30  # finite: exp underflows to 0 and 0 * _NEG stays finite in the entropy sum


def chunking(v: int, chunk: int) -> tuple[int, int]:
    """(J chunks, C columns each) for a vocabulary of v and at most `chunk` columns per chunk."""
    j = max(1, math.ceil(v / chunk))
    return j, math.ceil(v / j)


def _chunk_logits(h_MxD, w_DxV, j, c: int, temperature: float):
    """(z [M, C] float32 at the temperature, global column ids [C], fresh [C]) of chunk j."""
    v = w_DxV.shape[1]
    start = jnp.minimum(j * c, v - c)
    w_DxC = jax.lax.dynamic_slice_in_dim(w_DxV, start, c, axis=1)
    z = jnp.dot(h_MxD, w_DxC, preferred_element_type=jnp.float32) / temperature
    col_C = start + jnp.arange(c)
    return z, col_C, col_C >= j * c, w_DxC, start


def _forward(h_MxD, w_DxV, targets_M, temperature, chunk, with_entropy):
    m = h_MxD.shape[0]
    n_chunks, c = chunking(w_DxV.shape[1], chunk)

    def body(carry, j):
        top, total, picked, ez_sum = carry
        z, col, fresh, _, _ = _chunk_logits(h_MxD, w_DxV, j, c, temperature)
        z = jnp.where(fresh[None, :], z, _NEG)
        new_top = jnp.maximum(top, jnp.max(z, axis=-1))
        scale = jnp.exp(top - new_top)
        e = jnp.exp(z - new_top[:, None])
        total = total * scale + jnp.sum(e, axis=-1)
        if with_entropy:
            ez_sum = ez_sum * scale + jnp.sum(e * z, axis=-1)
        hit = (col[None, :] == targets_M[:, None]) & fresh[None, :]
        picked = picked + jnp.sum(jnp.where(hit, z, 0.0), axis=-1)
        return (new_top, total, picked, ez_sum), None

    zeros = jnp.zeros((m,), jnp.float32)
    init = (jnp.full((m,), -jnp.inf, jnp.float32), zeros, zeros, zeros)
    (top, total, picked, ez_sum), _ = jax.lax.scan(body, init, jnp.arange(n_chunks))
    lse_M = top + jnp.log(total)
    entropy_M = lse_M - ez_sum / total if with_entropy else zeros
    return (picked - lse_M, entropy_M), lse_M


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _logprobs(h_MxD, w_DxV, targets_M, temperature, chunk, with_entropy):
    return _forward(h_MxD, w_DxV, targets_M, temperature, chunk, with_entropy)[0]


def _fwd(h_MxD, w_DxV, targets_M, temperature, chunk, with_entropy):
    out, lse_M = _forward(h_MxD, w_DxV, targets_M, temperature, chunk, with_entropy)
    return out, (h_MxD, w_DxV, targets_M, lse_M)


def _bwd(temperature, chunk, with_entropy, res, cotangents):
    """d logp / d z = (onehot(target) - softmax(z)) / temperature, chunk by chunk."""
    h_MxD, w_DxV, targets_M, lse_M = res
    g_M = cotangents[0]  # the entropy's cotangent is dropped: it is a diagnostic
    n_chunks, c = chunking(w_DxV.shape[1], chunk)

    def body(carry, j):
        dh_MxD, dw_DxV = carry
        z, col, fresh, w_DxC, start = _chunk_logits(h_MxD, w_DxV, j, c, temperature)
        p = jnp.where(fresh[None, :], jnp.exp(z - lse_M[:, None]), 0.0)
        hit = ((col[None, :] == targets_M[:, None]) & fresh[None, :]).astype(jnp.float32)
        dz = (g_M[:, None] * (hit - p) / temperature).astype(h_MxD.dtype)  # stale columns: 0
        dh_MxD = dh_MxD + jnp.dot(dz, w_DxC.T, preferred_element_type=jnp.float32)
        dw_DxC = jnp.dot(h_MxD.T, dz, preferred_element_type=jnp.float32)
        old = jax.lax.dynamic_slice_in_dim(dw_DxV, start, c, axis=1)
        dw_DxV = jax.lax.dynamic_update_slice_in_dim(dw_DxV, old + dw_DxC, start, axis=1)
        return (dh_MxD, dw_DxV), None

    init = (jnp.zeros(h_MxD.shape, jnp.float32), jnp.zeros(w_DxV.shape, jnp.float32))
    (dh, dw), _ = jax.lax.scan(body, init, jnp.arange(n_chunks))
    return dh.astype(h_MxD.dtype), dw.astype(w_DxV.dtype), None


_logprobs.defvjp(_fwd, _bwd)


def chunked_token_logprobs(
    h_MxD: jax.Array,
    w_DxV: jax.Array,
    targets_M: jax.Array,
    temperature: float = 1.0,
    chunk: int = 8192,
    with_entropy: bool = False,
) -> tuple[jax.Array, jax.Array | None]:
    """(log softmax(h @ w / temperature)[target], entropy or None), float32, differentiable in h
    and w (not the entropy), with at most `chunk` vocabulary columns of logits at a time."""
    logp_M, entropy_M = _logprobs(
        h_MxD, w_DxV, targets_M.astype(jnp.int32), temperature, chunk, with_entropy
    )
    return logp_M, jax.lax.stop_gradient(entropy_M) if with_entropy else None


def chunked_logprobs_NxT(
    h_NxTxD: jax.Array,
    w_DxV: jax.Array,
    targets_NxT: jax.Array,
    temperature: float,
    chunk: int,
    with_entropy: bool,
) -> tuple[jax.Array, jax.Array | None]:
    """`chunked_token_logprobs` over [N, T] rows of hidden states: (logp_NxT, entropy_NxT or None)."""
    n, t, d = h_NxTxD.shape
    logp, ent = chunked_token_logprobs(
        h_NxTxD.reshape(n * t, d), w_DxV, targets_NxT.reshape(n * t), temperature, chunk,
        with_entropy,
    )  # fmt: skip
    return logp.reshape(n, t), None if ent is None else ent.reshape(n, t)
