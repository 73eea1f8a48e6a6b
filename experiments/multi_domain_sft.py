"""Multi-domain SFT (R1 section 2.3.3): the base model fine-tuned for 2 epochs on the rejection-
sampled reasoning data mixed 3:1 with general data.

Command (needs the sibling "rejection_sampling" data set; experiments/rejection_sampling.py):
    python -m r1jax.main --config=experiments/multi_domain_sft.py --workdir=/tmp/r1jax/multi_domain_sft

From the toy base model (as the paper restarts from DeepSeek-V3-Base), completion-only loss, packed
rows, 2 epochs; held-out Countdown, arithmetic and the general task before and after, to compare
with the reasoning-RL model the data came from.

Measured on the 2-core CPU (2026-12-01, README.md): 242 steps, 6 minutes with evaluations; held-out
Countdown pass@1 0.500 (the reasoning-RL model it came from: 0.531). `:tiny` is its own test.
"""

from r1jax import config_base


def get_config(arg=None):
    a = config_base.parse_arg(arg, tiny=False, seed=0)
    c = config_base.sft()
    c.seed = a.seed
    pretrain_toy = config_base.sibling(__file__, "pretrain_toy")
    c.init.pretrain = pretrain_toy.get_config("tiny" if a.tiny else None)
    c.data.inputs = ("rejection_sampling",)
    c.epochs = 2
    c.eval.tasks = ("countdown", "arithmetic", "general")
    if a.tiny:
        c.data.template = "plain"  # as the tiny rejection-sampling data
        c.data.seq_len = 127
        c.data.batch_size = 4
        c.eval.tasks = ("countdown", "general")
        c.eval.num_problems = 4
        c.eval.samples = 2
        c.eval.max_new_tokens = 24
        c.eval.batch_prompts = 4
    return c
