"""Rewards, registered by name (see registry.py): verifiers of model output, the jittable forms
over token ids, and the sandboxed code runner in `rewards/sandbox/`.

May import: data, train, model, tokenizers, text, parallel. Never sampling, rl, eval or stages.
"""

from r1jax.rewards.registry import Reward, build, names, parse, register

__all__ = ["Reward", "build", "names", "parse", "register"]
