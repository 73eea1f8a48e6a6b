"""Format rewards: the strict R1 format and the tag count, each with a host and a jittable form.

The host forms read text (`text.parsing.strict_format_ok`); the jittable forms read the tag *tokens*,
which the toy tokenizer always produces for the literal tags. A policy that spells a tag out of
smaller pieces writes text that the host form sees as a tag and the token form does not; the strict
form refuses such completions on the host (any tag text must be the whole block structure).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from r1jax.rewards.registry import Reward, register
from r1jax.rewards.token_tables import VocabTables
from r1jax.text.parsing import strict_format_ok

_TAGS = ("<think>", "</think>", "<answer>", "</answer>")


def _content(tokens_NxT: jax.Array, mask_NxT: jax.Array, vt: VocabTables) -> jax.Array:
    return mask_NxT & (tokens_NxT != vt.eos_id)


def strict_format_tokens(tokens_NxT: jax.Array, mask_NxT: jax.Array, vt: VocabTables) -> jax.Array:
    """1.0 where the tokens are exactly: space* <think> ... </think> space* <answer> x+ </answer> space*."""
    live = _content(tokens_NxT, mask_NxT, vt)
    t = tokens_NxT.shape[1]
    idx = jnp.arange(t)[None, :]
    space = jnp.asarray(vt.is_space_V)[tokens_NxT]
    hits = [live & (tokens_NxT == i) for i in vt.tag_ids]
    once = jnp.all(jnp.stack([h.sum(axis=1) == 1 for h in hits]), axis=0)
    pos = [jnp.argmax(h, axis=1)[:, None] for h in hits]
    ordered = (pos[0] < pos[1]) & (pos[1] < pos[2]) & (pos[2] < pos[3])
    solid = live & ~space
    before = (solid & (idx < pos[0])).any(axis=1, keepdims=True)
    between = (solid & (idx > pos[1]) & (idx < pos[2])).any(axis=1, keepdims=True)
    answer = (solid & (idx > pos[2]) & (idx < pos[3])).any(axis=1, keepdims=True)
    after = (solid & (idx > pos[3])).any(axis=1, keepdims=True)
    ok = ordered & ~before & ~between & answer & ~after
    return (once & ok[:, 0]).astype(jnp.float32)


@register("format")
def strict_format() -> Reward:
    # range: [0, 1]  (1 = exactly one think block, then exactly one non-empty answer block, nothing after)
    def host(completions, examples):
        del examples
        return np.array([float(strict_format_ok(c)) for c in completions], np.float32)

    def jax_fn(tokens, mask, targets, vt):
        del targets
        return strict_format_tokens(tokens, mask, vt)

    return Reward("format", host, 0.0, 1.0, jax_fn=jax_fn)


@register("tag_count")
def tag_count() -> Reward:
    # range: [0, 1]  (0.25 for each of the four tags that appears exactly once)
    def host(completions, examples):
        del examples
        return np.array(
            [0.25 * sum(c.count(tag) == 1 for tag in _TAGS) for c in completions], np.float32
        )

    def jax_fn(tokens, mask, targets, vt):
        del targets
        live = _content(tokens, mask, vt)
        per_tag = [((live & (tokens == i)).sum(axis=1) == 1) for i in vt.tag_ids]
        return 0.25 * jnp.stack(per_tag).astype(jnp.float32).sum(axis=0)

    return Reward("tag_count", host, 0.0, 1.0, jax_fn=jax_fn)
