"""The training forward of G completions per prompt, with the prompt computed and stored once.

Letters: B prompts, G completions per prompt, N = B * G, P prompt length (left padded), T completion
tokens fed, D d_model, K kv heads, Q query heads per kv head, H head dim.

GRPO scores G completions of each prompt. Running the N full sequences recomputes every prompt G
times; a KV cache repeated G times (the previous shared-prefix path) avoids the recompute but still
holds G copies of the prompt's keys and values, and its cache writes made the program twice as slow
to compile. Here every layer runs two streams: the B prompts attend among themselves as usual, and
the N completions attend to their prompt's keys/values (one copy, [B, P, K, H], read by the G rows
together: the G * T * Q queries of a kv head form one matmul) and, causally, to their own. One
softmax spans both parts. Gradients reach the shared prompt activations summed over the G rows, so
this equals the full-sequence forward (tests check values and gradients). Remat and scan over
layers apply as in the model's own forward.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from r1jax.model.layers import scan_layers
from r1jax.model.rope import apply_rope, rope_inv_freq
from r1jax.model.transformer import _NEG, Attention, Block, _matmul, causal_blocks
from r1jax.parallel.sharding import constrain


def _completion_attention(attn: Attention, q_c, k_c, v_c, k_p, v_p, prompt_valid_BxP, g: int):
    """Completion queries over [their prompt's keys ; their own earlier keys]: [N, T, K*Q, H].

    Long completions run block by block (`transformer.causal_blocks`): queries [s, e) against the
    prompt and their own keys [0, e), which skips about half of the [T, T] score work and memory.
    """
    cfg = attn.cfg
    n, t, _, h = q_c.shape
    b, k_heads = n // g, cfg.n_kv_heads
    q = q_c.reshape(b, g, t, k_heads, -1, h)  # [B, G, T, K, Q, H]
    k_own = k_c.reshape(b, g, t, k_heads, h).astype(q.dtype)
    v_own = v_c.reshape(b, g, t, k_heads, h)
    outs = [
        _completion_block(
            cfg, q[:, :, s:e], k_own[:, :, :e], v_own[:, :, :e], k_p, v_p, prompt_valid_BxP, s
        )
        for s, e in causal_blocks(t)  # one block below 2 x _CAUSAL_BLOCK
    ]
    out = outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=2)
    return out.reshape(n, t, -1, h)


def _completion_block(cfg, q, k_own, v_own, k_p, v_p, prompt_valid_BxP, s: int) -> jax.Array:
    """Queries s.. of q [B, G, Tq, K, Q, H] over the prompt and own keys [0, S): [B, G, Tq, K, Q, H]."""
    h = q.shape[-1]
    tq, sk = q.shape[2], k_own.shape[2]
    s_p = jnp.einsum("bgtkqh,bpkh->bgkqtp", q, k_p.astype(q.dtype)).astype(jnp.float32)
    s_c = jnp.einsum("bgtkqh,bgskh->bgkqts", q, k_own).astype(jnp.float32)
    s_p = jnp.where(prompt_valid_BxP[:, None, None, None, None, :], s_p / math.sqrt(h), _NEG)
    causal = jnp.arange(sk)[None, :] <= s + jnp.arange(tq)[:, None]
    s_c = jnp.where(causal, s_c / math.sqrt(h), _NEG)
    # one softmax over both parts (the max only shifts: it carries no gradient)
    top = jax.lax.stop_gradient(jnp.maximum(jnp.max(s_p, axis=-1), jnp.max(s_c, axis=-1)))
    e_p, e_c = jnp.exp(s_p - top[..., None]), jnp.exp(s_c - top[..., None])
    inv = 1.0 / (jnp.sum(e_p, axis=-1) + jnp.sum(e_c, axis=-1))
    dt = cfg.compute_dtype
    p_p, p_c = (e_p * inv[..., None]).astype(dt), (e_c * inv[..., None]).astype(dt)
    out = jnp.einsum("bgkqtp,bpkh->bgtkqh", p_p, v_p.astype(dt))
    return out + jnp.einsum("bgkqts,bgskh->bgtkqh", p_c, v_own.astype(dt))


def _block(layer: Block, x_1xRxD: jax.Array, ctx: tuple) -> jax.Array:
    """One block on the R = B * P + N * T rows of both streams (prompts first, then completions).

    Everything but attention is row-wise, so it runs once on all rows (half the ops of two
    separate streams: XLA's compile time follows the op count); attention splits the rows.
    """
    pos_1xR, valid_p, inv_freq, (b, p, n, t) = ctx
    attn = layer.attn
    h = layer.attn_norm(x_1xRxD)
    q = apply_rope(attn._proj(h, "q"), pos_1xR, inv_freq)
    k = apply_rope(attn._proj(h, "k"), pos_1xR, inv_freq)
    v = attn._proj(h, "v")
    bp = b * p
    prompt = lambda x: x[0, :bp].reshape(b, p, *x.shape[2:])  # noqa: E731
    comp = lambda x: x[0, bp:].reshape(n, t, *x.shape[2:])  # noqa: E731
    k_p, v_p = prompt(k), prompt(v)
    out_p = attn._core(prompt(q), k_p, v_p, jnp.arange(p), valid_p)
    out_c = _completion_attention(attn, comp(q), comp(k), comp(v), k_p, v_p, valid_p, n // b)
    out = jnp.concatenate(
        [out_p.reshape(1, bp, *out_p.shape[2:]), out_c.reshape(1, n * t, *out_c.shape[2:])], axis=1
    )
    x = x_1xRxD + _matmul(out, attn.o_proj[...].astype(attn.cfg.compute_dtype), n_in=2)
    x = x + layer.mlp(layer.mlp_norm(x))
    return constrain(x, (None, "batch", "embed"))  # rows over the data axes, as the batch


def shared_prefix_hidden(
    graphdef: nnx.GraphDef,
    params: dict,
    prompt_BxP: jax.Array,
    prompt_valid_BxP: jax.Array,
    tokens_NxT: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Final hidden states (after the final norm) of the prompts [B, P, D] and of the N = B * G
    continuations [N, T, D]; row b * G + g continues prompt b right after its last real token."""
    model = nnx.merge(graphdef, params)
    cfg = model.cfg
    b, p = prompt_BxP.shape
    n, t = tokens_NxT.shape
    g = n // b
    steps_BxP = jnp.cumsum(prompt_valid_BxP.astype(jnp.int32), axis=1)
    pos_p = jnp.maximum(steps_BxP - 1, 0)
    pos_c = jnp.repeat(steps_BxP[:, -1:], g, axis=0) + jnp.arange(t)[None, :]
    pos_1xR = jnp.concatenate([pos_p.reshape(1, -1), pos_c.reshape(1, -1)], axis=1)
    ctx = (pos_1xR, prompt_valid_BxP, rope_inv_freq(cfg), (b, p, n, t))
    ids_1xR = jnp.concatenate([prompt_BxP.reshape(1, -1), tokens_NxT.reshape(1, -1)], axis=1)
    # the table's feature dim gathered first (as sharding.embed_lookup): rows stay data-parallel
    table = constrain(model.embed[...], ("vocab", None))
    x = jnp.take(table, ids_1xR, axis=0).astype(cfg.compute_dtype)
    x = constrain(x, (None, "batch", "embed"))
    policy = cfg.remat_policy if cfg.remat else None
    call = lambda layer, x: _block(layer, x, ctx)  # noqa: E731
    if cfg.scan_layers:
        x, _ = scan_layers(
            model.layers, lambda layer, x, _: (call(layer, x), None), x, None, policy
        )
    else:
        if policy is not None:
            call = nnx.remat(call, policy=getattr(jax.checkpoint_policies, policy))
        for layer in model.layers:
            x = call(layer, x)
    x = model.final_norm(x)
    return x[0, : b * p].reshape(b, p, -1), x[0, b * p :].reshape(n, t, -1)
