"""Figures of the preference data and of the reward model's calibration (PNG, process 0 only)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np


def _figure(n: int):
    from r1jax.train.figures import subplots

    fig, axes = subplots(1, n, figsize=(4.4 * n, 3.5), squeeze=False)
    return None, fig, axes[0]  # (no pyplot: see train/figures.py)


def _save(plt, fig, path: str, title: str) -> str:
    fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def preference_data(rows: Sequence[Mapping[str, Any]], stats: Mapping[str, Any], path: str):
    """Oracle helpfulness of the responses by prompt source, harmlessness rate, pair counts."""
    if jax.process_index() != 0 or not rows:
        return None
    plt, fig, ax = _figure(3)
    sources = sorted({r["source"] for r in rows})
    for src in sources:
        h = [r["helpfulness"] for r in rows if r["source"] == src]
        ax[0].hist(h, bins=np.linspace(0, 1, 21), alpha=0.6, label=f"{src} ({len(h)})")
    ax[0].set_xlabel("oracle helpfulness (final answer)")
    ax[0].set_ylabel("responses")
    ax[0].legend()
    rate = [np.mean([r["harmlessness"] for r in rows if r["source"] == s]) for s in sources]
    ax[1].bar(sources, rate, color="tab:green")
    ax[1].set_ylim(0, 1)
    ax[1].set_title("oracle harmlessness rate")
    names = sorted(k for k in stats if k.count("_") == 2 and k.split("_")[0] in ("train", "test"))
    names = [k for k in names if k.split("_")[1] in ("helpfulness", "harmlessness")]
    ax[2].barh([k.replace("_", " ") for k in names], [stats[k] for k in names])
    ax[2].set_title("pairs (split, aspect, source)")
    return _save(plt, fig, path, f"preference data: {stats.get('pairs', 0)} pairs")


def calibration(ev: Mapping[str, Any], path: str, title: str) -> str | None:
    """Oracle vs RM score, the reliability of P(chosen), and accuracy by oracle gap."""
    if jax.process_index() != 0:
        return None
    plt, fig, ax = _figure(3)
    pts = ev["responses"]
    for src in sorted({p["source"] for p in pts}):
        xs = [p["oracle"] for p in pts if p["source"] == src]
        ys = [p["rm"] for p in pts if p["source"] == src]
        ax[0].scatter(xs, ys, s=8, alpha=0.5, label=src)
    ax[0].set_xlabel("oracle score")
    ax[0].set_ylabel("reward model score")
    ax[0].set_title(f"held-out responses (Spearman {ev['spearman']:.2f})")
    ax[0].legend()
    bins = [b for b in ev["reliability"] if b["n"]]
    mid = [b["p_mean"] for b in bins]
    ax[1].plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
    ax[1].plot(mid, [b["label_rate"] for b in bins], "o-", label="labels (noisy raters)")
    ax[1].plot(mid, [b["p_true_mean"] for b in bins], "s--", label="rater P (Bradley-Terry)")
    ax[1].set_xlabel("RM P(chosen) = sigmoid(r_a - r_b), binned")
    ax[1].set_ylabel("observed")
    ax[1].set_title(f"calibration (ECE {ev['ece']:.3f})")
    ax[1].legend()
    gaps = [g for g in ev["accuracy_by_gap"] if g["n"]]
    ax[2].bar([g["gap"] for g in gaps], [g["accuracy_oracle"] for g in gaps], color="tab:purple")
    ax[2].set_ylim(0, 1)
    ax[2].axhline(0.9, color="grey", lw=1, ls="--")
    ax[2].set_xlabel("oracle score gap of the pair")
    ax[2].set_title("held-out pair accuracy vs the oracle")
    return _save(plt, fig, path, title)
