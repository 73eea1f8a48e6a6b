"""How a data-set stage owns its workdir: claim it, refuse another run's output, finish atomically.

Files, in the order they are written: dataset_config.json (the claim: this run's config), then
sft_data.jsonl (and any side files, each a temporary file renamed into place), then stats.json (the
completion marker, last). A rerun with the same config finds stats.json and does nothing; a rerun of
an interrupted run redoes its own work; any other config, or a data file this stage did not write,
stops with a one-line error instead of being overwritten.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import ml_collections

from r1jax import config_check
from r1jax.data import sft_format
from r1jax.stages.resume_guard import flat_keys

CLAIM, STATS = "dataset_config.json", "stats.json"


def _json(config: ml_collections.ConfigDict) -> dict:
    return json.loads(config.to_json_best_effort())


def write_json(path: str, obj: Any) -> None:
    if jax.process_index() != 0:
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=True, default=str)
    os.replace(tmp, path)


def claim(workdir: str, config: ml_collections.ConfigDict) -> dict | None:
    """The stats of this run's finished data set, or None after claiming the workdir for it."""
    data = os.path.join(workdir, sft_format.FILENAME)
    claim_path = os.path.join(workdir, CLAIM)
    mine = _json(config)
    if os.path.exists(claim_path):
        with open(claim_path, encoding="utf-8") as f:
            theirs = json.load(f)
        if theirs != mine:
            a, b = flat_keys(theirs), flat_keys(mine)
            key = next((k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)), "?")
            raise config_check.ConfigError(
                f"{workdir} holds the data set of a different run (config.{key}: "
                f"{a.get(key)!r} there, {b.get(key)!r} here); use another workdir or delete it."
            )
        stats_path = os.path.join(workdir, STATS)
        if os.path.exists(stats_path) and os.path.exists(data):
            with open(stats_path, encoding="utf-8") as f:
                print(f"r1jax: {config.stage} already finished in {workdir}", flush=True)
                return json.load(f)
        return None  # our own interrupted run: redo it
    if os.path.exists(data):
        raise config_check.ConfigError(
            f"{data} exists but was not written by this stage (no {CLAIM}); use another workdir "
            "or delete the file."
        )
    write_json(claim_path, mine)
    return None


def finish(workdir: str, records: list[dict], stats: dict) -> str:
    """Writes the data set, then stats.json (the completion marker); returns the data path."""
    path = os.path.join(workdir, sft_format.FILENAME)
    if jax.process_index() == 0:
        sft_format.write(path, records)
    write_json(os.path.join(workdir, STATS), stats)
    return path
