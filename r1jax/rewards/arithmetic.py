"""Exact-answer accuracy for integer answers (the arithmetic task), with host and jittable forms.

The answer is the content of the last complete `<answer>` block with all whitespace removed; it must
equal the decimal digits of the ground-truth integer (non-negative). The token form applies the same
rule to the tag, whitespace and digit tokens, so both forms agree on every completion whose tags are
tag tokens; that lets the fused GRPO step check arithmetic without leaving the XLA program.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from r1jax.rewards.registry import Reward, register
from r1jax.text.parsing import answer_block

MAX_DIGITS = 12


def _truth(example) -> int:
    gt = example["ground_truth"]
    return int(gt["answer"]) if isinstance(gt, dict) and "answer" in gt else int(example["answer"])


def host_score(completion: str, truth: int) -> float:
    block = answer_block(completion)
    if block is None:
        return 0.0
    return float("".join(block.split()) == str(truth))


def targets(examples) -> dict:
    """Per-example digit arrays for the token form: digits_NxD (-1 padded) and n_digits_N."""
    digits = np.full((len(examples), MAX_DIGITS), -1, np.int32)
    n = np.zeros(len(examples), np.int32)
    for i, ex in enumerate(examples):
        s = str(_truth(ex))
        if not s.isdigit() or len(s) > MAX_DIGITS:
            raise ValueError(
                f"arithmetic_accuracy needs a non-negative answer of <= {MAX_DIGITS} digits, got {s}"
            )
        digits[i, : len(s)] = [int(c) for c in s]
        n[i] = len(s)
    return {"digits_NxD": digits, "n_digits_N": n}


def token_score(tokens_NxT, mask_NxT, tgt: dict, vt) -> jnp.ndarray:
    live = mask_NxT & (tokens_NxT != vt.eos_id)
    n, t = tokens_NxT.shape
    idx = jnp.arange(t)[None, :]
    close = live & (tokens_NxT == vt.tag_ids[3])
    has_close = close.any(axis=1, keepdims=True)
    pos_close = jnp.where(has_close, t - 1 - jnp.argmax(close[:, ::-1], axis=1)[:, None], -1)
    opens = live & (tokens_NxT == vt.tag_ids[2]) & (idx < pos_close)
    has_open = opens.any(axis=1, keepdims=True)
    pos_open = t - 1 - jnp.argmax(opens[:, ::-1], axis=1)[:, None]
    inside = live & (idx > pos_open) & (idx < pos_close)
    space = jnp.asarray(vt.is_space_V)[tokens_NxT]
    digit = jnp.asarray(vt.digit_V)[tokens_NxT]
    solid = inside & ~space
    all_digits = ~(solid & (digit < 0)).any(axis=1)
    rank = jnp.cumsum(solid, axis=1) - 1
    d = tgt["digits_NxD"].shape[1]
    slot = jnp.where(solid & (rank < d), rank, d)  # d = a dump column, cut off below
    seq = jnp.full((n, d + 1), -1, jnp.int32).at[jnp.arange(n)[:, None], slot].set(digit)[:, :d]
    same = (seq == tgt["digits_NxD"]).all(axis=1) & (solid.sum(axis=1) == tgt["n_digits_N"])
    ok = has_close[:, 0] & has_open[:, 0] & all_digits & same
    return ok.astype(jnp.float32)


@register("arithmetic_accuracy")
def arithmetic_accuracy() -> Reward:
    # range: [0, 1]
    def host(completions, examples):
        return np.array(
            [host_score(c, _truth(e)) for c, e in zip(completions, examples)], np.float32
        )

    return Reward(
        "arithmetic_accuracy",
        host,
        0.0,
        1.0,
        jax_fn=token_score,
        targets_fn=lambda examples, tokenizer=None: targets(examples),
    )
