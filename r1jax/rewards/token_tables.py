"""Per-vocabulary lookup tables that let rewards run in `jax.numpy` on token ids (the fused step).

Built once on the host from the tokenizer: which ids are the R1 tags, which pieces are pure
whitespace, and which pieces are a single decimal digit (with optional leading whitespace). A jittable
reward reads these tables instead of decoding text.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from r1jax.tokenizers.sentencepiece import R1_TAGS


@dataclasses.dataclass(frozen=True)
class VocabTables:
    """Static tables over the model's vocabulary (size V)."""

    tag_ids: tuple[int, int, int, int]  # <think>, </think>, <answer>, </answer>
    eos_id: int
    is_space_V: np.ndarray  # bool: the piece decodes to whitespace only (or to nothing: specials)
    digit_V: np.ndarray  # int32: 0..9 for a (whitespace +) single digit piece, else -1


def build(tokenizer, vocab_size: int) -> VocabTables:
    """Tables for `tokenizer`, padded to the model's `vocab_size` (extra ids: not space, not digit)."""
    ids = [tokenizer.tag_id(t) for t in R1_TAGS]
    if any(i is None for i in ids):
        raise ValueError(
            f"the tokenizer lacks single-piece R1 tags {R1_TAGS}; jittable format rewards need them."
        )
    is_space = np.zeros(vocab_size, bool)
    digit = np.full(vocab_size, -1, np.int32)
    specials = {tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id}
    for i in range(min(tokenizer.vocab_size, vocab_size)):
        if i in specials:
            is_space[i] = True  # decode drops them: to the host forms they are not there at all
            continue
        text = tokenizer.decode([i])
        core = text.strip()  # Python's whitespace, as the host forms' strip() and split() use
        if text and not core:
            is_space[i] = True
        elif len(core) == 1 and core.isdigit() and core.isascii():
            digit[i] = int(core)
    return VocabTables(tuple(ids), tokenizer.eos_id, is_space, digit)
