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

from r1jax.eval import metrics as eval_metrics
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
        rows = json.load(f)["rows"]
    return {stage: _with_pattern(row, run, stage) for stage, row in rows.items()}


def _with_pattern(row: Mapping[str, float], run: str, stage: str) -> dict:
    """The row, with its `pattern rate` computed from the report's Countdown records when the
    report predates that column (the same samples; absent records leave it out)."""
    out = dict(row)
    path = os.path.join(run, "report", "records", f"{stage}.json")
    if "pattern rate" in out or not os.path.exists(path):
        return out
    with open(path) as f:
        records = json.load(f).get("records", {})
    samples = [s for r in records.get("countdown", []) for s in r["samples"]]
    if not samples:
        return out
    value, cols = eval_metrics.pattern_rate(samples), list(out)
    at = cols.index("readable rate") + 1 if "readable rate" in cols else len(cols)
    cols.insert(at, "pattern rate")  # where the report's own column sits (stage_report.COLUMNS)
    return {c: value if c == "pattern rate" else out[c] for c in cols}


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
    (  # the same two claims for the pattern's form alone: reasoning, then a summary holding
        # the answer, in one language (readable rate also forbids a repeated attempt)
        "cold start makes the pattern's form ~100 % (repeats allowed, >= 0.95, cold-start SFT)",
        lambda r: _get(r, "cold_start_sft", "pattern rate"),
        lambda v: v >= 0.95,
    ),
    (
        "the pattern's form kept through RL (repeats allowed, >= 0.95, reasoning RL)",
        lambda r: _get(r, "reasoning_rl", "pattern rate"),
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
    columns = list(dict.fromkeys(c for rows in per_seed for row in rows.values() for c in row))
    table = {
        stage: {c: _fmt([_get(r, stage, c) for r in per_seed]) for c in columns}
        for stage in per_seed[0]
    }
    claims = {}
    for title, value, met in CLAIMS:
        values = [value(r) for r in per_seed]
        mean = float("nan") if np.isnan(values).all() else float(np.nanmean(values))
        spec = "+.3f" if "difference" in title else ".3f"
        cells = [format(round(v, 6) + 0.0, spec) for v in [*values, mean]]  # no "-0.000"
        claims[title] = dict(zip([*labels, "mean"], cells, strict=True))
        claims[title]["met"] = "-" if mean != mean else ("yes" if met(mean) else "no")
    return (
        f"# The R1 recipe at toy scale, {len(per_seed)} seeds (mean +- sd)\n\n"
        + eval_metrics.markdown_table(table)
        + "\n## The paper's claims, per seed\n\n"
        + eval_metrics.markdown_table(claims)
    )


def figure(per_seed: Sequence[Rows], path: str, title: str) -> str:
    """The report's figure with bars at the mean over seeds and each seed as a dot."""
    mean = {
        s: {c: float(np.nanmean([_get(r, s, c) for r in per_seed])) for c in per_seed[0][s]}
        for s in per_seed[0]
    }
    return stage_report.figure(mean, path, title, points=per_seed)


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
