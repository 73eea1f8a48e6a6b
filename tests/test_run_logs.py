"""What a run leaves for a researcher to look at: sample completions, a profiler trace, an offline
W&B run and the plot grid, from one tiny GRPO run (`python -m r1jax.main`, as a user runs it)."""

import glob
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "r1_zero_runs"  # shares the tiny base model
    work = str(root / "logs")
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["WANDB_SILENT"] = "true"
    cmd = [sys.executable, "-m", "r1jax.main", "--config=experiments/r1_zero_countdown.py:tiny",
           f"--workdir={work}", "--config.profile_steps=(1, 2)", "--config.wandb.enabled=True",
           "--config.log_samples=3", "--config.eval.final=False"]  # fmt: skip
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    return work


def test_sample_completions_are_logged_per_step(workdir):
    rows = [json.loads(line) for line in open(os.path.join(workdir, "samples.jsonl"))]
    assert [r["step"] for r in rows] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    for r in rows:
        assert {"question", "answer", "completion", "countdown_accuracy", "format"} <= set(r)
    events = glob.glob(os.path.join(workdir, "tb", "events.out.tfevents.*"))
    assert events and any(b"samples" in open(e, "rb").read() for e in events)


def test_profiler_trace_covers_the_chosen_steps(workdir):
    traces = glob.glob(os.path.join(workdir, "profile", "**", "*.xplane.pb"), recursive=True)
    perfetto = glob.glob(os.path.join(workdir, "profile", "**", "*.trace.json.gz"), recursive=True)
    assert traces and perfetto, os.listdir(workdir)


def test_wandb_run_is_written_offline(workdir):
    runs = glob.glob(os.path.join(workdir, "wandb", "offline-run-*", "run-*.wandb"))
    assert len(runs) == 1 and os.path.getsize(runs[0]) > 0


def test_plot_is_a_readable_grid(workdir):
    from PIL import Image

    w, h = Image.open(os.path.join(workdir, "plots", "grpo.png")).size
    assert w / h < 3.5, (w, h)  # a grid, not one long row of panels
