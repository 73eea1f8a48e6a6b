"""Metrics: JSONL and TensorBoard writers, a progress bar with the key numbers, and plots.

Only process 0 writes. `metrics.jsonl` in the workdir is the source of truth (one JSON object per
step, `step` included); TensorBoard event files are written beside it (tensorboardX, no TensorFlow)
and PNG plots are drawn from the JSONL at the end of a stage, so a resumed run plots its whole
history. On resume, rows at or after the resume step are dropped so that the file never holds a step
twice.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import jax
import numpy as np


def _scalar(v: Any) -> float | int | str | None:
    if isinstance(v, (str, bool)):
        return v
    try:
        x = np.asarray(v)
    except Exception:  # noqa: BLE001
        return str(v)
    if x.size != 1:
        return None
    x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)  # JSON has no NaN/inf; keep the fact
    return x


def read_jsonl(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    break  # a line cut by a kill: everything after it is untrusted
    return rows


class MetricsWriter:
    """Appends step metrics to <workdir>/metrics.jsonl and TensorBoard; safe to reopen on resume."""

    def __init__(self, workdir: str, resume_step: int = 0, filename: str = "metrics.jsonl"):
        self.active = jax.process_index() == 0
        self.path = os.path.join(workdir, filename)
        self._tb = None
        if not self.active:
            return
        os.makedirs(workdir, exist_ok=True)
        kept = [r for r in read_jsonl(self.path) if int(r.get("step", -1)) < resume_step]
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            for r in kept:
                f.write(json.dumps(r) + "\n")
        os.replace(tmp, self.path)
        self._file = open(self.path, "a", encoding="utf-8")
        self._samples_path = os.path.join(workdir, "samples.jsonl")
        if os.path.exists(self._samples_path):  # drop samples of steps that will be redone
            rows = [
                r for r in read_jsonl(self._samples_path) if int(r.get("step", -1)) < resume_step
            ]
            with open(self._samples_path + ".tmp", "w", encoding="utf-8") as f:
                f.writelines(json.dumps(r) + "\n" for r in rows)
            os.replace(self._samples_path + ".tmp", self._samples_path)
        try:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(os.path.join(workdir, "tb"), purge_step=resume_step or None)
        except ImportError:  # pragma: no cover - tensorboardX is in install_requires
            self._tb = None

    def write(self, step: int, metrics: Mapping[str, Any]) -> dict:
        """Writes one row; returns the JSON-safe scalars that were written."""
        row = {"step": int(step)}
        for k, v in metrics.items():
            s = _scalar(v)
            if s is not None:
                row[k] = s
        if self.active:
            self._file.write(json.dumps(row) + "\n")
            self._file.flush()
            if self._tb is not None:
                for k, v in row.items():
                    if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                        self._tb.add_scalar(k, v, step)
        return row

    def write_samples(self, step: int, records: Sequence[Mapping[str, Any]]) -> None:
        """A few completions of this step: samples.jsonl (one row each) and TensorBoard text."""
        if not self.active or not records:
            return
        with open(self._samples_path, "a", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps({"step": int(step), **r}, default=str) + "\n")
        if self._tb is not None:
            text = "\n\n".join("\n".join(f"**{k}**: `{v}`" for k, v in r.items()) for r in records)
            self._tb.add_text("samples", text, step)

    def close(self) -> None:
        if self.active:
            self._file.close()
            if self._tb is not None:
                self._tb.close()


class Progress:
    """A tqdm bar over steps whose postfix shows the chosen keys (quiet when not a terminal job)."""

    def __init__(self, total: int, initial: int, keys: Sequence[str], desc: str):
        from tqdm.auto import tqdm

        self.keys = tuple(keys)
        self.bar = tqdm(
            total=total,
            initial=initial,
            desc=desc,
            dynamic_ncols=True,
            disable=jax.process_index() != 0,
            mininterval=1.0,
        )

    def update(self, row: Mapping[str, Any]) -> None:
        shown = {k: row[k] for k in self.keys if k in row}
        self.bar.set_postfix(
            {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in shown.items()},
            refresh=False,
        )
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def plot(
    rows: Iterable[Mapping[str, Any]], keys: Sequence[str], path: str, title: str = ""
) -> str | None:
    """One panel per key (value against step) in a PNG; keys absent from the rows are skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(rows)
    present = [k for k in keys if any(isinstance(r.get(k), (int, float)) for r in rows)]
    if not present or jax.process_index() != 0:
        return None
    fig, axes = plt.subplots(1, len(present), figsize=(4.2 * len(present), 3.2), squeeze=False)
    for ax, k in zip(axes[0], present):
        pts = [(r["step"], r[k]) for r in rows if isinstance(r.get(k), (int, float))]
        xs, ys = zip(*pts)
        ax.plot(xs, ys, lw=1.0, alpha=0.45 if len(xs) > 30 else 1.0)
        if len(xs) > 30:  # a moving average makes trends readable over noisy RL curves
            w = max(5, len(xs) // 25)
            smooth = np.convolve(ys, np.ones(w) / w, mode="valid")
            ax.plot(xs[w - 1 :], smooth, lw=2.0)
        ax.set_xlabel("step")
        ax.set_title(k)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
