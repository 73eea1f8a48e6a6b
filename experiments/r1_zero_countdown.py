"""R1-Zero on toy Countdown: pure RL (GRPO, accuracy + format rewards) from the toy base model.

Command (the README's main job; builds the tokenizer and base model first if they are absent):
    python -m r1jax.main --config=experiments/r1_zero_countdown.py --workdir=/tmp/r1jax/r1_zero

Expected on a 2-core CPU (measured 2026-11-26, README.md): pretraining the base model ~21 min (once;
reused from <workdir>/../base), then GRPO ~15-17 min (100 steps of 16 prompts x 8 samples) and a
1.5-minute final evaluation. Held-out pass@1 (temperature 0.6, top-p 0.95, 8 samples per problem)
rises from the base model's 0.29 to about 0.51 over three seeds, cons@8 from 0.49 to about 0.67,
and the mean response length from ~77 to ~110 tokens as the policy learns to try more combinations.
`:tiny` is its own test (about a minute).
"""

from r1jax import config_base


def get_config(arg=None):
    a = config_base.parse_arg(arg, tiny=False, seed=0, steps=100)
    c = config_base.grpo()
    c.seed = a.seed
    pretrain_toy = config_base.sibling(__file__, "pretrain_toy")
    c.init.pretrain = pretrain_toy.get_config("tiny" if a.tiny else None)
    c.task = config_base.task("countdown", n_numbers=3, max_number=9, max_target=99)
    # accuracy + format as in R1-Zero; the trace diagnostics ride along with weight 0 (logged only)
    c.rewards = (
        "countdown_accuracy",
        "format(weight=0.5)",
        "countdown_honesty(weight=0)",
        "countdown_attempts(weight=0)",
    )
    c.rl.prompts_per_step = 16
    c.rl.group_size = 8
    c.rl.max_new_tokens = 192  # room for ~10 attempts; the corpus never shows more than 8
    c.rl.beta = 0.02
    c.rl.mu = 1  # on-policy: one update per batch of rollouts (the update dominates a CPU step)
    c.optimizer.lr = 1e-4
    c.optimizer.warmup_steps = 10
    c.eval.accuracy_reward = "countdown_accuracy"
    c.eval.max_new_tokens = 192
    c.eval.every_steps = 20
    c.steps = a.steps
    if a.tiny:
        c.rl.prompts_per_step = 4
        c.rl.group_size = 4
        c.rl.max_new_tokens = 24
        c.eval.max_new_tokens = 24
        c.eval.num_problems = 4
        c.eval.samples = 2
        c.eval.final_samples = 2
        c.eval.batch_prompts = 4
        c.eval.every_steps = 2
        c.task.options.n_test = 8
        c.steps = a.steps if a.steps != 100 else 3
        c.checkpoint.every_steps = 2
    return c
