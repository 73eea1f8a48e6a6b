"""Prompt batches for RL: a seeded epoch order over the task's train split, tokenized and left padded.

The order is a pure function of (seed, epoch), so the data position (how many prompts have been
consumed) is all a checkpoint needs to resume without repeating or skipping a prompt. Each process
takes its own contiguous slice of every global batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from r1jax.text import templates


def bucket_length(n: int, multiple: int = 0, minimum: int = 8, max_len: int = 0) -> int:
    """The padded length for a longest prompt of n tokens.

    multiple > 0: the next multiple of `multiple`; otherwise the next power of two >= `minimum`.
    max_len > 0 caps the bucket (a prompt longer than max_len is an error, never silently cut).
    """
    if n < 1:
        raise ValueError(f"every prompt needs at least one token (longest has {n}).")
    if max_len and n > max_len:
        raise ValueError(f"a prompt has {n} tokens, more than max_len={max_len}; shorten it.")
    if multiple > 0:
        length = -(-n // multiple) * multiple
    else:
        length = max(minimum, 1 << (n - 1).bit_length())
    return min(length, max_len) if max_len else length


def pad_prompts(
    prompts: Sequence[Sequence[int]],
    pad_id: int = 0,
    multiple: int = 0,
    minimum: int = 8,
    max_len: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Left-pads token-id lists to a bucketed length: (prompt_BxP int32, valid_BxP bool).

    Left padding keeps every row's last real token in the last column, which is where the sampler
    reads the first next-token distribution; positions come from the valid mask.
    """
    if not prompts:
        raise ValueError("pad_prompts needs at least one prompt.")
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token (got an empty one).")
    p = bucket_length(max(len(x) for x in prompts), multiple, minimum, max_len)
    prompt_BxP = np.full((len(prompts), p), pad_id, np.int32)
    valid_BxP = np.zeros((len(prompts), p), bool)
    for i, ids in enumerate(prompts):
        prompt_BxP[i, p - len(ids) :] = np.asarray(ids, np.int32)
        valid_BxP[i, p - len(ids) :] = True
    return prompt_BxP, valid_BxP


def encode_prompt(tokenizer: Any, template: str, question: str) -> list[int]:
    """BOS (when the tokenizer has one and adds it) + the rendered template.

    A Hugging Face tokenizer's `add_bos` follows transformers (`tokenizer(text)`): Llama models
    start with BOS, Qwen2 models have none. template "chat" renders the model's own chat template
    (a Hugging Face tokenizer's `encode_chat`) with the R1 instruction as the system message; it
    carries its own BOS.
    """
    if template == "chat":
        from r1jax.tokenizers.hf import r1_messages

        if not hasattr(tokenizer, "encode_chat"):
            raise ValueError("task.template='chat' needs a Hugging Face tokenizer (init.hf_dir).")
        return list(tokenizer.encode_chat(r1_messages(question)))
    ids = tokenizer.encode(templates.render(template, question))
    bos = tokenizer.bos_id if getattr(tokenizer, "add_bos", True) else None
    return ([bos] if bos is not None and bos >= 0 else []) + ids


class PromptStream:
    """Examples in a seeded order, epoch after epoch; `take(position, n)` is stateless."""

    def __init__(self, examples: Sequence[dict], seed: int):
        if not examples:
            raise ValueError("the RL train split is empty; check config.task")
        self.examples = list(examples)
        self.seed = seed
        self._orders: dict[int, np.ndarray] = {}

    def _order(self, epoch: int) -> np.ndarray:
        if epoch not in self._orders:
            self._orders = {
                epoch: np.random.default_rng([self.seed, epoch]).permutation(len(self.examples))
            }
        return self._orders[epoch]

    def take(self, position: int, n: int) -> list[dict]:
        """Examples at global positions [position, position + n)."""
        out = []
        size = len(self.examples)
        for p in range(position, position + n):
            out.append(self.examples[int(self._order(p // size)[p % size])])
        return out


def encode_batch(
    tokenizer: Any, template: str, examples: Sequence[dict], bucket: int, max_len: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Tokenized prompts of the examples, left padded to a multiple of `bucket` tokens."""
    rows = [encode_prompt(tokenizer, template, ex["question"]) for ex in examples]
    return pad_prompts(rows, tokenizer.pad_id, multiple=bucket, max_len=max_len or 0)
