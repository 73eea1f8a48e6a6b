"""The replay report puts each run's eval steps (RM vs oracle) in one table and one figure."""

from __future__ import annotations

import json
import os

import pytest

from r1jax.eval import replay_report


def _run(root, name: str, agree: float) -> str:
    d = root / name
    os.makedirs(d)
    rows = [
        {
            "step": 0,
            "reward": 0.1,
            "general_reward": 0.5,
            "eval_pass@1": 0.5,
            "eval_oracle_score_helpfulness": 0.2,
            "eval_rm_score_helpfulness": 1.5,
            "eval_rm_agreement_helpfulness": 0.7,
            "eval_oracle_score_harmlessness": 0.9,
        },
        {"step": 1, "reward": 0.2, "general_reward": 0.6, "harm_reward": -0.1},
        {
            "step": 2,
            "general_reward": 0.7,
            "eval_pass@1": 0.52,
            "eval_oracle_score_helpfulness": 0.3,
            "eval_rm_score_helpfulness": 2.5,
            "eval_rm_agreement_helpfulness": agree,
            "eval_oracle_score_harmlessness": 1.0,
        },
    ]
    (d / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return str(d)


def test_table_rows_and_figure(tmp_path):
    runs = replay_report.parse_runs(
        [f"replay:{_run(tmp_path, 'a', 0.75)}", _run(tmp_path, "frozen", 0.55)]
    )
    assert [n for n, _ in runs] == ["replay", "frozen"]  # a bare path is named by its folder
    lines = replay_report.table(runs).strip().splitlines()
    assert lines[0].startswith("| run | step | helpfulness (oracle) | helpfulness (RM, raw) |")
    assert lines[0].endswith("| Countdown pass@1 |")
    assert len(lines) == 2 + 4  # two eval steps per run; step 1 has no watch
    # helpfulness: oracle, RM, agreement; harmlessness: oracle, RM (absent), agreement (absent)
    assert lines[3] == "| replay | 2 | 0.300 | 2.500 | 0.750 | 1.000 | - | - | 0.520 |"
    assert lines[5] == "| frozen | 2 | 0.300 | 2.500 | 0.550 | 1.000 | - | - | 0.520 |"
    replay_report.figure(runs, str(tmp_path / "gap.png"))
    assert os.path.getsize(tmp_path / "gap.png") > 10_000


def test_a_folder_without_metrics_is_named(tmp_path):
    with pytest.raises(ValueError, match="no metrics.jsonl"):
        replay_report.parse_runs([f"x:{tmp_path}"])
