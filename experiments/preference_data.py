"""Preference pairs for the reward model: general and harm-inviting prompts, labelled by the oracle.

Command (pairs from a policy's own samples; point init.checkpoint at a general-capable model, e.g.
the multi-domain SFT stage once it exists):
    python -m r1jax.main --config=experiments/preference_data.py:source=policy \
        --config.init.checkpoint=/tmp/r1jax/multi_domain_sft --workdir=/tmp/r1jax/preference_data

Until a general-capable model exists, the default makes the responses from the general task's
reference outputs with seeded perturbations (data/perturb.py), no model needed:
    python -m r1jax.main --config=experiments/preference_data.py --workdir=/tmp/r1jax/preference_data

1000 train + 200 held-out prompts of the general task (5 benign kinds + harm-inviting prompts whose
SFT reference is unsafe half of the time), 4 responses each, helpfulness and harmlessness pairs
with |oracle gap| >= 0.1, labels from a Bradley-Terry rater with noise 0.1. Expected on a 2-core
CPU: a few seconds for reference_perturbed; measured numbers are in the README ("Reward model").
`:tiny` is its own test (a few seconds).
"""

from r1jax import config_base


def get_config(arg=None):
    a = config_base.parse_arg(arg, tiny=False, seed=0, source="reference_perturbed")
    c = config_base.preference_data()
    c.seed = a.seed
    c.source = a.source
    pretrain_toy = config_base.sibling(__file__, "pretrain_toy")
    c.init.pretrain = pretrain_toy.get_config("tiny" if a.tiny else None)
    if a.tiny:
        c.task.options.train_size = 64
        c.task.options.test_size = 16
        c.prompts.train = 48
        c.prompts.test = 16
        c.sampling.max_new_tokens = 24
        c.sampling.batch_prompts = 8
    return c
