"""Per-token log-probs of completions under a policy, sharing each prompt's forward among its G samples.

Letters: B prompts, G samples per prompt, N = B * G, P prompt length (left padded), T completion
length, D d_model, V vocab.

The prompt is run once per prompt and its G completions attend to that one copy of its keys and
values (`model.prefix_forward`): gradients flow through the shared prompt activations (summed over
the G samples), so this equals running the N full sequences, at 1/G of the prompt cost and memory.
`share_prefix=False` runs the full sequences (the reference the tests compare with).

With `vocab_chunk` > 0 and V larger than it, the log-probs (and entropy) come from the final hidden
states one vocabulary chunk at a time (`model.vocab_head`): no [N, T, V] float32 logits exist, which
at Qwen's V = 151,936 would be several GB per micro-batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from r1jax.model import api
from r1jax.model.prefix_forward import shared_prefix_hidden
from r1jax.model.vocab_head import chunked_logprobs_NxT


def _from_logits(
    logits_NxTxV: jax.Array, completion_NxT: jax.Array, temperature: float, with_entropy: bool
) -> tuple[jax.Array, jax.Array | None]:
    z = logits_NxTxV.astype(jnp.float32) / temperature
    logz = jax.nn.logsumexp(z, axis=-1)
    logp = jnp.take_along_axis(z, completion_NxT[..., None], axis=-1)[..., 0] - logz
    if not with_entropy:
        return logp, None
    p = jnp.exp(z - logz[..., None])
    entropy = logz - (p * z).sum(axis=-1)
    return logp, entropy


def _from_hidden(
    graphdef: nnx.GraphDef,
    params: dict,
    hidden_NxTxD: jax.Array,
    completion_NxT: jax.Array,
    temperature: float,
    with_entropy: bool,
    vocab_chunk: int,
) -> tuple[jax.Array, jax.Array | None]:
    """The head and log-softmax: whole logits for a small vocabulary, else vocabulary chunks."""
    w_DxV = nnx.merge(graphdef, params).head_weight()
    if vocab_chunk <= 0 or w_DxV.shape[1] <= vocab_chunk:
        logits = api.head(graphdef, params, hidden_NxTxD)
        return _from_logits(logits, completion_NxT, temperature, with_entropy)
    return chunked_logprobs_NxT(
        hidden_NxTxD, w_DxV, completion_NxT, temperature, vocab_chunk, with_entropy
    )


def completion_logprobs(
    graphdef: nnx.GraphDef,
    params: dict,
    prompt_BxP: jax.Array,
    prompt_valid_BxP: jax.Array,
    completion_NxT: jax.Array,
    temperature: float = 1.0,
    with_entropy: bool = False,
    share_prefix: bool = True,
    vocab_chunk: int = 0,
) -> tuple[jax.Array, jax.Array | None]:
    """(logp_NxT, entropy_NxT or None) of the completion tokens at the given temperature."""
    b, p = prompt_BxP.shape
    n, t = completion_NxT.shape
    g = n // b
    head = lambda hidden: _from_hidden(  # noqa: E731
        graphdef, params, hidden, completion_NxT, temperature, with_entropy, vocab_chunk
    )
    if not share_prefix:
        seq = jnp.concatenate([jnp.repeat(prompt_BxP, g, axis=0), completion_NxT], axis=1)
        valid = jnp.concatenate(
            [jnp.repeat(prompt_valid_BxP, g, axis=0), jnp.ones((n, t), bool)], axis=1
        )
        hidden, _ = api.apply(graphdef, params, seq, valid, return_hidden=True)
        return head(hidden[:, p - 1 : p + t - 1])
    if t == 1:
        hidden, _ = api.apply(graphdef, params, prompt_BxP, prompt_valid_BxP, return_hidden=True)
        return head(jnp.repeat(hidden[:, -1:], g, axis=0))
    h_prompt, h_rest = shared_prefix_hidden(
        graphdef, params, prompt_BxP, prompt_valid_BxP, completion_NxT[:, :-1]
    )
    h_last = jnp.repeat(h_prompt[:, -1:], g, axis=0)  # left padding: the last slot is a real token
    return head(jnp.concatenate([h_last, h_rest], axis=1))
