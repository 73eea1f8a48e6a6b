"""The rejection-sampling statistics: acceptance by task and difficulty, what each filter removed,
lengths of what was kept, and one figure of them (<workdir>/plots/rejection_sampling.png)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import jax
import numpy as np

from r1jax.data.rejection_filters import FILTERS

SAMPLES = "samples.jsonl"


def write_samples(path: str, rows: Sequence[dict]) -> None:
    """Every sample with its verdict and the filter that removed it (null = kept), atomically."""
    if jax.process_index() != 0:
        return
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(
                json.dumps({k: (bool(v) if isinstance(v, np.bool_) else v) for k, v in r.items()})
                + "\n"
            )
    os.replace(tmp, path)


def bucket_stats(rows: Sequence[dict]) -> dict[str, dict]:
    """rows: one per prompt {task, difficulty, samples, correct, kept} -> per "task/difficulty"."""
    out: dict[str, dict] = {}
    for r in rows:
        b = out.setdefault(
            f"{r['task']}/{r['difficulty']}", dict(prompts=0, samples=0, correct=0, kept=0)
        )
        for k in ("samples", "correct", "kept"):
            b[k] += r[k]
        b["prompts"] += 1
    for b in out.values():
        b["correct_rate"] = b["correct"] / max(b["samples"], 1)
        b["acceptance_rate"] = b["kept"] / max(b["samples"], 1)
    return dict(sorted(out.items()))


def length_stats(lengths: Sequence[int]) -> dict[str, float]:
    x = np.asarray(lengths, np.float64)
    if x.size == 0:
        return {}
    return {
        "mean": float(x.mean()),
        "p50": float(np.percentile(x, 50)),
        "p90": float(np.percentile(x, 90)),
        "max": float(x.max()),
    }


def plot(stats: dict, kept_lengths: Sequence[int], path: str) -> str | None:
    """Acceptance by bucket, removals by filter, and the kept samples' token lengths."""
    if jax.process_index() != 0:
        return None
    from r1jax.train.figures import subplots

    fig, axes = subplots(1, 3, figsize=(13, 3.6))
    buckets = stats["by_difficulty"]
    names = list(buckets)
    axes[0].bar(names, [buckets[n]["correct_rate"] for n in names], label="correct", alpha=0.5)
    axes[0].bar(names, [buckets[n]["acceptance_rate"] for n in names], label="kept")
    axes[0].set_title("share of samples by task/difficulty")
    axes[0].legend()
    axes[1].bar(list(FILTERS), [stats["removed"][f] for f in FILTERS])
    axes[1].set_title("samples removed by each filter")
    axes[1].tick_params(axis="x", rotation=45)
    axes[2].hist(list(kept_lengths) or [0], bins=30)
    axes[2].set_title("kept reasoning samples: tokens")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
