"""Fault injection for the preemption tests, installed from the R1JAX_FAULTS environment variable.

    R1JAX_FAULTS="kill_after_step=5"       SIGKILL itself right after step 5 is written to metrics
    R1JAX_FAULTS="kill_during_save=4"      SIGKILL while the checkpoint of step 4 is being written
    R1JAX_FAULTS="sigterm_after_step=3"    send itself SIGTERM (a preemption notice) after step 3
    R1JAX_FAULTS="nan_at_steps=3:4"        poison the inputs of steps 3 and 4 (out-of-range token
                                           ids, whose embeddings are NaN), so the loss is non-finite

Nothing here runs in a step's hot path: a stage wraps its batch function with `poisoning` once, and
the loop takes `loop_hooks()` once; with R1JAX_FAULTS unset both return what they were given (no
wrapper, no hooks). Tests use it to kill a real training process at chosen points and check that the
resumed run is identical to one that never stopped.
"""

from __future__ import annotations

import dataclasses
import os
import signal
from collections.abc import Callable
from typing import Any

import numpy as np


def _spec() -> dict[str, str]:
    out = {}
    for part in filter(None, (p.strip() for p in os.environ.get("R1JAX_FAULTS", "").split(","))):
        key, _, value = part.partition("=")
        out[key] = value
    return out


def _kill(sig: int) -> None:
    os.kill(os.getpid(), sig)


@dataclasses.dataclass(frozen=True)
class LoopHooks:
    """Called by the training loop after a step is logged and after a save has started."""

    after_step: Callable[[int], None] = lambda step: None
    during_save: Callable[[int], None] = lambda step: None


def loop_hooks() -> LoopHooks:
    """The loop's hooks for this process: no-ops unless R1JAX_FAULTS asks for kills/SIGTERM."""
    f = _spec()

    def after_step(step: int) -> None:
        if "kill_after_step" in f and step == int(f["kill_after_step"]):
            _kill(signal.SIGKILL)
        if "sigterm_after_step" in f and step == int(f["sigterm_after_step"]):
            _kill(signal.SIGTERM)

    def during_save(step: int) -> None:
        if "kill_during_save" in f and step == int(f["kill_during_save"]):
            _kill(signal.SIGKILL)

    if not ({"kill_after_step", "sigterm_after_step", "kill_during_save"} & set(f)):
        return LoopHooks()
    return LoopHooks(after_step, during_save)


def poisoning(batch_fn: Callable[..., dict[str, Any]], key: str) -> Callable[..., dict]:
    """`batch_fn(step, ...)` with `key`'s token ids replaced by out-of-range ids on poisoned steps.

    Returns `batch_fn` itself when R1JAX_FAULTS names no `nan_at_steps`.
    """
    value = _spec().get("nan_at_steps")
    if value is None:
        return batch_fn
    steps = {int(x) for x in value.split(":") if x}

    def poisoned(step: int, *args: Any) -> dict[str, Any]:
        batch = batch_fn(step, *args)
        if step in steps:
            batch = dict(batch, **{key: np.full_like(batch[key], np.iinfo(np.int32).max)})
        return batch

    return poisoned
