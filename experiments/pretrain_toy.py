"""Pretrain the toy base model (~1M parameters) on the generated Countdown + arithmetic corpus.

Command:
    python -m r1jax.main --config=experiments/pretrain_toy.py --workdir=/tmp/r1jax/pretrain

Expected on a 2-core CPU: about 12 minutes for 3000 steps (32 rows x 256 tokens); the loss falls
from ~6.2 to ~0.6, and the base model then solves roughly 25-40 % of held-out Countdown problems
and a similar share of arithmetic problems (sampled pass@1; see README for the measured numbers).
`:tiny` shrinks everything so the file is its own test (a few seconds).
"""

from r1jax import config_base


def get_config(arg=None):
    a = config_base.parse_arg(arg, tiny=False, steps=3000)
    c = config_base.pretrain()
    c.steps = a.steps
    c.optimizer.lr = 2e-3
    c.optimizer.warmup_steps = 100
    c.checkpoint.every_steps = 500
    if a.tiny:
        c.model = config_base.model("test")
        c.tokenizer.train_docs = 300
        c.tokenizer.vocab_size = 400
        c.data.seq_len = 64
        c.data.batch_size = 8
        c.steps = a.steps if a.steps != 3000 else 30
        c.optimizer.warmup_steps = 5
        c.checkpoint.every_steps = 10
    return c
