"""Reasoning RL (R1 section 2.3.2): GRPO from the cold-start model, with the rule rewards and the
language-consistency reward.

Command (builds the cold-start model first if it is missing, and what that needs):
    python -m r1jax.main --config=experiments/reasoning_rl.py --workdir=/tmp/r1jax/reasoning_rl

The same GRPO settings as experiments/r1_zero_countdown.py (16 prompts x G 8, 192 new tokens at
temperature 1.0, beta 0.02, mu 1, AdamW 1e-4), from the sibling "cold_start_sft" instead of the base
model, with rewards countdown_accuracy (0/1) + readable_format (0.5, the cold-start pattern in place
of R1-Zero's `format`) + language_consistency (the share of English reasoning words, summed with
accuracy as in the paper); the Countdown trace diagnostics ride along with weight 0.

Measured on the 2-core CPU (2026-12-01, README.md, 3 seeds, 15 minutes each when the machine is
free): pass@1 0.523, cons@8 0.721 vs R1-Zero's 0.476 / 0.676 at the same 40 steps, but below the
cold-start model it starts from (0.561 / 0.806). `:tiny` is its own test.
"""

from r1jax import config_base


def get_config(arg=None):
    a = config_base.parse_arg(arg, tiny=False, seed=0, steps=40)
    r1_zero = config_base.sibling(__file__, "r1_zero_countdown")
    c = r1_zero.get_config(f"tiny,seed={a.seed}" if a.tiny else f"seed={a.seed}")
    cold_start = config_base.sibling(__file__, "cold_start_sft")
    c.init.checkpoint = "cold_start_sft"
    c.init.build = cold_start.get_config("tiny" if a.tiny else None)
    c.rewards = (
        "countdown_accuracy",
        "readable_format(weight=0.5)",
        "language_consistency(lang='en')",
        "countdown_honesty(weight=0)",
        "countdown_attempts(weight=0)",
    )
    c.steps = a.steps
    c.eval.every_steps = 20
    if a.tiny:
        c.steps = a.steps if a.steps != 40 else 2
        c.optimizer.lr = 1e-5
        c.eval.every_steps = 0
        c.task = config_base.task("countdown", max_number=2, max_target=8, test_percent=30)
        c.task.template = "plain"  # as the tiny cold-start SFT
    return c
