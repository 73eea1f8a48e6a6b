"""The one-config pipeline (stages/pipeline.py, experiments/r1_pipeline.py).

The `:tiny` recipe end to end once, then: a rerun skips every finished stage, a changed report key
reruns exactly the evaluations and the report, the gathered report equals the one computed directly,
and a run SIGKILLed in the middle of a stage, rerun, gives a report equal to the uninterrupted
run's (side by side too). Plan-level tests without a model: tests/test_pipeline_plan.py.
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
from r1jax.eval import readability
from r1jax.stages import pipeline
from r1jax.train import heap_policy

EXP = "experiments/r1_pipeline.py"
r1_pipeline = config_base.sibling(os.path.join(sft_runs.ROOT, EXP), "r1_pipeline")


def _tiny():
    return r1_pipeline.get_config("tiny")


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
    # one process ran every stage (workers=1): no stage's own peak memory to record
    marker = pipeline.read_marker(os.path.join(wd, "base"))
    assert marker["peak_rss_mib"] is None and marker["heap"] is None
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
    # each stage process's own peak memory, in its marker and its "finished" line
    # and the heap it ran with: config.heap="hugepages" re-executed it with the tunable
    glibc = heap_policy._glibc_version()
    asked = os.environ.get("R1JAX_HEAP", "hugepages") == "hugepages"  # a user's R1JAX_HEAP wins
    able = sys.platform.startswith("linux") and glibc is not None and glibc >= (2, 35)
    heap = "hugepages" if asked and able else "glibc"
    for name in ("r1_zero", "student_base", "distill_rl"):
        with open(os.path.join(w2, name, "DONE.json"), encoding="utf-8") as f:
            marker = json.load(f)
        assert 100 < marker["peak_rss_mib"] < 20_000, (name, marker["peak_rss_mib"])
        assert marker["heap"] == heap, (name, marker["heap"])
        assert re.search(rf"{name} finished in [0-9.]+ min, peak RSS [0-9.]+ GiB", p.stdout)


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
