"""The seed report's table carries the right numbers (mean and sample std over seeds)."""

from __future__ import annotations

import json
import os

from r1jax.eval import seed_report


def _run(root, name: str, pass1: float, cons: float, length: float) -> str:
    d = root / name
    os.makedirs(d)
    summary = {"pass@1": pass1, "cons@8": cons, "pass@8": 0.9, "pass@4": 0.1, "length_mean": length}
    (d / "final_eval.json").write_text(json.dumps({"summary": summary, "records": []}))
    rows = [
        {"step": 0, "reward": 0.5, "accuracy": 0.2, "eval_pass@1": 0.3},
        {"step": 1, "reward": 0.7, "accuracy": 0.4, "completion_length_mean": length},
    ]
    (d / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return str(d)


def test_table_and_figure(tmp_path):
    runs = [_run(tmp_path, "s0", 0.5, 0.6, 80.0), _run(tmp_path, "s1", 0.7, 0.8, 100.0)]
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"summary": {"pass@1": 0.25, "cons@8": 0.4, "length_mean": 90.0}}))
    md = seed_report.table(runs, str(base))
    lines = md.strip().splitlines()
    assert lines[0].startswith("| model | pass@1 | cons@k | pass@k | format_rate | length_mean")
    assert lines[2] == "| base | 0.250 | 0.400 | - | - | 90.0 | - |"
    # pass@k is the largest k present (pass@8, not pass@4); std has ddof=1: std(0.5, 0.7) = 0.1414
    assert lines[3] == "| s0 | 0.500 | 0.600 | 0.900 | - | 80.0 | - |"
    assert lines[5].startswith(
        "| mean ± std over 2 seeds | 0.600 ± 0.141 | 0.700 ± 0.141 | 0.900 ± 0.000"
    )
    assert "90.0 ± 14.1" in lines[5]
    seed_report.figure(runs, str(base), str(tmp_path / "fig.png"))
    assert os.path.getsize(tmp_path / "fig.png") > 10_000
