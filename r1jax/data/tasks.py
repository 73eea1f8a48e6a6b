"""Tasks by name: `load("countdown", "test", data_dir, **options)` -> list of example dicts.

A task is a TFDS builder (data/tfds_base.py) registered under a name with the reward that decides
its accuracy (evaluation and the `accuracy` metric of RL). The built-in tasks are registered here
lazily (their modules import only when used); an experiment file or a notebook adds one with the
decorator, which is the only place to touch:

    @tasks.register("my_task", accuracy="math_accuracy")
    class MyTask(tfds_base.TaskBuilder, skip_registration=True):
        TASK = "my_task"
        def generate(self, split): ...
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import tempfile
from collections.abc import Callable
from typing import Any

from r1jax.data import tfds_base


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    name: str
    accuracy: str  # the registered reward that scores a completion as correct (>= 1)
    builder: str | type  # "module:Class" (imported when first used) or the class itself

    def builder_class(self) -> type:
        if isinstance(self.builder, str):
            module, _, cls = self.builder.partition(":")
            return getattr(importlib.import_module(module), cls)
        return self.builder


_REGISTRY: dict[str, TaskSpec] = {}


def register(name: str, accuracy: str, builder: str | type | None = None) -> Callable[[type], type]:
    """Registers a task (a decorator on the builder class, or a call with `builder="mod:Class"`).

    Re-registering a name replaces it, so a notebook cell can be edited and rerun.
    """

    def deco(cls: type) -> type:
        _REGISTRY[name] = TaskSpec(name, accuracy, cls)
        return cls

    if builder is not None:
        _REGISTRY[name] = TaskSpec(name, accuracy, builder)
    return deco


register("countdown", "countdown_accuracy", "r1jax.data.builders:CountdownBuilder")
register("arithmetic", "arithmetic_accuracy", "r1jax.data.builders:ArithmeticBuilder")
register("general", "general_match", "r1jax.data.general_task:GeneralTask")
register("jsonl", "math_accuracy", "r1jax.data.jsonl_task:JsonlTask")
register("code", "code_tests", "r1jax.data.code_task:CodeTask")
register("code_jsonl", "code_tests", "r1jax.data.code_jsonl:CodeJsonlTask")


def names() -> list[str]:
    return sorted(_REGISTRY)


def spec(name: str) -> TaskSpec:
    if name not in _REGISTRY:
        raise ValueError(f"unknown task {name!r} (config.task.name); known: {names()}.")
    return _REGISTRY[name]


def accuracy_reward(name: str) -> str:
    """The registered accuracy reward of a task (evaluation's default)."""
    return spec(name).accuracy


def builder(name: str, data_dir: str = "", /, **options: Any) -> tfds_base.TaskBuilder:
    """The task's builder; positional-only names leave `name=` etc. free for options (jsonl)."""
    data_dir = data_dir or os.path.join(tempfile.gettempdir(), "r1jax_tfds")
    return spec(name).builder_class()(data_dir=data_dir, **options)


def load(name: str, split: str, data_dir: str = "", /, **options: Any) -> list[dict]:
    """Builds the task once (array_record files under data_dir) and reads one split."""
    data_dir = data_dir or os.path.join(tempfile.gettempdir(), "r1jax_tfds")
    with tfds_base.build_lock(data_dir):
        b = builder(name, data_dir, **options)
        if split not in b.SPLITS:
            raise ValueError(f"task {name!r} has no split {split!r}; it has {list(b.SPLITS)}.")
        try:
            return tfds_base.load(b, split)
        except AssertionError as e:  # TFDS refuses to write an empty split
            if "No examples were yielded" not in str(e):
                raise
            raise ValueError(
                f"task {name!r} with options {options} has no examples in one of its splits "
                f"(reading {split!r}); enlarge the problem space or its test share."
            ) from None
