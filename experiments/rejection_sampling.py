"""Rejection sampling (R1 section 2.3.3): verified samples of the reasoning-RL model, filtered, mixed
3:1 with general (non-reasoning) data into one SFT data set.

Command (needs the sibling "reasoning_rl" model; experiments/reasoning_rl.py makes it):
    python -m r1jax.main --config=experiments/rejection_sampling.py --workdir=/tmp/r1jax/rejection_sampling

1024 train Countdown prompts with k = 8 samples each and 3072 arithmetic prompts with k = 2 (the
same rows per batch, fewer samples in all), at temperature 0.6 / top-p 0.95; kept: correct by
the rule verifier, not truncated, no mixed languages, no repeated attempt, in the readable
pattern, deduplicated, at most m = 4 per prompt; then one general-task example (its reference
response) per 3 kept reasoning samples. stats.json and plots/rejection_sampling.png hold
the acceptance rate by task and difficulty and what each filter removed. The model's top-8
next-token log-probs of every kept sample are recorded too (`:topk=0` skips them), so the same
data set serves multi-domain SFT and logit distillation (experiments/distill_student.py).

Measured on the 2-core CPU (2026-12-01, README.md): 16,384 samples in 11 minutes, 17.4 % kept
(2,845) + 948 general = 3,793 records. `:tiny` is its own test.
"""

from r1jax import config_base


def get_config(arg=None):
    a = config_base.parse_arg(arg, tiny=False, seed=0, source="reasoning_rl", topk=8)
    c = config_base.rejection_sampling()
    c.seed = a.seed
    c.source.checkpoint = a.source
    c.tasks = ("countdown", "arithmetic")
    c.num_prompts = 1024
    c.sampling.samples = 8
    c.sampling.max_new_tokens = 192
    # after reasoning RL a model answers an arithmetic problem the same way nearly every time:
    # deduplication removed 3,049 of its 4,096 arithmetic samples (512 prompts x 8, 2026-12-05,
    # seed 0), kept 443 against 1,166 from the previous R1, and the multi-domain model's
    # arithmetic pass@1 fell 0.42 -> 0.21; three times the prompts at 2 samples each
    c.per_task = {"arithmetic": dict(num_prompts=3 * c.num_prompts, samples=2, batch_prompts=64)}
    c.keep_per_prompt = 4
    c.general.ratio = 3.0
    c.record_topk = a.topk
    if a.tiny:
        c.tasks = ("countdown",)
        c.per_task = {}
        c.task_options = {"countdown": dict(max_number=2, max_target=8, test_percent=30)}
        c.num_prompts = 16
        c.sampling.samples = 4
        c.sampling.max_new_tokens = 96
        c.sampling.batch_prompts = 8
        c.sampling.template = "plain"  # as the tiny cold-start SFT
    return c
