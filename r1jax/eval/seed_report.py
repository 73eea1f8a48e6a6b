"""Compare GRPO runs that differ only in their seed: one figure and one Markdown table.

A single RL curve says little (the R1 recipe is noisy), so results are reported over seeds:

    python -m r1jax.eval.seed_report --runs=/tmp/r1jax/s0,/tmp/r1jax/s1,/tmp/r1jax/s2 \
        --base_eval=/tmp/r1jax/eval_base/eval_countdown.json --out=/tmp/r1jax/seeds

reads each run's `metrics.jsonl` and `final_eval.json` (and the starting model's evaluation, when
given), and writes `<out>.png` (held-out pass@1, train accuracy, reward and response length against
step, one line per seed; an x marks the full-split final evaluation) and `<out>.md` (base vs final
pass@1, cons@k, pass@k, length per seed, with the mean and standard deviation over seeds).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np
from absl import app, flags

from r1jax.train import metrics as metrics_lib

_PANELS = (
    ("eval_pass@1", "held-out pass@1"),
    ("accuracy", "train accuracy (rollouts)"),
    ("reward", "reward"),
    ("completion_length_mean", "response length (tokens)"),
)
_COLUMNS = ("pass@1", "cons@", "pass@", "format_rate", "length_mean", "truncated_rate")


def _summary(path: str) -> dict:
    with open(path) as f:
        return json.load(f)["summary"]


def _row_values(summary: dict) -> list[float]:
    """The table's columns; cons@k and pass@k are found by prefix since k follows the config."""
    out = []
    for col in _COLUMNS:
        if col.endswith("@"):
            keys = [k for k in summary if k.startswith(col) and k != "pass@1"]
            out.append(
                float(summary[max(keys, key=lambda k: int(k.split("@")[1]))]) if keys else np.nan
            )
        else:
            out.append(float(summary.get(col, np.nan)))
    return out


def _cell(v: float, like: float | None = None) -> str:
    """Rates with 3 decimals, lengths (> 1.5) with 1; a std is written like its mean."""
    if np.isnan(v):
        return "-"
    return f"{v:.1f}" if (v if like is None else like) > 1.5 else f"{v:.3f}"


def table(runs: Sequence[str], base_eval: str | None) -> str:
    """Markdown: the base model's row, one row per seed, and mean ± std over the seeds."""
    header = "| model | " + " | ".join(
        c.rstrip("@") + ("@k" if c.endswith("@") else "") for c in _COLUMNS
    )
    lines = [header + " |", "|" + "---|" * (len(_COLUMNS) + 1)]

    def fmt(vals: Sequence[float]) -> str:
        return " | ".join(_cell(v) for v in vals)

    if base_eval:
        lines.append(f"| base | {fmt(_row_values(_summary(base_eval)))} |")
    finals = []
    for run in runs:
        finals.append(_row_values(_summary(os.path.join(run, "final_eval.json"))))
        lines.append(f"| {os.path.basename(os.path.normpath(run))} | {fmt(finals[-1])} |")
    if len(finals) > 1:
        arr = np.asarray(finals)
        mean, std = arr.mean(0), arr.std(0, ddof=1)
        cells = " | ".join(
            _cell(m) if np.isnan(m) else f"{_cell(m)} ± {_cell(sd, like=m)}"
            for m, sd in zip(mean, std, strict=True)
        )
        lines.append(f"| mean ± std over {len(finals)} seeds | {cells} |")
    return "\n".join(lines) + "\n"


def figure(runs: Sequence[str], base_eval: str | None, path: str) -> None:
    from r1jax.train.figures import subplots

    fig, axes = subplots(1, len(_PANELS), figsize=(4.2 * len(_PANELS), 3.4))
    for i, run in enumerate(runs):
        color = f"C{i}"
        rows = metrics_lib.read_jsonl(os.path.join(run, "metrics.jsonl"))
        name = os.path.basename(os.path.normpath(run))
        for ax, (key, _) in zip(axes, _PANELS, strict=True):
            pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), int | float)]
            if pts:
                xs, ys = zip(*pts, strict=True)
                marker = "o" if key.startswith("eval_") else None
                ax.plot(xs, ys, marker=marker, ms=3, c=color, label=name)
        final = os.path.join(run, "final_eval.json")
        if rows and os.path.exists(final):  # the full-split evaluation at the end, as an x
            axes[0].plot([rows[-1]["step"]], [_summary(final)["pass@1"]], "x", ms=8, c=color)
    if base_eval:
        axes[0].axhline(
            _summary(base_eval)["pass@1"], color="gray", ls="--", label="base (full split)"
        )
    for ax, (_, title) in zip(axes, _PANELS, strict=True):
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)


_RUNS = flags.DEFINE_list("runs", None, "GRPO workdirs, one per seed.", required=True)
_BASE = flags.DEFINE_string("base_eval", None, "The starting model's eval_<task>.json (optional).")
_OUT = flags.DEFINE_string("out", None, "Output path without extension.", required=True)


def main(argv: Sequence[str]) -> None:
    del argv
    figure(_RUNS.value, _BASE.value, _OUT.value + ".png")
    md = table(_RUNS.value, _BASE.value)
    with open(_OUT.value + ".md", "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    app.run(main)
