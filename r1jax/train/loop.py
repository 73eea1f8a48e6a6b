"""The training loop every stage shares: resume, checkpoint, SIGTERM, non-finite guard, metrics.

A stage gives the loop its state (a dict of named pytrees: "params", "opt_state", ...), a step
function `(state, step) -> (state, metrics)`, and how to describe its data position. The loop:
- resumes from the newest complete checkpoint in <workdir>/checkpoints without any flag;
- saves every `checkpoint.every_steps` steps, at the end, and when SIGTERM arrives (then exits 0);
- counts updates that the step function reported as skipped for a non-finite loss or gradient
  (`metrics["nonfinite"] == 1`), and after `max_consecutive_nonfinite` in a row stops with a clear
  error, leaving the checkpoint of the last good state;
- writes metrics (JSONL + TensorBoard), a progress bar, and plots at the end.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax

from r1jax.train import faults
from r1jax.train import metrics as metrics_lib
from r1jax.train.checkpoint import Checkpointer, abstract_like
from r1jax.train.faults import LoopHooks
from r1jax.train.telemetry import Telemetry, TelemetryConfig

log = logging.getLogger(__name__)
StepFn = Callable[[dict, int], tuple[dict, Mapping[str, Any]]]


class NonFiniteError(RuntimeError):
    """Too many consecutive non-finite updates."""


class _Sigterm:
    """Turns SIGTERM (a preemption notice) into a flag the loop checks between steps."""

    def __init__(self):
        self.fired = False
        self._old = None

    def __enter__(self):
        try:
            self._old = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread (e.g. a notebook worker): no handler
            self._old = None
        return self

    def _handle(self, signum, frame):
        del signum, frame
        self.fired = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)


def make_checkpointer(workdir: str, ckpt_cfg: Any, items: tuple[str, ...]) -> Checkpointer:
    return Checkpointer(
        os.path.join(workdir, "checkpoints"),
        item_names=items,
        every_steps=int(ckpt_cfg.every_steps),
        keep=int(ckpt_cfg.keep),
        keep_period=int(ckpt_cfg.keep_period),
        async_save=bool(ckpt_cfg.async_save),
    )


def resume(ckpt: Checkpointer, state: dict, fallback: bool) -> tuple[int, dict, dict | None]:
    """(start step, state, meta): the newest complete checkpoint, or step 0 and the fresh state."""
    latest = ckpt.latest_step()
    if latest is None:
        return 0, state, None
    step, items, meta = ckpt.restore(
        latest, {k: abstract_like(v) for k, v in state.items()}, fallback
    )
    log.info("resumed from %s at step %d", ckpt.directory, step)
    print(f"r1jax: resuming from checkpoint step {step} in {ckpt.directory}", flush=True)
    return step, items, meta


def run(
    *,
    workdir: str,
    state: dict,
    start: int,
    total: int,
    step_fn: StepFn,
    ckpt: Checkpointer,
    meta_fn: Callable[[int], dict],
    progress_keys: tuple[str, ...],
    plot_keys: tuple[str, ...],
    desc: str,
    max_consecutive_nonfinite: int = 5,
    on_step_end: Callable[[int, dict, dict], None] | None = None,
    hooks: LoopHooks | None = None,
    telemetry: Telemetry | None = None,
) -> dict:
    """Runs steps [start, total); returns the final state (checkpointed).

    `hooks` default to `faults.loop_hooks()` (no-ops unless the preemption tests set R1JAX_FAULTS).
    """
    hooks = hooks if hooks is not None else faults.loop_hooks()
    telemetry = telemetry or Telemetry(TelemetryConfig(), workdir, None)
    writer = metrics_lib.MetricsWriter(workdir, resume_step=start)
    bar = metrics_lib.Progress(total, start, progress_keys, desc)
    bad_streak, skipped = 0, 0
    last_good = start
    step = start
    try:
        with _Sigterm() as sigterm:
            for step in range(start, total):
                t0 = time.perf_counter()
                telemetry.before_step(step)
                new_state, m = step_fn(state, step)
                m = dict(m)
                samples = m.pop("_samples", None)  # a few completions, logged as text
                m = dict(jax.device_get(m))
                m["step_time_s"] = time.perf_counter() - t0
                if float(m.get("nonfinite", 0)) > 0:
                    bad_streak += 1
                    skipped += 1
                    log.warning("step %d: non-finite loss or gradient, update skipped", step)
                    print(
                        f"r1jax: step {step}: non-finite loss or gradient; update skipped",
                        flush=True,
                    )
                else:
                    bad_streak = 0
                    last_good = step + 1
                m["skipped_updates"] = skipped
                state = new_state
                row = writer.write(step, m)
                writer.write_samples(step, samples or [])
                telemetry.after_step(step, row, samples or [])
                bar.update(row)
                if on_step_end is not None:
                    on_step_end(step, state, row)
                hooks.after_step(step)
                if bad_streak >= max_consecutive_nonfinite:
                    # skipped steps leave the state unchanged, so this state IS the last good one
                    ckpt.save(step + 1, state, meta_fn(step + 1))
                    ckpt.wait()
                    raise NonFiniteError(
                        f"{bad_streak} consecutive non-finite updates (last good step {last_good}); "
                        f"state saved as checkpoint {step + 1} in {ckpt.directory}. Lower the "
                        "learning rate or check the data, then rerun to resume."
                    )
                done = step + 1
                if ckpt.should_save(done) or done == total or sigterm.fired:
                    ckpt.save(done, state, meta_fn(done))
                    hooks.during_save(done)
                if sigterm.fired:
                    ckpt.wait()
                    print(
                        f"r1jax: SIGTERM received; checkpoint of step {done} written to "
                        f"{ckpt.directory}; rerun the same command to resume.",
                        flush=True,
                    )
                    raise SystemExit(0)
            if start >= total:
                print(f"r1jax: {desc} already finished ({total} steps) in {workdir}", flush=True)
    finally:
        bar.close()
        writer.close()
        telemetry.close()
        ckpt.wait()
    rows = metrics_lib.read_jsonl(writer.path)
    metrics_lib.plot(rows, plot_keys, os.path.join(workdir, "plots", f"{desc}.png"), title=desc)
    return state
