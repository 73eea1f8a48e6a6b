"""Tasks by name: `load("countdown", "test", data_dir, **options)` -> list of example dicts.

The stage runners read `config.task.name` and `config.task.options` and call this; builders are
imported lazily so that a task's dependencies load only when it is used.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from typing import Any

from r1jax.data import tfds_base

# name -> (module, class)
BUILDERS = {
    "countdown": ("r1jax.data.builders", "CountdownBuilder"),
    "arithmetic": ("r1jax.data.builders", "ArithmeticBuilder"),
    "general": ("r1jax.data.general_task", "GeneralTask"),
    "jsonl": ("r1jax.data.jsonl_task", "JsonlTask"),
    "code": ("r1jax.data.code_task", "CodeTask"),
    "code_jsonl": ("r1jax.data.code_jsonl", "CodeJsonlTask"),
}


def builder(name: str, data_dir: str = "", /, **options: Any) -> tfds_base.TaskBuilder:
    """The task's builder; positional-only names leave `name=` etc. free for options (jsonl)."""
    if name not in BUILDERS:
        raise ValueError(f"unknown task {name!r} (config.task.name); known: {sorted(BUILDERS)}.")
    module, cls = BUILDERS[name]
    data_dir = data_dir or os.path.join(tempfile.gettempdir(), "r1jax_tfds")
    return getattr(importlib.import_module(module), cls)(data_dir=data_dir, **options)


def load(name: str, split: str, data_dir: str = "", /, **options: Any) -> list[dict]:
    """Builds the task once (array_record files under data_dir) and reads one split."""
    b = builder(name, data_dir, **options)
    if split not in b.SPLITS:
        raise ValueError(f"task {name!r} has no split {split!r}; it has {list(b.SPLITS)}.")
    return tfds_base.load(b, split)
