"""Fault injection for the preemption tests, driven by the R1JAX_FAULTS environment variable.

    R1JAX_FAULTS="kill_after_step=5"       SIGKILL itself right after step 5 is written to metrics
    R1JAX_FAULTS="kill_during_save=4"      SIGKILL while the checkpoint of step 4 is being written
    R1JAX_FAULTS="sigterm_after_step=3"    send itself SIGTERM (a preemption notice) after step 3
    R1JAX_FAULTS="nan_at_steps=3:4"        poison the inputs of steps 3 and 4 (out-of-range token
                                           ids, whose embeddings are NaN), so the loss is non-finite

Unset (the normal case) every hook is a no-op. Tests use it to kill a real training process at chosen
points and check that the resumed run is identical to one that never stopped.
"""

from __future__ import annotations

import os
import signal

import numpy as np


def _faults() -> dict[str, str]:
    spec = os.environ.get("R1JAX_FAULTS", "")
    out = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, _, value = part.partition("=")
        out[key] = value
    return out


def _steps(value: str) -> set[int]:
    return {int(x) for x in value.split(":") if x}


def after_step(step: int) -> None:
    """Called after step `step` is done and logged."""
    f = _faults()
    if "kill_after_step" in f and step == int(f["kill_after_step"]):
        os.kill(os.getpid(), signal.SIGKILL)
    if "sigterm_after_step" in f and step == int(f["sigterm_after_step"]):
        os.kill(os.getpid(), signal.SIGTERM)


def during_save(step: int) -> None:
    """Called right after an (asynchronous) checkpoint save of `step` has started."""
    f = _faults()
    if "kill_during_save" in f and step == int(f["kill_during_save"]):
        os.kill(os.getpid(), signal.SIGKILL)


def poison(step: int, ids: np.ndarray) -> np.ndarray:
    """Token ids of `step`, replaced by out-of-range ids when the step is to be poisoned."""
    f = _faults()
    if "nan_at_steps" in f and step in _steps(f["nan_at_steps"]):
        return np.full_like(ids, np.iinfo(np.int32).max)
    return ids
