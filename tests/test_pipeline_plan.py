"""The one-config pipeline's plan (stages/pipeline.py, experiments/r1_pipeline.py), no model run.

Fingerprints chain along `needs`, so a changed key makes exactly the stage and those downstream of
it stale, named with the key; the config variants differ only where they say they do. The tiny
chain end to end is tests/test_pipeline.py.
"""

from __future__ import annotations

import os

import pytest
import sft_runs

from r1jax import config_base
from r1jax.config_check import ConfigError
from r1jax.stages import pipeline

EXP = "experiments/r1_pipeline.py"
r1_pipeline = config_base.sibling(os.path.join(sft_runs.ROOT, EXP), "r1_pipeline")
DOWNSTREAM_OF_REASONING_RL = {
    "reasoning_rl",
    "rejection_sampling",
    "multi_domain_sft",
    "preference_data",
    "rm_helpfulness",
    "rm_harmlessness",
    "all_scenario_rl",
    "distill",
    "eval_reasoning_rl",
    "eval_multi_domain_sft",
    "eval_all_scenario_rl",
    "eval_distill",
    "report",
}


def _tiny():
    return r1_pipeline.get_config("tiny")


def _finish_all(plan: pipeline.Plan, workdir: str) -> None:
    """DONE.json for every stage, as a finished run leaves them (no artifacts: plan logic only)."""
    for name in plan.order:
        os.makedirs(os.path.join(workdir, name), exist_ok=True)
        pipeline._write_marker(os.path.join(workdir, name), plan, name, 1.0)


def test_a_changed_key_makes_exactly_the_downstream_stages_stale(tmp_path):
    """On the full-size chain (plan only, nothing runs): preference data reads the multi-domain
    model there, so the reward models are downstream of reasoning RL too; the student's base and
    its RL comparison are not."""
    wd = str(tmp_path)
    _finish_all(pipeline.Plan(r1_pipeline.get_config()), wd)
    changed = r1_pipeline.get_config()
    changed.stages.reasoning_rl.rl.beta = 0.0
    status = pipeline.status(pipeline.Plan(changed), wd)
    stale = {n for n, s in status.items() if s.startswith("stale")}
    assert stale == DOWNSTREAM_OF_REASONING_RL
    assert status["reasoning_rl"] == "stale: config.stages.reasoning_rl.rl.beta 0.02 -> 0.0"
    assert status["rejection_sampling"] == "stale: its input stage reasoning_rl changed"
    assert set(pipeline.status(pipeline.Plan(r1_pipeline.get_config()), wd).values()) == {"done"}
    with pytest.raises(ConfigError, match=r"stage rejection_sampling .*input stage reasoning_rl"):
        pipeline.run(_with(changed, only="rejection_sampling"), wd)


def test_finished_stages_are_skipped_without_running(tmp_path, capsys):
    wd = str(tmp_path)
    _finish_all(pipeline.Plan(_tiny()), wd)
    out = pipeline.run(_with(_tiny(), until="cold_start_sft"), wd)
    assert out["stages"] == ["base", "r1_zero", "cold_start_data", "cold_start_sft"]
    assert capsys.readouterr().out.count("already finished") == 4


def test_a_missing_artifact_names_the_stage_that_makes_it(tmp_path):
    wd = str(tmp_path)
    plan = pipeline.Plan(_tiny())
    for name in ("base", "r1_zero"):
        os.makedirs(os.path.join(wd, name))
        pipeline._write_marker(os.path.join(wd, name), plan, name, 1.0)
    c = _with(_tiny(), only="cold_start_sft")
    c.stages.cold_start_sft.data.batch_size = 8  # this process's 8 devices (tiny is a laptop's 1)
    with pytest.raises(ConfigError, match=r"needs the artifacts of stage cold_start_data .*until"):
        pipeline.run(c, wd)


def _with(c, **kv):
    c = c.copy_and_resolve_references()
    for k, v in kv.items():
        c[k] = v
    return c


@pytest.mark.parametrize(
    "edit,match",
    [
        (
            lambda c: c.stages.r1_zero.rl.update(dict(betta=0.1)),
            r"config\.stages\.r1_zero\.rl\.betta",
        ),
        (lambda c: c.update(dict(order=("base", "nope"))), r"config\.order names 'nope'"),
        (lambda c: c.needs.update(dict(r1_zero=("report",))), r"not a stage before 'r1_zero'"),
        (lambda c: c.update(dict(only="r1_zer0")), r"'r1_zer0', which is not in config\.order"),
        (lambda c: c.update(dict(order=())), r"config\.order is empty"),
        (lambda c: c.update(dict(workers=0)), r"config\.workers=0 must be >= 1"),
        (lambda c: c.update(dict(heap="huge")), r"config\.heap='huge' must be 'hugepages' or ''"),
    ],
    ids=["stage_key", "unknown_stage", "needs_later", "only_unknown", "empty", "workers", "heap"],
)
def test_bad_pipeline_configs_are_one_line_errors(tmp_path, edit, match):
    c = _tiny()
    edit(c)
    with pytest.raises(ConfigError, match=match) as e:
        pipeline.run(c, str(tmp_path))
    assert "\n" not in str(e.value)


def _flat(c, prefix: str = "") -> dict:
    out = {}
    for k, v in c.items():
        if hasattr(v, "items"):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_records_of_a_model_given_as_a_path_stay_in_the_report_folder():
    from r1jax.stages.report import _records_file

    assert _records_file("reasoning_rl") == "reasoning_rl.json"
    assert _records_file("/runs/x/model/") == "runs__x__model.json"
    assert _records_file("../runs/model") == "runs__model.json"


def test_the_one_hour_default_cuts_amounts_not_the_method():
    """The default chain differs from `:full` only in how much each stage does (steps, prompts,
    evaluation and checkpoint cadence) and in how an update is split into micro-batches (the same
    gradient up to float rounding), never in model, loss, rewards, data or sampling."""
    hour, full = r1_pipeline.get_config(), r1_pipeline.get_config("full")
    assert hour.order == full.order and hour.needs == full.needs
    amounts = {"steps", "num_prompts", "eval.every_steps", "eval.final", "checkpoint.every_steps"}
    amounts.add("per_task.arithmetic.num_prompts")
    amounts.add("rl.grad_accum")
    changed = {}
    for name in full.order:
        a, b = _flat(hour.stages[name]), _flat(full.stages[name])
        assert a.keys() == b.keys(), name
        keys = {k for k in a if a[k] != b[k]}
        assert keys <= amounts, (name, keys - amounts)
        changed[name] = {k: (a[k], b[k]) for k in keys}
    assert not changed["base"] and not changed["student_base"]  # shared by seeds and `:full`
    assert changed["rejection_sampling"] == {
        "num_prompts": (512, 1024),
        "per_task.arithmetic.num_prompts": (1536, 3072),
    }
    for name in ("r1_zero", "reasoning_rl", "all_scenario_rl", "distill_rl", "rm_helpfulness"):
        assert changed[name]["steps"][0] < changed[name]["steps"][1], name
    assert not changed["cold_start_sft"] and not changed["report"]
    for name in ("reasoning_rl", "all_scenario_rl"):
        assert changed[name]["rl.grad_accum"] == (4, 1), name


def test_full_size_chains_run_two_stages_side_by_side_and_tiny_ones_one():
    """The main job's wall is what `workers` buys (README: 55.1 minutes from nothing with 2); the
    tiny chain's stages take seconds, where a process per stage loses."""
    for arg, workers in (("", 2), ("full", 2), ("seed=1", 2), ("tiny", 1), ("quick", 1)):
        assert r1_pipeline.get_config(arg).workers == workers, arg


def test_quick_is_the_tiny_chain_with_a_larger_report():
    """`:quick` trains exactly what the CI's `:tiny` chain trains (so the end-to-end tests cover
    it); only the report samples more problems, for a table that is less of a coin toss."""
    quick, tiny = r1_pipeline.get_config("quick"), r1_pipeline.get_config("tiny")
    assert quick.order == tiny.order and quick.needs == tiny.needs
    for name in tiny.order:
        if name != "report" and not name.startswith("eval_"):
            assert _flat(quick.stages[name]) == _flat(tiny.stages[name]), name
    for name in [n for n in tiny.order if n.startswith("eval_")] + ["report"]:
        a, b = _flat(quick.stages[name]), _flat(tiny.stages[name])
        assert {k for k in a if a[k] != b[k]} == {"num_problems", "samples"}, name
    assert (a["num_problems"], a["samples"]) == (16, 4) and (b["num_problems"], b["samples"]) == (
        4,
        2,
    )
