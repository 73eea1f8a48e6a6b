"""A reward-model stage directory with random weights: for notebooks, tests and benchmarks that need
a `reward_model(path=...)` reward without training one (what the reward_model stage publishes:
checkpoint, tokenizer, model config, rm_info.json)."""

from __future__ import annotations

import json
import os
from typing import Any

from r1jax.data import corpus, general_task
from r1jax.model import ModelConfig, reward_head
from r1jax.parallel import sharding
from r1jax.tokenizers import sentencepiece as tok_lib
from r1jax.train.checkpoint import Checkpointer


def toy_tokenizer(vocab: int = 400) -> tok_lib.SentencePieceTokenizer:
    """A toy sentencepiece tokenizer over the reasoning corpus and the general task's examples."""
    texts = corpus.texts(0, 0, 200, corpus.CorpusConfig())
    kinds = general_task.ALL_KINDS
    examples = general_task.generate_splits(0, 100, 0, kinds=kinds)["train"]
    texts += [e["question"] + " " + e["answer"] for e in examples]
    return tok_lib.train(texts, vocab)


def random_rm_dir(
    d: str,
    model_cfg: ModelConfig,
    tok: Any,
    max_len: int = 256,
    on: str = "all",
    seed: int = 11,
    template: str = "r1_zero",
) -> str:
    """Writes a reward model of `model_cfg`'s shape (vocabulary: `tok`'s) with random weights to `d`."""
    cfg = ModelConfig(**dict(model_cfg.to_dict(), vocab_size=tok.vocab_size, max_len=max_len))
    mesh = sharding.make_mesh((-1, 1, 1))
    _, params, _ = reward_head.create(cfg, seed, mesh, sharding.DEFAULT_RULES)
    ck = Checkpointer(os.path.join(d, "checkpoints"), ("params",), async_save=False)
    ck.save(1, {"params": params}, {"step": 1})
    ck.close()
    tok.save(os.path.join(d, "tokenizer.model"))
    with open(os.path.join(d, "model_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg.to_dict(), f)
    with open(os.path.join(d, "rm_info.json"), "w", encoding="utf-8") as f:
        json.dump({"aspect": "helpfulness", "on": on, "template": template}, f)
    return d
