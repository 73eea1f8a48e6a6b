"""Prompt batches for RL: a seeded epoch order over the task's train split, tokenized and left padded.

The order is a pure function of (seed, epoch), so the data position (how many prompts have been
consumed) is all a checkpoint needs to resume without repeating or skipping a prompt. Each process
takes its own contiguous slice of every global batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from r1jax.data import templates
from r1jax.sampler import pad_prompts


def encode_prompt(tokenizer: Any, template: str, question: str) -> list[int]:
    """BOS (when the tokenizer has one and adds it) + the rendered template.

    A Hugging Face tokenizer's `add_bos` follows transformers (`tokenizer(text)`): Llama models
    start with BOS, Qwen2 models have none. template "chat" renders the model's own chat template
    (a Hugging Face tokenizer's `encode_chat`) with the R1 instruction as the system message; it
    carries its own BOS.
    """
    if template == "chat":
        from r1jax.hf_tokenizer import r1_messages

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
