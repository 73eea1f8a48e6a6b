"""A tiny reward-model stage directory for tests: random weights, a trained toy tokenizer."""

from __future__ import annotations

from r1jax.lab import rm_dir


def tiny_tokenizer(vocab: int = 400):
    return rm_dir.toy_tokenizer(vocab)


def tiny_rm_dir(
    d: str, model_cfg, max_len: int = 256, on: str = "all", tok=None, seed: int = 11,
    template: str = "r1_zero",
) -> str:  # fmt: skip
    """Writes what the reward_model stage publishes (checkpoint, tokenizer, configs) into `d`."""
    tok = tok or tiny_tokenizer()
    return rm_dir.random_rm_dir(d, model_cfg, tok, max_len, on, seed, template)
