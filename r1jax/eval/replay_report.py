"""All-scenario RL runs side by side (with and without reward-model replay): the RM-oracle gap.

A reward model that stays frozen while the policy moves is scored on responses it never saw; the
policy can drift to where the RM and the oracle disagree (reward hacking). Each run's held-out
watch (`stages/rm_watch.py`) logs, at every eval step, the RM's mean score, the oracle's mean score
and their pair agreement on the same responses; this puts runs on the same axes:

    python -m r1jax.eval.replay_report \
        --runs=replay:/tmp/r1jax/g/all_scenario_rl,frozen:/tmp/r1jax/g/all_scenario_rl_frozen \
        --out=docs/all_scenario_replay

writes `<out>.png` (a row per aspect: the oracle's score, the RM's raw score and the RM-oracle
pair agreement against step; Countdown pass@1 and the per-source training reward beside them) and
`<out>.md` (every eval step of every run). The RM's raw score is on its own scale, which replay
moves, so the scale-free agreement is the gap to read: 1 - agreement is the share of response
pairs the oracle tells apart that the reward model orders the other way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from absl import app, flags

from r1jax.train import metrics as metrics_lib

ASPECTS = ("helpfulness", "harmlessness")
_COLUMNS = (  # (metric key, table header); {a} is the aspect
    ("eval_oracle_score_{a}", "{a} (oracle)"),
    ("eval_rm_score_{a}", "{a} (RM, raw)"),
    ("eval_rm_agreement_{a}", "{a} RM-oracle agreement"),
)
_PASS = "eval_pass@1"


def parse_runs(specs: Sequence[str]) -> list[tuple[str, str]]:
    """`name:path` (or a bare path, named by its folder) -> (name, path); ValueError if missing."""
    out = []
    for spec in specs:
        name, sep, path = spec.partition(":")
        if not sep:
            name, path = os.path.basename(os.path.normpath(spec)), spec
        if not os.path.exists(os.path.join(path, "metrics.jsonl")):
            raise ValueError(f"--runs: {path} has no metrics.jsonl; give GRPO workdirs")
        out.append((name, path))
    return out


def eval_rows(path: str) -> list[dict]:
    """The steps of a run at which the held-out watch ran (those with an RM-oracle score)."""
    rows = metrics_lib.read_jsonl(os.path.join(path, "metrics.jsonl"))
    return [r for r in rows if any(f"eval_oracle_score_{a}" in r for a in ASPECTS)]


def _cell(v: object) -> str:
    return f"{v:.3f}" if isinstance(v, int | float) and np.isfinite(v) else "-"


def table(runs: Sequence[tuple[str, str]]) -> str:
    """Markdown: one row per (run, eval step)."""
    cols = [(k.format(a=a), h.format(a=a)) for a in ASPECTS for k, h in _COLUMNS]
    cols.append((_PASS, "Countdown pass@1"))
    lines = ["| run | step | " + " | ".join(h for _, h in cols) + " |"]
    lines.append("|" + "---|" * (len(cols) + 2))
    for name, path in runs:
        for r in eval_rows(path):
            cells = " | ".join(_cell(r.get(k)) for k, _ in cols)
            lines.append(f"| {name} | {r['step']} | {cells} |")
    return "\n".join(lines) + "\n"


def _series(rows: Sequence[dict], key: str) -> tuple[list, list]:
    pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), int | float)]
    return list(zip(*pts, strict=True)) if pts else ([], [])  # type: ignore[return-value]


def figure(runs: Sequence[tuple[str, str]], path: str) -> None:
    """Rows: the aspects; columns: oracle score, RM score, agreement, and an extra panel."""
    from r1jax.train.figures import subplots

    ncol = len(_COLUMNS) + 1
    fig, axes = subplots(len(ASPECTS), ncol, figsize=(4.0 * ncol, 3.2 * len(ASPECTS)))
    for i, (name, run) in enumerate(runs):
        all_rows = metrics_lib.read_jsonl(os.path.join(run, "metrics.jsonl"))
        rows = eval_rows(run)
        for row_ax, a in zip(axes, ASPECTS, strict=True):
            for ax, (key, title) in zip(row_ax, _COLUMNS, strict=False):
                xs, ys = _series(rows, key.format(a=a))
                ax.plot(xs, ys, "o-", ms=4, c=f"C{i}", label=name)
                ax.set_title(title.format(a=a))
        xs, ys = _series(all_rows, _PASS)
        axes[0][-1].plot(xs, ys, "o-", ms=4, c=f"C{i}", label=name)
        for ls, source in (("-", "general"), (":", "harm")):
            xs, ys = _series(all_rows, f"{source}_reward")
            if xs:
                ys = metrics_lib.smooth(np.asarray(ys, float), 5)
                axes[1][-1].plot(xs, ys, ls, c=f"C{i}", label=f"{name}: {source}")
    axes[0][-1].set_title("Countdown pass@1 (held out)")
    axes[1][-1].set_title("training reward per source (smoothed)")
    for row_ax in axes:
        for ax in row_ax:
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
        row_ax[2].set_ylim(0, 1)
    axes[0][0].legend(fontsize=8)
    if axes[1][-1].lines:
        axes[1][-1].legend(fontsize=7)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: Sequence[str]) -> None:
    del argv
    try:
        runs = parse_runs(flags.FLAGS.runs)
    except ValueError as e:
        raise SystemExit(f"replay_report: {e}") from None
    figure(runs, flags.FLAGS.out + ".png")
    md = table(runs)
    with open(flags.FLAGS.out + ".md", "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":  # flags defined here: other report modules define --runs too
    flags.DEFINE_list("runs", None, "name:workdir of each all-scenario RL run.", required=True)
    flags.DEFINE_string("out", None, "Output path without extension.", required=True)
    app.run(main)
