"""The pipeline's stage comparison over seeds: mean and spread per stage, and the recipe's claims.

One seed of a chain of noisy stages says little, so the README reports the whole recipe over seeds:

    python -m r1jax.eval.pipeline_seeds --runs=/tmp/r1jax/h0,/tmp/r1jax/h1,/tmp/r1jax/h2 \
        --out=docs/pipeline_seeds

reads each run's `report/report.json` (stages/report.py) and writes `<out>.md` (mean +- standard
deviation over seeds for every stage and column, then each claim of the R1 paper that the toy can
check, with its value per seed) and `<out>.png` (the report's panels, a bar per stage at the mean,
one dot per seed).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from absl import app, flags

from r1jax.eval import stage_report

Rows = Mapping[str, Mapping[str, float]]


def load(run: str) -> Rows:
    path = os.path.join(run, "report", "report.json")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} does not exist; finish that run's report stage first "
            f"(python -m r1jax.main --config=experiments/r1_pipeline.py --workdir={run})"
        )
    with open(path) as f:
        return json.load(f)["rows"]


def _get(rows: Rows, stage: str, column: str) -> float:
    return float(rows.get(stage, {}).get(column, float("nan")))


# (claim, its value from one seed's rows, whether the value meets the claim)
CLAIMS: tuple[tuple[str, Callable[[Rows], float], Callable[[float], bool]], ...] = (
    (
        "R1 (after reasoning RL) Countdown pass@1 >= 0.60",
        lambda r: _get(r, "reasoning_rl", "countdown pass@1"),
        lambda v: v >= 0.60,
    ),
    (
        "R1 above R1-Zero on Countdown pass@1 (difference)",
        lambda r: (
            _get(r, "reasoning_rl", "countdown pass@1") - _get(r, "r1_zero", "countdown pass@1")
        ),
        lambda v: v > 0,
    ),
    (
        "accuracy-only RL amplifies language mixing (R1-Zero minus base, difference)",
        lambda r: _get(r, "r1_zero", "language mixing") - _get(r, "base", "language mixing"),
        lambda v: v > 0,
    ),
    (
        "with the LC reward mixing <= 2 % (reasoning RL)",
        lambda r: _get(r, "reasoning_rl", "language mixing"),
        lambda v: v <= 0.02,
    ),
    (
        "cold start makes the readable pattern ~100 % (>= 0.95, cold-start SFT)",
        lambda r: _get(r, "cold_start_sft", "readable rate"),
        lambda v: v >= 0.95,
    ),
    (
        "readable pattern kept through RL (>= 0.95, reasoning RL)",
        lambda r: _get(r, "reasoning_rl", "readable rate"),
        lambda v: v >= 0.95,
    ),
    (
        "all-scenario RL raises helpfulness (difference to multi-domain SFT)",
        lambda r: (
            _get(r, "all_scenario_rl", "helpfulness (oracle)")
            - _get(r, "multi_domain_sft", "helpfulness (oracle)")
        ),
        lambda v: v > 0,
    ),
    (
        "all-scenario RL raises harmlessness (difference to multi-domain SFT)",
        lambda r: (
            _get(r, "all_scenario_rl", "harmlessness (oracle)")
            - _get(r, "multi_domain_sft", "harmlessness (oracle)")
        ),
        lambda v: v > 0,
    ),
    (
        "all-scenario RL holds Countdown pass@1 within 2 points (difference)",
        lambda r: (
            _get(r, "all_scenario_rl", "countdown pass@1")
            - _get(r, "multi_domain_sft", "countdown pass@1")
        ),
        lambda v: v >= -0.02,
    ),
    (
        "distilled student beats the same student by RL (pass@1 difference)",
        lambda r: (
            _get(r, "distill", "countdown pass@1") - _get(r, "distill_rl", "countdown pass@1")
        ),
        lambda v: v > 0,
    ),
)


def _fmt(values: Sequence[float]) -> str:
    v = np.asarray(values, dtype=np.float64)
    if np.isnan(v).all():
        return "-"
    if len(v) == 1:
        return f"{v[0]:.3f}"
    return f"{np.nanmean(v):.3f} +- {np.nanstd(v, ddof=1):.3f}"


def markdown(per_seed: Sequence[Rows], labels: Sequence[str]) -> str:
    stages = list(per_seed[0])
    columns = [c for c in per_seed[0][stages[0]] if any(c in r[s] for r in per_seed for s in r)]
    head = f"# The R1 recipe at toy scale, {len(per_seed)} seeds (mean +- sd)\n\n"
    lines = ["| stage | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for stage in stages:
        cells = [_fmt([_get(r, stage, c) for r in per_seed]) for c in columns]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    claims = [
        "| claim | " + " | ".join(labels) + " | mean | met |",
        "|---|" + "---|" * (len(labels) + 2),
    ]
    for title, value, met in CLAIMS:
        values = [value(r) for r in per_seed]
        mean = float(np.nanmean(values)) if not np.isnan(values).all() else float("nan")
        verdict = "-" if mean != mean else ("yes" if met(mean) else "no")
        spec = "+.3f" if "difference" in title else ".3f"
        cells = [format(round(v, 6) + 0.0, spec) for v in [*values, mean]]  # no "-0.000"
        claims.append(f"| {title} | " + " | ".join(cells) + f" | {verdict} |")
    return (
        head
        + "\n".join(lines)
        + "\n\n## The paper's claims, per seed\n\n"
        + "\n".join(claims)
        + "\n"
    )


def figure(per_seed: Sequence[Rows], path: str, title: str) -> str:
    """stage_report's panels: a bar per stage at the mean over seeds, each seed a dot."""
    stages = list(per_seed[0])
    mean = {
        s: {c: float(np.nanmean([_get(r, s, c) for r in per_seed])) for c in per_seed[0][s]}
        for s in stages
    }
    from r1jax.train.figures import subplots

    metrics = [m for m in stage_report.FIGURE if any(m in r for r in mean.values())]
    cols = 3
    nrows = max(1, -(-len(metrics) // cols))
    fig, axes = subplots(nrows, cols, figsize=(4.2 * cols, 3.2 * nrows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        ax.bar(range(len(stages)), [mean[s].get(metric, np.nan) for s in stages], color="#9ecae1")
        for i, s in enumerate(stages):
            ys = [_get(r, s, metric) for r in per_seed]
            ax.plot([i] * len(ys), ys, "o", color="#08519c", markersize=3)
            ax.text(i, np.nanmean(ys) + 0.03, f"{np.nanmean(ys):.2f}", ha="center", fontsize=7)
        ax.set_title(metric, fontsize=10)
        ax.set_xticks(range(len(stages)), stages, rotation=40, ha="right", fontsize=8)
        ax.set_ylim(0, 1.08)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path + ".tmp.png", dpi=110)
    os.replace(path + ".tmp.png", path)
    return path


def main(argv: Sequence[str]) -> None:
    del argv
    runs, out = flags.FLAGS.runs, flags.FLAGS.out
    per_seed = [load(run) for run in runs]
    labels = [os.path.basename(os.path.normpath(run)) for run in runs]
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out + ".md", "w") as f:
        f.write(markdown(per_seed, labels))
    title = f"R1 recipe stages, {len(per_seed)} seeds: mean (bars), seeds (dots)"
    figure(per_seed, out + ".png", title)
    print(f"wrote {out}.md and {out}.png")


if __name__ == "__main__":  # flags defined here: other report modules define --runs too
    flags.DEFINE_list("runs", None, "pipeline workdirs, one per seed", required=True)
    flags.DEFINE_string("out", None, "output path without extension", required=True)
    app.run(main)
