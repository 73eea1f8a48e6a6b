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


def _truth(example) -> str | None:
    """The answer's digits, or None when the example has no non-negative integer answer."""
    gt = example.get("ground_truth")
    value = gt["answer"] if isinstance(gt, dict) and "answer" in gt else example.get("answer")
    try:
        n = int(value.strip()) if isinstance(value, str) else int(value)
        if isinstance(value, bool) or (not isinstance(value, str) and n != value):  # 2.5
            return None
        s = str(n)
    except (TypeError, ValueError, OverflowError):  # None, "x", inf, over 4300 digits
        return None
    return s if n >= 0 and len(s) <= MAX_DIGITS else None


def host_score(completion: str, truth: int | str | None) -> float:
    """1 when the answer block is exactly the digits of `truth`, 0 if not, NaN without a truth."""
    if truth is None:
        return float("nan")
    try:
        want = str(truth)
    except ValueError:  # an int over 4300 digits has no str() in Python >= 3.11
        return float("nan")
    block = answer_block(completion)
    if block is None:
        return 0.0
    return float("".join(block.split()) == want)


def targets(examples) -> dict:
    """Per-example digit arrays for the token form: digits_NxD (-1 padded) and n_digits_N.

    An example without a non-negative integer answer of <= MAX_DIGITS digits gets n_digits -1,
    which the token form scores NaN, as the host form does.
    """
    digits = np.full((len(examples), MAX_DIGITS), -1, np.int32)
    n = np.zeros(len(examples), np.int32)
    for i, ex in enumerate(examples):
        s = _truth(ex)
        if s is None:
            n[i] = -1
            continue
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
    return jnp.where(tgt["n_digits_N"] < 0, jnp.nan, ok.astype(jnp.float32))


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
