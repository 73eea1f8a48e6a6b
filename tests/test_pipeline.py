"""The one-config pipeline (stages/pipeline.py, experiments/r1_pipeline.py).

Plan-level tests need no model: fingerprints chain along `needs`, so a changed key makes exactly the
stage and those downstream of it stale, named with the key. The slow tests run the `:tiny` recipe
end to end once, then: a rerun skips every finished stage, `--config.only=report` reruns one stage
from existing artifacts, and a run SIGKILLed in the middle of a stage, rerun, gives a report equal
to the uninterrupted run's.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
import sft_runs

from r1jax import config_base
from r1jax.config_check import ConfigError
from r1jax.eval import readability
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
    with pytest.raises(ConfigError, match=r"needs the artifacts of stage cold_start_data .*until"):
        pipeline.run(_with(_tiny(), only="cold_start_sft"), wd)


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
    ],
    ids=["stage_key", "unknown_stage", "needs_later", "only_unknown", "empty", "workers"],
)
def test_bad_pipeline_configs_are_one_line_errors(tmp_path, edit, match):
    c = _tiny()
    edit(c)
    with pytest.raises(ConfigError, match=match) as e:
        pipeline.run(c, str(tmp_path))
    assert "\n" not in str(e.value)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    wd = str(tmp_path_factory.mktemp("pipeline") / "run")
    p = sft_runs.ok(sft_runs.run(EXP + ":tiny", wd))
    with open(os.path.join(wd, "report", "report.json"), encoding="utf-8") as f:
        return wd, p, json.load(f)


@pytest.mark.slow
def test_tiny_pipeline_end_to_end(tiny_run):
    wd, p, report = tiny_run
    plan = pipeline.Plan(_tiny())
    assert set(pipeline.status(plan, wd).values()) == {"done"}
    assert list(report["rows"]) == list(r1_pipeline.MODELS)
    for name, row in report["rows"].items():
        assert 0 <= row["countdown pass@1"] <= 1 and row["stage wall (min)"] > 0, name
        assert 0 <= row["harmlessness (oracle)"] <= 1 and "helpfulness (oracle)" in row, name
    assert os.path.getsize(os.path.join(wd, "report", "report.png")) > 0
    assert "| reasoning_rl |" in open(os.path.join(wd, "report", "report.md")).read()
    for name in r1_pipeline.MODELS:  # every sample behind the table, as eval.readability reads it
        with open(os.path.join(wd, "report", "records", f"{name}.json"), encoding="utf-8") as f:
            records = json.load(f)["records"]
        for suite, summary in report["summaries"][name].items():
            correct = [c for r in records[suite] for c in r["correct"]]
            assert len(correct) == summary["problems"] * summary["samples_per_problem"]
            assert np.mean(correct) == pytest.approx(summary["pass@1"]), (name, suite)
        by_task = readability.samples_by_task({"records": records})
        for suite, summary in report["summaries"][name].items():
            assert len(by_task[suite]) == summary["problems"] * summary["samples_per_problem"]
    for stage in ("r1_zero", "reasoning_rl", "cold_start_sft", "rm_helpfulness", "all_scenario_rl"):
        assert os.listdir(os.path.join(wd, stage, "plots")), stage
    again = sft_runs.ok(sft_runs.run(EXP + ":tiny", wd))  # everything finished: all skipped
    assert again.stdout.count("already finished") == len(plan.order)


def _assert_same_report(workdir: str, report: dict) -> None:
    """The report in `workdir` equals `report` in every number but the stages' wall times."""
    with open(os.path.join(workdir, "report", "report.json"), encoding="utf-8") as f:
        got = json.load(f)
    strip = lambda r: {n: {k: v for k, v in row.items() if "wall" not in k} for n, row in r.items()}  # noqa: E731
    assert strip(got["rows"]) == strip(report["rows"])
    assert got["summaries"] == report["summaries"]


@pytest.mark.slow
def test_killed_mid_stage_then_rerun_gives_the_same_report(tiny_run, tmp_path):
    """Every stage but r1_zero and the report is linked from the finished run; r1_zero is killed
    after its second step (R1JAX_FAULTS), the rerun resumes it, and the report equals the first run's."""
    wd, _, report = tiny_run
    fresh = ("r1_zero", "eval_r1_zero", "report")  # the resumed model is evaluated again
    linked = [n for n in pipeline.Plan(_tiny()).order if n not in fresh]
    reuse = (f"--config.reuse_from={wd}", f"--config.reuse={tuple(linked)!r}")
    w2 = str(tmp_path / "killed")
    p = sft_runs.run(EXP + ":tiny", w2, *reuse, faults="kill_after_step=1")
    assert p.returncode == -signal.SIGKILL, p.stdout[-2000:] + p.stderr[-2000:]
    assert "stage r1_zero" in p.stdout and not os.path.exists(
        os.path.join(w2, "r1_zero", "DONE.json")
    )
    sft_runs.ok(sft_runs.run(EXP + ":tiny", w2, *reuse))
    _assert_same_report(w2, report)


@pytest.mark.slow
def test_side_by_side_stages_killed_then_resumed_give_the_same_report(tiny_run, tmp_path):
    """config.workers=2: r1_zero and student_base (independent) run at once, each in its own
    process; both are SIGKILLed after step 1, the run ends with one line naming them, and a rerun
    resumes them, runs distill_rl after student_base, and reports what the sequential run did."""
    wd, _, report = tiny_run
    fresh = ("r1_zero", "student_base", "distill_rl", "eval_r1_zero", "eval_distill_rl", "report")
    linked = [n for n in pipeline.Plan(_tiny()).order if n not in fresh]
    args = (f"--config.reuse_from={wd}", f"--config.reuse={tuple(linked)!r}", "--config.workers=2")
    w2 = str(tmp_path / "side_by_side")
    p = sft_runs.run(EXP + ":tiny", w2, *args, faults="kill_after_step=1")
    assert p.returncode == 2, p.stdout[-2000:] + p.stderr[-2000:]
    err = p.stderr.strip().splitlines()[-1]
    assert "stage r1_zero failed (killed by signal 9)" in err and "stage student_base failed" in err
    assert not os.path.exists(os.path.join(w2, "r1_zero", "DONE.json"))
    p = sft_runs.ok(sft_runs.run(EXP + ":tiny", w2, *args))
    first_finish = re.search(r"pipeline: \w+ finished in", p.stdout).start()
    assert p.stdout.index("stage r1_zero") < first_finish
    assert p.stdout.index("stage student_base") < first_finish  # both were running at once
    assert p.stdout.index("student_base finished") < p.stdout.index("stage distill_rl")
    _assert_same_report(w2, report)


_DIRECT_REPORT = """
import sys
from r1jax import config_base
from r1jax.config_check import ConfigError
from r1jax.stages import report
exp, wd = sys.argv[1:]
tiny = config_base.sibling(exp, "r1_pipeline").get_config("tiny").stages.report
direct = tiny.copy_and_resolve_references()
direct.evaluated = {}
report.run(direct, wd + "/report_direct")
other = tiny.copy_and_resolve_references()
other.models, other.evaluated, other.num_problems = ("base",), {"base": "eval_base"}, 3
try:
    report.run(other, wd + "/report_other")
except ConfigError as e:
    print("refused:", e)
"""


@pytest.mark.slow
def test_the_report_gathers_what_it_would_have_computed(tiny_run):
    """The report stage read every model's evaluation from its eval_<model> stage; evaluating the
    same models itself (one device, as the pipeline's processes) gives the same report, and an
    evaluation made with other settings is refused with one line."""
    wd, _, report = tiny_run
    cmd = [sys.executable, "-c", _DIRECT_REPORT, os.path.join(sft_runs.ROOT, EXP), wd]
    p = subprocess.run(cmd, cwd=sft_runs.ROOT, env=sft_runs.env(), capture_output=True, text=True)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    with open(os.path.join(wd, "report_direct", "report.json"), encoding="utf-8") as f:
        direct = json.load(f)
    assert direct["summaries"] == report["summaries"] and direct["rows"] == report["rows"]
    assert direct["settings"] == report["settings"]
    refused = [ln for ln in p.stdout.splitlines() if ln.startswith("refused:")]
    assert len(refused) == 1, p.stdout[-3000:]
    assert re.search(r"evaluated 'base' with num_problems=4, this report asks for 3", refused[0])


@pytest.mark.slow
def test_a_changed_report_key_reruns_exactly_the_evaluations_and_the_report(tiny_run):
    """`--config.stages.report.num_problems` reaches every eval_<model> stage (they share the
    report's settings): the models stay finished, the evaluations and the report run again."""
    wd, _, _ = tiny_run
    before = {n: os.path.getmtime(os.path.join(wd, n, "DONE.json")) for n in r1_pipeline.MODELS}
    args = ("--config.stages.report.num_problems=2",)
    p = sft_runs.run(EXP + ":tiny", wd, "--config.only=report", *args)
    assert p.returncode == 2 and "config.stages.report.num_problems 4 -> 2" in p.stderr
    p = sft_runs.run(EXP + ":tiny", wd, *args)
    assert p.returncode == 2 and "config.stages.eval_base.num_problems 4 -> 2" in p.stderr
    sft_runs.ok(sft_runs.run(EXP + ":tiny", wd, *args, "--config.rerun_stale=True"))
    for name in ("report", "eval_base", "eval_distill_rl"):
        assert os.path.isdir(os.path.join(wd, f"{name}.stale-1")), name
    after = {n: os.path.getmtime(os.path.join(wd, n, "DONE.json")) for n in r1_pipeline.MODELS}
    assert after == before
    with open(os.path.join(wd, "report", "report.json"), encoding="utf-8") as f:
        assert json.load(f)["summaries"]["base"]["countdown"]["problems"] == 2


@pytest.mark.slow
def test_logit_distillation_runs_inside_the_pipeline(tiny_run, tmp_path):
    """The student base trains on the base's corpus, so its tokenizer is the base's byte for byte
    and the distill stage can add the forward KL to the teacher's recorded top-k (mode=kd)."""
    wd, _, _ = tiny_run
    tokenizers = {
        s: pathlib.Path(wd, s, "tokenizer.model").read_bytes() for s in ("base", "student_base")
    }
    assert tokenizers["base"] == tokenizers["student_base"]
    order = pipeline.Plan(_tiny()).order  # the evaluations: an earlier test reran them
    linked = [n for n in order if n not in ("distill", "report") and not n.startswith("eval_")]
    w2 = str(tmp_path / "kd")
    args = (
        f"--config.reuse_from={wd}",
        f"--config.reuse={tuple(linked)!r}",
        "--config.only=distill",
    )
    sft_runs.ok(sft_runs.run(EXP + ":tiny", w2, *args, "--config.stages.distill.kd_weight=0.5"))
    with open(os.path.join(w2, "distill", "metrics.jsonl"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    kd = [r[k] for r in rows for k in r if k.endswith("kd")]
    assert kd and all(v > 0 for v in kd), rows[0]


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
    evaluation and checkpoint cadence), never in model, loss, rewards, data or sampling."""
    hour, full = r1_pipeline.get_config(), r1_pipeline.get_config("full")
    assert hour.order == full.order and hour.needs == full.needs
    amounts = {"steps", "num_prompts", "eval.every_steps", "eval.final", "checkpoint.every_steps"}
    changed = {}
    for name in full.order:
        a, b = _flat(hour.stages[name]), _flat(full.stages[name])
        assert a.keys() == b.keys(), name
        keys = {k for k in a if a[k] != b[k]}
        assert keys <= amounts, (name, keys - amounts)
        changed[name] = {k: (a[k], b[k]) for k in keys}
    assert not changed["base"] and not changed["student_base"]  # shared by seeds and `:full`
    assert changed["rejection_sampling"] == {"num_prompts": (512, 1024)}
    for name in ("r1_zero", "reasoning_rl", "all_scenario_rl", "distill_rl", "rm_helpfulness"):
        assert changed[name]["steps"][0] < changed[name]["steps"][1], name
    assert not changed["cold_start_sft"] and not changed["report"]


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
