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


def smooth(ys: np.ndarray, n: int) -> np.ndarray:
    """A trailing moving average over `n` points (the first points average what exists)."""
    c = np.cumsum(np.insert(ys, 0, 0.0))
    idx = np.arange(1, len(ys) + 1)
    lo = np.maximum(idx - n, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def plot(
    rows: Iterable[Mapping[str, Any]],
    keys: Sequence[str],
    path: str,
    title: str = "",
    ncols: int = 4,
) -> str | None:
    """A grid of panels (value against step), the same look for every stage.

    Training curves are drawn raw (thin) with a trailing moving average over ~1/20 of the run
    (thick) once there are more than 20 points; held-out evaluations (keys starting with `eval_`),
    which exist only at some steps, are marked points joined by a line. Keys absent from the rows
    are skipped.
    """
    from r1jax.train.figures import subplots

    rows = list(rows)
    present = [k for k in keys if any(_finite(r.get(k)) for r in rows)]
    if not present or jax.process_index() != 0:
        return None
    ncols = min(ncols, len(present))
    nrows = -(-len(present) // ncols)
    fig, axes = subplots(
        nrows, ncols, figsize=(3.6 * ncols, 2.7 * nrows), squeeze=False, sharex=True
    )
    for ax, k in zip(axes.flat, present):
        xs, ys = zip(*[(r["step"], float(r[k])) for r in rows if _finite(r.get(k))])
        xs, ys = np.asarray(xs), np.asarray(ys)
        if k.startswith("eval_"):
            ax.plot(xs, ys, "o-", ms=4, lw=1.2, color="C3", label="held-out")
        elif len(xs) > 20:
            ax.plot(xs, ys, lw=0.8, alpha=0.35, color="C0", label="raw")
            ax.plot(xs, smooth(ys, max(3, len(xs) // 20)), lw=2.0, color="C0", label="smoothed")
        else:
            ax.plot(xs, ys, "-", marker=".", lw=1.2, color="C0")
        ax.set_title(k, fontsize=10)
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(present) :]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("step", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
