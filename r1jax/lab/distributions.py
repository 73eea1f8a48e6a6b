"""The policy's whole next-token distribution at every completion position (for exact diagnostics).

Letters: B prompts, G samples each, N = B * G, P prompt length, T completion length, V vocab.

The loss only needs the log-prob of the sampled token (`policy_logprobs`); quantities such as the
exact KL between two policies at a prefix, or the expectation of an estimator's gradient over the
next token, need the full distribution. This runs the N full sequences (no shared prefix: it is a
diagnostic, not the hot path) and returns log softmax(logits / temperature) for every position.
"""

from __future__ import annotations

import contextlib
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from r1jax.lab.batch import RolloutBatch
from r1jax.lab.policy import Policy
from r1jax.model import api


@partial(jax.jit, static_argnums=(0, 5))
def _logdists(graphdef, params, prompt_BxP, valid_BxP, completion_NxT, temperature):
    b, p = prompt_BxP.shape
    n, t = completion_NxT.shape
    g = n // b
    seq = jnp.concatenate([jnp.repeat(prompt_BxP, g, axis=0), completion_NxT], axis=1)
    valid = jnp.concatenate([jnp.repeat(valid_BxP, g, axis=0), jnp.ones((n, t), bool)], axis=1)
    hidden, _ = api.apply(graphdef, params, seq, valid, return_hidden=True)
    logits_NxTxV = api.head(graphdef, params, hidden[:, p - 1 : p + t - 1])
    return jax.nn.log_softmax(logits_NxTxV.astype(jnp.float32) / temperature, axis=-1)


def token_logdists(
    policy: Policy, batch: RolloutBatch, params: dict | None = None, prompts_per_call: int = 4
) -> np.ndarray:
    """[N, T, V] float32 log-probabilities of every next token after each completion prefix,
    `prompts_per_call` prompts (with their G samples) at a time to bound memory."""
    params = policy.params if params is None else params
    out = []
    b = batch.prompt_BxP.shape[0]
    outer = not jax.sharding.get_abstract_mesh().empty
    with contextlib.nullcontext() if outer else jax.set_mesh(policy.mesh):
        with nnx.logical_axis_rules(policy.rules):
            for start in range(0, b, prompts_per_call):
                sub = batch.rows(slice(start, start + prompts_per_call))
                lp = _logdists(
                    policy.graphdef,
                    params,
                    jnp.asarray(sub.prompt_BxP),
                    jnp.asarray(sub.prompt_valid_BxP),
                    jnp.asarray(sub.completion_NxT),
                    batch.temperature,
                )
                out.append(np.asarray(lp))
    return np.concatenate(out, axis=0)
