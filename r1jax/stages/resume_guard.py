"""A rerun in the same workdir resumes only the same experiment: a changed config stops it first.

Every checkpoint holds the config that produced it (its `meta`). Before anything is built or
compiled, a stage compares the newest checkpoint's config with the current one. Keys that change
what the run means (model, loss, rewards, task, data, optimizer except the schedule's length, seed,
...) must match; harmless keys (how many steps, evaluation, logging, checkpointing, mesh and
process layout, where data is cached) may change. A mismatch is one ConfigError that names each key
with both values and the two ways out: a new workdir, or `--config.resume.allow_changes=key1,key2`.
"""

from __future__ import annotations

import json
import os
from typing import Any

import ml_collections

from r1jax import config_check
from r1jax.train import checkpoint as ckpt_lib

# keys (or prefixes ending in ".") that may change between a run and its resumption
HARMLESS = (
    "steps",
    "eval.",
    "log_every",
    "log_samples",
    "plot_keys",
    "checkpoint.",
    "max_consecutive_nonfinite",
    "resume.",
    "mesh.",
    "sharding_rules",
    "distributed.",
    "init.build_if_missing",
    "task.data_dir",
    "rl.fused",  # the fused and split steps compute the same numbers
    "rl.length_bucket",  # only how the update's batch is cut into compiled shapes
    "rl.sampler_mesh",  # only where the rollouts are decoded (tests/test_sampler_mesh.py)
)


def flat_keys(d: Any, prefix: str = "") -> dict[str, Any]:
    """{"a.b.c": value} for a nested dict (an empty dict is one value), to compare configs."""
    if isinstance(d, dict) and d:
        out = {}
        for k, v in d.items():
            out.update(flat_keys(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def _harmless(key: str) -> bool:
    return any(key == h or (h.endswith(".") and key.startswith(h)) for h in HARMLESS)


def differences(saved: dict, current: dict, defaults: dict) -> list[tuple[str, Any, Any]]:
    """(key, saved value, current value) of every meaningful key that differs.

    A key the saved config lacks (added to the schema since) counts only if its current value is
    not the default, so upgrading r1jax does not block resuming an old run.
    """
    a, b, d = flat_keys(saved), flat_keys(current), flat_keys(defaults)
    out = []
    for key in sorted(set(a) | set(b)):
        if _harmless(key):
            continue
        if key not in a and b.get(key) == d.get(key):
            continue
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            out.append((key, a.get(key, "<absent>"), b.get(key, "<absent>")))
    return out


def check(
    config: ml_collections.ConfigDict, defaults: ml_collections.ConfigDict, workdir: str
) -> None:
    """Raises ConfigError if `workdir` holds a checkpoint of a meaningfully different config."""
    directory = os.path.join(workdir, "checkpoints")
    try:
        step, meta = ckpt_lib.read_meta(directory)
    except FileNotFoundError:
        return  # nothing to resume
    if not meta.get("config"):
        return
    saved = json.loads(meta["config"])
    current = json.loads(config.to_json_best_effort())
    allowed = {k.strip() for k in str(config.resume.allow_changes).split(",") if k.strip()}
    diff = [d for d in differences(saved, current, json.loads(defaults.to_json_best_effort()))]
    diff = [d for d in diff if d[0] not in allowed]
    if not diff:
        return
    changes = ", ".join(f"{k} {v0!r} -> {v1!r}" for k, v0, v1 in diff)
    keys = ",".join(k for k, _, _ in diff)
    raise config_check.ConfigError(
        f"{workdir} holds a run (checkpoint step {step}) with a different config: {changes}. "
        f"Use a new --workdir, or resume anyway with --config.resume.allow_changes={keys}."
    )
