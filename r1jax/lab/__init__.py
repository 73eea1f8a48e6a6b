"""A research API for notebooks: policies, rollout batches and loss variants as plain calls.

No workdir, no stage, no ConfigDict: load a policy and a task, collect one batch of scored
rollouts, save it as `.npz`, and study loss variants on it (value, aux, the per-token gradient
weights d loss / d logp) or take k optimiser steps from it. Everything reuses the trainer's own
pieces (`rl/step.py` for sampling and scoring, `rl/losses.py` for the loss, `rl/train_step.py`
for the update), so what a notebook measures is what a run does.

    from r1jax import lab
    policy = lab.load_policy("/tmp/r1jax/base")
    batch = lab.collect_rollouts(policy, lab.load_task("countdown").examples[:16], ...)

May import: every other r1jax package (stages/init_model for loading). Nothing imports lab.
"""

from r1jax.lab.batch import RolloutBatch, load_batch, save_batch
from r1jax.lab.distributions import token_logdists
from r1jax.lab.loss_eval import (
    LossReport,
    evaluate_loss,
    loss_on_arrays,
    parameter_gradient,
    policy_logprobs,
)
from r1jax.lab.policy import Policy, Task, load_policy, load_task, save_policy
from r1jax.lab.rollouts import collect_rollouts
from r1jax.lab.updates import UpdateResult, run_updates

__all__ = [
    "LossReport",
    "Policy",
    "RolloutBatch",
    "Task",
    "UpdateResult",
    "collect_rollouts",
    "evaluate_loss",
    "load_batch",
    "load_policy",
    "load_task",
    "loss_on_arrays",
    "parameter_gradient",
    "policy_logprobs",
    "run_updates",
    "save_batch",
    "save_policy",
    "token_logdists",
]
