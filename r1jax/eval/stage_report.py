"""The pipeline's stage comparison: one row per model, as Markdown, JSON-ready rows and one figure.

Rows are `{column: value}` with columns such as "countdown pass@1" (see COLUMNS); the figure has one
panel per headline metric with a bar per stage, in order, in the style of the R1 paper's stage
comparison (each stage's effect on each capability side by side).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from r1jax.eval import metrics as eval_metrics

# (suite, summary key, column title) - the table's columns, in order
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("countdown", "pass@1", "countdown pass@1"),
    ("countdown", "cons@k", "countdown cons@k"),
    ("countdown", "pass@k", "countdown pass@k"),
    ("arithmetic", "pass@1", "arithmetic pass@1"),
    ("arithmetic", "cons@k", "arithmetic cons@k"),
    ("arithmetic", "pass@k", "arithmetic pass@k"),
    ("countdown", "format_rate", "format rate"),
    ("countdown", "readable_rate", "readable rate"),
    ("countdown", "pattern_rate", "pattern rate"),  # readable with repeated attempts allowed
    ("countdown", "language_mixing_rate", "language mixing"),
    ("general", "pass@1", "general pass@1"),
    ("general", "oracle_helpfulness", "helpfulness (oracle)"),
    ("harm", "oracle_harmlessness", "harmlessness (oracle)"),
    ("countdown", "length_mean", "countdown length"),
)
FIGURE = (
    "countdown pass@1",
    "arithmetic pass@1",
    "readable rate",
    "language mixing",
    "helpfulness (oracle)",
    "harmlessness (oracle)",
)


def row(per_suite: Mapping[str, Mapping[str, float]], wall_s: float | None, k: int) -> dict:
    """One model's table row from its per-suite summaries (absent suites or keys are left out);
    k is the number of samples per problem (cons@k, pass@k)."""
    out: dict = {}
    for suite, key, title in COLUMNS:
        value = per_suite.get(suite, {}).get(key.replace("@k", f"@{k}"))
        if value is not None:
            out[title.replace("@k", f"@{k}")] = float(value)
    if wall_s is not None:
        out["stage wall (min)"] = wall_s / 60.0
    return out


def markdown(rows: Mapping[str, Mapping[str, float]], title: str) -> str:
    return f"# {title}\n\n" + eval_metrics.markdown_table(rows) + "\n"


def figure(
    rows: Mapping[str, Mapping[str, float]],
    path: str,
    title: str,
    points: Sequence[Mapping[str, Mapping[str, float]]] = (),
) -> str:
    """Bars per stage for each headline metric present in the rows; returns the PNG path.
    `points`: rows of single runs (seeds) drawn as dots over the bars, which are then their mean."""
    import matplotlib

    from r1jax.train.figures import subplots

    names = list(rows)
    metrics: Sequence[str] = [m for m in FIGURE if any(m in r for r in rows.values())]
    cols = 3
    nrows = max(1, -(-len(metrics) // cols))
    fig, axes = subplots(nrows, cols, figsize=(4.2 * cols, 3.2 * nrows), squeeze=False)
    colors = matplotlib.colormaps["viridis"](
        [i / max(1, len(names) - 1) for i in range(len(names))]
    )
    for ax, metric in zip(axes.flat, metrics, strict=False):
        values = [rows[n].get(metric, float("nan")) for n in names]
        ax.bar(range(len(names)), values, color=colors)
        for i, n in enumerate(names):
            ys = [p.get(n, {}).get(metric, float("nan")) for p in points]
            ax.plot([i] * len(ys), ys, "o", color="black", markersize=3)
        ax.set_title(metric, fontsize=10)
        ax.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=8)
        ax.set_ylim(0, 1.05)
        for i, v in enumerate(values):
            if v == v:  # not NaN
                ax.text(i, v + 0.02, f"{v:.2f}", ha="center", fontsize=7)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path + ".tmp.png", dpi=110)
    os.replace(path + ".tmp.png", path)
    return path
