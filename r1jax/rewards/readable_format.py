"""The readable-format reward: R1's "reasoning process, then a summary" pattern, strictly.

Reasoning RL from the cold-start model uses it instead of `format` (whose R1-Zero structure allows
nothing between `</think>` and `<answer>`, where the readable pattern puts its summary). The pattern
and its rules are defined once, in `text.parsing.readable_violation` (documented in README.md,
"Supervised stages"); this reward is 1 exactly when a completion follows all of them.
"""

from __future__ import annotations

import numpy as np

from r1jax.rewards.registry import Reward, register
from r1jax.text.parsing import readable_format_ok


@register("readable_format")
def readable_format() -> Reward:
    # range: [0, 1]  (1 = think block of non-repeated attempts in one language, one summary line
    # that contains the answer, then one non-empty answer block and nothing after)
    def host(completions, examples):
        del examples
        return np.array([float(readable_format_ok(c)) for c in completions], np.float32)

    return Reward("readable_format", host, 0.0, 1.0)
