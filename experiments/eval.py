"""Evaluate a checkpoint with the R1 protocol (pass@1 over k samples at T 0.6 / top-p 0.95, cons@k).

Command:
    python -m r1jax.main --config=experiments/eval.py --config.checkpoint=/tmp/r1jax/base \
        --config.task=countdown --workdir=/tmp/r1jax/eval_base

Expected on a 2-core CPU: about a minute for the toy model on the 217 Countdown test problems
x 8 samples. `:tiny` evaluates 4 problems x 2 samples (its own test).
"""

from r1jax import config_base


def get_config(arg=None):
    a = config_base.parse_arg(arg, tiny=False)
    c = config_base.eval_stage()
    if a.tiny:
        c.num_problems = 4
        c.samples = 2
        c.max_new_tokens = 24
        c.batch_prompts = 4
    return c
