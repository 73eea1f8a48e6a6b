"""TFDS builders of the generated reasoning tasks (Countdown, arithmetic).

    b = CountdownBuilder(data_dir="/tmp/tfds", n_train=20000, n_test=500, seed=0)
    test = tfds_base.load(b, "test")   # list of example dicts

Deterministic for their options; train and test never share a problem (hash-based split of the
problem itself, see countdown.split_of / arithmetic.split_of).
"""

from __future__ import annotations

from collections.abc import Iterator

from r1jax.data import arithmetic, countdown
from r1jax.data.tfds_base import TaskBuilder


class CountdownBuilder(TaskBuilder, skip_registration=True):
    """Options: n_train, n_test (0 = every problem of the split), seed, n_numbers (3-4), max_number, max_target, test_percent."""

    TASK = "countdown"

    def generate(self, split: str) -> Iterator[dict]:
        o = self.options
        n = o.get("n_train", 0) if split == "train" else o.get("n_test", 0)  # 0 = all
        yield from countdown.examples(
            split,
            n,
            seed=o.get("seed", 0),
            n_numbers=o.get("n_numbers", 3),
            max_number=o.get("max_number", 9),
            max_target=o.get("max_target", 99),
            test_percent=o.get("test_percent", 10),
        )


class ArithmeticBuilder(TaskBuilder, skip_registration=True):
    """Options: n_train, n_test, seed, ops, digits (min, max), test_percent."""

    TASK = "arithmetic"

    def generate(self, split: str) -> Iterator[dict]:
        o = self.options
        n = o.get("n_train", 20000) if split == "train" else o.get("n_test", 500)
        yield from arithmetic.examples(
            split,
            n,
            seed=o.get("seed", 0),
            ops=tuple(o.get("ops", arithmetic.OPS)),
            digits=tuple(o.get("digits", (2, 3))),
            test_percent=o.get("test_percent", 10),
        )
