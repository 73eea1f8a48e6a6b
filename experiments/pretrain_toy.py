"""Pretrain the toy base model (~1M parameters) on the generated Countdown + arithmetic corpus.

Command:
    python -m r1jax.main --config=experiments/pretrain_toy.py --workdir=/tmp/r1jax/pretrain

Expected on a 2-core CPU: about 20-25 minutes for 1000 steps (32 rows x 256 tokens, ~1.3 s a
step); the loss falls from ~6.2 to ~0.3, and the base model then solves a minority of held-out
Countdown and arithmetic problems (sampled pass@1; README.md has the measured numbers).
`:tiny` shrinks everything so the file is its own test (a few seconds).
"""

from r1jax import config_base


def get_config(arg=None):
    a = config_base.parse_arg(arg, tiny=False, steps=1000)
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
        c.steps = a.steps if a.steps != 1000 else 30
        c.optimizer.warmup_steps = 5
        c.checkpoint.every_steps = 10
    return c
