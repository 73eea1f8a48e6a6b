"""eval/pipeline_seeds.py: the over-seeds table, the claims with hand-computed values, the figure."""

from __future__ import annotations

import json
import os

import pytest

from r1jax.eval import pipeline_seeds


def _rows(r1z: float, rrl: float, mix: float, distill: float) -> dict:
    def row(**kw):
        base = {"countdown pass@1": 0.3, "language mixing": 0.0, "readable rate": 0.0}
        base.update({"helpfulness (oracle)": 0.1, "harmlessness (oracle)": 0.9})
        return {**base, **kw}

    return {
        "base": row(),
        "r1_zero": row(**{"countdown pass@1": r1z, "language mixing": mix}),
        "cold_start_sft": row(**{"readable rate": 0.97}),
        "reasoning_rl": row(**{"countdown pass@1": rrl, "readable rate": 0.9}),
        "multi_domain_sft": row(**{"countdown pass@1": 0.50}),
        "all_scenario_rl": row(
            **{"countdown pass@1": 0.49, "helpfulness (oracle)": 0.3, "harmlessness (oracle)": 1.0}
        ),
        "distill": row(**{"countdown pass@1": distill}),
        "distill_rl": row(**{"countdown pass@1": 0.2}),
    }


def _write(tmp_path, name: str, rows: dict) -> str:
    run = tmp_path / name
    os.makedirs(run / "report")
    (run / "report" / "report.json").write_text(json.dumps({"rows": rows, "summaries": {}}))
    return str(run)


def test_table_means_spreads_and_claims(tmp_path):
    runs = [
        _write(tmp_path, "s0", _rows(0.40, 0.62, 0.10, 0.25)),
        _write(tmp_path, "s1", _rows(0.44, 0.56, 0.06, 0.15)),
    ]
    per_seed = [pipeline_seeds.load(r) for r in runs]
    md = pipeline_seeds.markdown(per_seed, ["s0", "s1"])
    # reasoning RL pass@1: mean 0.59, sample sd |0.62 - 0.56| / sqrt(2) = 0.0424
    assert "| reasoning_rl | 0.590 +- 0.042 |" in md
    claims = {line.split(" | ")[0][2:]: line for line in md.splitlines() if line.startswith("| ")}
    assert claims["R1 (after reasoning RL) Countdown pass@1 >= 0.60"].endswith(
        "| 0.620 | 0.560 | 0.590 | no |"
    )
    assert claims["R1 above R1-Zero on Countdown pass@1 (difference)"].endswith(
        "| +0.220 | +0.120 | +0.170 | yes |"
    )
    assert claims["with the LC reward mixing <= 2 % (reasoning RL)"].endswith("| yes |")
    assert claims["all-scenario RL holds Countdown pass@1 within 2 points (difference)"].endswith(
        "| -0.010 | -0.010 | -0.010 | yes |"
    )
    assert claims["distilled student beats the same student by RL (pass@1 difference)"].endswith(
        "| +0.050 | -0.050 | +0.000 | no |"
    )
    png = pipeline_seeds.figure(per_seed, str(tmp_path / "fig.png"), "t")
    assert os.path.getsize(png) > 10_000


def test_a_run_without_a_report_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="finish that run's report stage"):
        pipeline_seeds.load(str(tmp_path / "nothing"))


def test_pattern_rate_is_counted_from_the_records_of_older_reports(tmp_path):
    """A report made before the `pattern rate` column gets it from its Countdown records: the
    share of samples in the pattern's form (tags, one summary line with the answer, one language)
    whether or not an attempt repeats; the claims read it."""
    good = " <think>\n6-4=2,2*2=4 vs 4 yes\n</think>\nso 2*(6-4) = 4\n<answer>2*(6-4)</answer>"
    repeated = good.replace("<think>\n", "<think>\n6+4=10 vs 4 no\n6+4=10 vs 4 no\n")
    no_summary = good.replace("so 2*(6-4) = 4\n", "")
    run = _write(tmp_path, "s0", _rows(0.40, 0.62, 0.10, 0.25))
    os.makedirs(os.path.join(run, "report", "records"))
    for stage, samples in (
        ("cold_start_sft", [good, repeated, repeated, no_summary]),  # 3 of 4 in form
        ("reasoning_rl", [good, good, repeated, good]),  # 4 of 4
    ):
        recs = {"records": {"countdown": [{"samples": samples[:2]}, {"samples": samples[2:]}]}}
        with open(os.path.join(run, "report", "records", f"{stage}.json"), "w") as f:
            json.dump(recs, f)
    rows = pipeline_seeds.load(run)
    assert rows["cold_start_sft"]["pattern rate"] == 0.75
    assert rows["reasoning_rl"]["pattern rate"] == 1.0
    assert "pattern rate" not in rows["base"]  # no records: left out, not invented
    md = pipeline_seeds.markdown([rows], ["s0"])
    claims = {line.split(" | ")[0][2:]: line for line in md.splitlines() if line.startswith("| ")}
    key = "cold start makes the pattern's form ~100 % (repeats allowed, >= 0.95, cold-start SFT)"
    assert claims[key].endswith("| 0.750 | 0.750 | no |")
    key = "the pattern's form kept through RL (repeats allowed, >= 0.95, reasoning RL)"
    assert claims[key].endswith("| 1.000 | 1.000 | yes |")
