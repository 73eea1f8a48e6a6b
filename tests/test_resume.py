"""Preemption safety: kill a real GRPO run at several points, resume it, compare with an uninterrupted run.

Every run is a subprocess of `python -m r1jax.main` on the tiny R1-Zero config; faults are injected
with R1JAX_FAULTS (r1jax/train/faults.py): SIGKILL after a step, SIGKILL while a checkpoint is being
written, SIGTERM (preemption notice), and poisoned (non-finite) batches. The base model is built once
and shared by every run through `init.checkpoint`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "experiments", "r1_zero_countdown.py")
STEPS = 6
# Values that depend on wall time, not on the computation.
TIMING = (
    "step_time_s",
    "time_sample_s",
    "time_reward_s",
    "time_update_s",
    "gen_tokens_per_s",
    "tokens_per_s",
)

pytestmark = pytest.mark.slow


def _env(faults: str = "") -> dict:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["R1JAX_FAULTS"] = faults
    env["JAX_PLATFORMS"] = "cpu"
    # every run compiles the same programs: they share the suite's persistent cache (conftest.py)
    return env


def _run(
    workdir: str, base: str, faults: str = "", extra: tuple = ()
) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "r1jax.main",
        f"--config={CONFIG}:tiny,steps={STEPS}",
        f"--workdir={workdir}",
        f"--config.init.checkpoint={base}",
        "--config.checkpoint.every_steps=2",
        "--config.checkpoint.keep=10",
        "--config.eval.every_steps=0",
        "--config.eval.final=False",
        *extra,
    ]
    return subprocess.run(
        cmd, cwd=ROOT, env=_env(faults), capture_output=True, text=True, timeout=900
    )


def _trajectory(workdir: str) -> list[dict]:
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The shared tiny base model and one uninterrupted run."""
    root = tmp_path_factory.mktemp("resume")
    base = str(root / "base")
    ref = str(root / "ref")
    p = _run(ref, base)
    assert p.returncode == 0, p.stderr[-3000:]
    rows = _trajectory(ref)
    assert [r["step"] for r in rows] == list(range(STEPS))
    return root, base, rows


@pytest.mark.parametrize(
    "fault",
    ["kill_after_step=0", "kill_after_step=2", "kill_during_save=4", "kill_after_step=4"],
)
def test_killed_run_resumes_identically(reference, fault):
    root, base, want = reference
    work = str(root / fault.replace("=", "_"))
    p = _run(work, base, fault)
    assert p.returncode == -signal.SIGKILL, (p.returncode, p.stderr[-2000:])
    if fault.startswith("kill_during_save"):
        # the kill lands while Orbax is still writing step 4: only its temporary directory exists
        left = os.listdir(os.path.join(work, "checkpoints"))
        assert "4" not in left and any(d.startswith("4.orbax-checkpoint-tmp") for d in left), left
    p = _run(work, base)  # the same command again, no extra flag
    assert p.returncode == 0, p.stderr[-3000:]
    got = _trajectory(work)
    assert [r["step"] for r in got] == list(range(STEPS)), "each step exactly once"
    assert got == want


def test_sigterm_checkpoints_and_exits_cleanly(reference):
    root, base, want = reference
    work = str(root / "sigterm")
    p = _run(work, base, "sigterm_after_step=2")
    assert p.returncode == 0, p.stderr[-2000:]
    assert "SIGTERM received; checkpoint of step 3" in p.stdout + p.stderr
    assert sorted(os.listdir(os.path.join(work, "checkpoints")))[-1] == "3"
    p = _run(work, base)
    assert p.returncode == 0, p.stderr[-3000:]
    assert _trajectory(work) == want


def test_nonfinite_step_is_skipped_and_counted(reference):
    root, base, _ = reference
    work = str(root / "nan_once")
    p = _run(work, base, "nan_at_steps=2")
    assert p.returncode == 0, p.stderr[-3000:]
    rows = _trajectory(work)
    assert len(rows) == STEPS
    assert rows[2]["nonfinite"] == 1 and rows[2]["skipped_updates"] == 1
    assert rows[-1]["skipped_updates"] == 1 and rows[3]["nonfinite"] == 0
    assert "step 2: non-finite loss or gradient; update skipped" in p.stdout + p.stderr


def test_repeated_nonfinite_steps_stop_with_a_clear_error(reference):
    root, base, _ = reference
    work = str(root / "nan_many")
    p = _run(work, base, "nan_at_steps=1:2:3", ("--config.max_consecutive_nonfinite=3",))
    assert p.returncode == 2, p.stderr[-3000:]
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "r1jax: NonFiniteError: 3 consecutive non-finite updates (last good step 1)"
    )
    assert "Traceback" not in p.stderr
    assert "4" in os.listdir(os.path.join(work, "checkpoints"))


def test_changed_config_stops_resume_with_one_line_and_the_ways_out(reference):
    root, base, want = reference
    work = str(root / "changed")
    shutil.copytree(str(root / "ref"), work)
    p = _run(work, base, extra=("--config.rl.beta=0.0", "--config.rl.aggregation=token_mean"))
    assert p.returncode == 2, p.stderr[-3000:]
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("r1jax: ConfigError: ") and "Traceback" not in p.stderr
    assert "rl.aggregation 'seq_mean_token_mean' -> 'token_mean'" in last
    assert "rl.beta 0.02 -> 0.0" in last
    assert "new --workdir" in last
    assert "--config.resume.allow_changes=rl.aggregation,rl.beta" in last
    assert _trajectory(work) == want  # nothing was run or rewritten
    # harmless keys (more steps, evaluation, logging) may change: the run continues
    p = _run(work, base, extra=(f"--config.steps={STEPS + 1}", "--config.log_samples=0"))
    assert p.returncode == 0, p.stderr[-3000:]
    got = _trajectory(work)
    assert got[:STEPS] == want and [r["step"] for r in got] == list(range(STEPS + 1))
    # the explicit way out resumes under the new loss
    p = _run(
        work,
        base,
        extra=(
            f"--config.steps={STEPS + 2}",
            "--config.rl.beta=0.0",
            "--config.resume.allow_changes=rl.beta",
        ),
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert [r["step"] for r in _trajectory(work)] == list(range(STEPS + 2))
