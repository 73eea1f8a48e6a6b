"""Reasoning RL (R1 section 2.3.2): GRPO from the cold-start model, with the rule rewards and the
language-consistency reward.

Command (builds the cold-start model first if it is missing, and what that needs):
    python -m r1jax.main --config=experiments/reasoning_rl.py --workdir=/tmp/r1jax/reasoning_rl

R1-Zero's GRPO settings (experiments/r1_zero_countdown.py: 16 prompts x G 8 at temperature 1.0,
beta 0.02, mu 1) from the sibling "cold_start_sft" instead of the base model, with two changes the
runs below chose: 384 new tokens (the cold-start model's readable traces ran past 192 in 30 % of
samples, and a truncated trace scores 0 on every reward) and AdamW 1e-5 (1e-4, R1-Zero's rate,
lowered pass@1 by 3.8 points in 40 steps). Rewards: countdown_accuracy (0/1) + readable_format
(0.5, the cold-start pattern in place of R1-Zero's `format`) + language_consistency (the share of
English reasoning words, summed with accuracy as in the paper); the Countdown trace diagnostics
ride along with weight 0.

Measured on the 2-core CPU (2026-12-01, README.md, 3 seeds, ~22 minutes each with two runs at
once): pass@1 0.586 +- 0.006, cons@8 0.756 +- 0.018 on the 217 test problems x 8 at 384 tokens,
against R1-Zero's 0.481 (40 steps at 192 tokens, evaluated at 384) and the cold-start model it
starts from, 0.593 / 0.770: RL keeps the cold start's accuracy but does not add to it. `:tiny` is
its own test.
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
    c.optimizer.lr = 1e-5
    if a.tiny:
        c.steps = a.steps if a.steps != 40 else 2
        c.eval.every_steps = 0
        c.task = config_base.task("countdown", max_number=2, max_target=8, test_percent=30)
        c.task.template = "plain"  # as the tiny cold-start SFT
    else:
        c.rl.max_new_tokens = 384  # prompt (~113 tokens) + 384 fits the toy model's 512 positions
        c.eval.max_new_tokens = 384
    return c
