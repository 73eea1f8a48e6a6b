"""Pretrain the toy base model (~1M parameters) on the generated Countdown + arithmetic corpus.

Command:
    python -m r1jax.main --config=experiments/pretrain_toy.py --workdir=/tmp/r1jax/pretrain

Measured on a 2-core CPU (2026-11-26, README.md): 0.92M parameters, 1000 steps of 32 rows x 256
tokens in 21 minutes (about 1.0 s a step on an idle machine); the loss falls from 6.75 to 0.24, and
the base model reaches held-out sampled pass@1 0.294 on Countdown and 0.068 on arithmetic.
`:tiny` shrinks everything so the file is its own test (a few seconds). `:general=0.3` adds direct
answers to the general tasks to the corpus (data/corpus.py; the pipeline's base uses it so that
its later stages can train the general tasks).
"""

from r1jax import config_base


def get_config(arg=None):
    a = config_base.parse_arg(arg, tiny=False, steps=1000, general=0.0)
    c = config_base.pretrain()
    c.steps = a.steps
    c.corpus.general_weight = a.general
    c.optimizer.lr = 2e-3
    c.optimizer.warmup_steps = 100
    c.checkpoint.every_steps = 500
    if a.tiny:
        c.model = config_base.model("test")
        c.tokenizer.train_docs = 300
        c.tokenizer.vocab_size = 400
        c.data.seq_len = 64
        c.data.batch_size = 8
        c.steps = a.steps if a.steps != 1000 else 30
        c.optimizer.warmup_steps = 5
        c.checkpoint.every_steps = 10
    return c
