"""The GRPO config of the multi-process stage tests (tests/test_multiprocess_stages.py).

    python -m r1jax.launch --processes=2 --devices_per_process=4 -- \
        --config=tests/mp_config.py:data=/tmp/q.jsonl --config.init.checkpoint=/tmp/base \
        --workdir=/tmp/grpo

The tiny R1-Zero Countdown config on a JSONL task whose questions differ a lot in length (so the two
processes' halves of a batch need different padded widths unless the padding is agreed), with
rewards that vary inside groups even for an untrained model (`overlong` reads each completion's
length), the host-only `math_accuracy` (sympy in a worker process: the split, per-process scoring
path), dynamic sampling (up to one extra round of prompts per step), the quick and the final
evaluation on, checkpoints every 2 steps, and a (2, 2, 2) mesh.
"""

import importlib.util
import os

from r1jax import config_base

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def get_config(arg=None):
    a = config_base.parse_arg(arg, data="", tfds="", heartbeat=100)
    spec = importlib.util.spec_from_file_location(
        "r1jax_experiment_r1_zero_countdown",
        os.path.join(ROOT, "experiments", "r1_zero_countdown.py"),
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    c = module.get_config("tiny")
    c.task = config_base.task("jsonl", path=a.data, answer_format="raw", test_fraction=0.25)
    c.task.data_dir = a.tfds
    c.rewards = ("math_accuracy", "format(weight=0.5)", "overlong(max_tokens=24, cache=20)")
    c.eval.accuracy_reward = ""  # the task's own: math_accuracy
    c.eval.num_problems = 4
    c.mesh.shape = (2, 2, 2)
    c.checkpoint.every_steps = 2
    c.checkpoint.keep = 3
    c.distributed.heartbeat_timeout_s = a.heartbeat
    c.log_samples = 2
    c.optimizer.warmup_steps = 0  # every update moves the policy, so later steps depend on it
    c.optimizer.lr = 1e-3
    c.rl.dynamic_sampling = True  # groups without signal are dropped and resampled (one round)
    c.rl.max_resample_rounds = 1
    return c
