"""Which finished stages stand (stages/freshness.py), on the tiny pipeline's plan; no model runs.

A `build` of an input that the pipeline itself makes is never run, so changing it leaves every
stage fresh; a build of an input outside the pipeline is still hashed. Stages finished under the
older hashing (builds included) stay fresh, reusable and skipped; a real change to them, or a rerun
of a stage they read, still makes them stale.
"""

from __future__ import annotations

import hashlib
import json
import os

import sft_runs

from r1jax import config_base
from r1jax.stages import freshness, neutral_keys, pipeline

r1_pipeline = config_base.sibling(
    os.path.join(sft_runs.ROOT, "experiments/r1_pipeline.py"), "r1_pipeline"
)


def _tiny():
    return r1_pipeline.get_config("tiny").copy_and_resolve_references()


def _older_fingerprints(plan: pipeline.Plan) -> dict[str, str]:
    """The fingerprints as computed before 2026-12-05: every nested build hashed."""
    out = {}
    for name in plan.order:
        flat = neutral_keys.hashed(plan.json[name])
        h = hashlib.sha256(json.dumps(flat, sort_keys=True).encode())
        for n in plan.needs[name]:
            h.update(out[n].encode())
        out[name] = h.hexdigest()[:16]
    return out


def _finish_all(plan: pipeline.Plan, workdir: str, fingerprints: dict[str, str]) -> None:
    """DONE.json for every stage, with the given fingerprints (no artifacts: plan logic only)."""
    for name in plan.order:
        os.makedirs(os.path.join(workdir, name), exist_ok=True)
        marker = {
            "stage": name,
            "fingerprint": fingerprints[name],
            "inputs": {n: fingerprints[n] for n in plan.needs[name]},
            "config": plan.json[name],
            "wall_s": 1.0,
        }
        with open(os.path.join(workdir, name, pipeline.MARKER), "w") as f:
            json.dump(marker, f)


def test_only_builds_of_pipeline_inputs_are_dropped():
    config = {
        "stage": "sft",
        "data": {"inputs": ["cold_start_data"], "build": {"stage": "cold_start_data", "x": 1}},
        "init": {"checkpoint": "/models/base", "build": {"stage": "pretrain", "steps": 5}},
        "other": {"checkpoint": "base", "build": {"stage": "pretrain", "steps": 7}},
    }
    out = freshness.without_stage_builds(config, ("base", "cold_start_data"))
    assert "build" not in out["data"] and out["data"]["inputs"] == ["cold_start_data"]
    assert out["init"]["build"] == {"stage": "pretrain", "steps": 5}  # a path: may be built
    assert "build" not in out["other"]
    assert "build" in config["data"]  # the input is not modified
    # with no stage of the pipeline named, every build is kept
    assert freshness.without_stage_builds(config, ()) == config


def test_a_changed_build_of_a_pipeline_input_changes_nothing(tmp_path):
    wd = str(tmp_path)
    plan = pipeline.Plan(_tiny())
    _finish_all(plan, wd, plan.fingerprint)
    changed = _tiny()
    build = changed.stages.cold_start_sft.data.build
    assert build.stage == "cold_start_data"
    build.designed.countdown = build.designed.countdown + 7
    changed_plan = pipeline.Plan(changed)
    assert changed_plan.fingerprint == plan.fingerprint
    assert set(pipeline.status(changed_plan, wd).values()) == {"done"}
    # the same key changed in the stage that makes the data: it and what reads it are stale
    changed.stages.cold_start_data.designed.countdown = build.designed.countdown
    status = pipeline.status(pipeline.Plan(changed), wd)
    assert status["cold_start_data"].startswith(
        "stale: config.stages.cold_start_data.designed.countdown"
    )
    assert status["cold_start_sft"] == "stale: its input stage cold_start_data changed"
    assert status["base"] == "done" and status["r1_zero"] == "done"


def test_stages_finished_under_the_older_hashing_stay_fresh(tmp_path, capsys):
    wd, other = str(tmp_path / "run"), str(tmp_path / "other")
    plan = pipeline.Plan(_tiny())
    older = _older_fingerprints(plan)
    differ = {n for n in plan.order if older[n] != plan.fingerprint[n]}
    assert "cold_start_sft" in differ and "base" not in differ  # builds were hashed then
    _finish_all(plan, other, older)
    assert set(pipeline.status(plan, other).values()) == {"done"}
    # linked from another run and skipped, nothing run
    reuse = ("base", "r1_zero", "cold_start_data", "cold_start_sft")
    c = _tiny()
    c.reuse_from, c.reuse, c.until = other, reuse, "cold_start_sft"
    assert pipeline.run(c, wd)["stages"] == list(reuse)
    assert capsys.readouterr().out.count("already finished") == 4
    # a real change is still found and named, and reaches exactly the stages after it
    changed = _tiny()
    changed.stages.r1_zero.rl.beta = 0.5
    status = pipeline.status(pipeline.Plan(changed), other)
    assert status["r1_zero"].startswith("stale: config.stages.r1_zero.rl.beta")
    assert status["cold_start_sft"] == "stale: its input stage cold_start_data changed"
    assert status["base"] == "done" and status["student_base"] == "done"


def test_a_rerun_input_makes_an_older_stage_stale(tmp_path):
    """A stage read an input run whose DONE.json has since been replaced by another run's."""
    wd = str(tmp_path)
    plan = pipeline.Plan(_tiny())
    older = _older_fingerprints(plan)
    _finish_all(plan, wd, older)
    marker = os.path.join(wd, "cold_start_data", pipeline.MARKER)
    with open(marker) as f:
        m = json.load(f)
    m["fingerprint"] = "0123456789abcdef"  # another run of the same config, written by other code
    with open(marker, "w") as f:
        json.dump(m, f)
    status = pipeline.status(plan, wd)
    assert status["cold_start_sft"] == "stale: its input stage cold_start_data changed"
    assert status["r1_zero"] == "done"
