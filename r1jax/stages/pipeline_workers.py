"""Independent pipeline stages side by side: up to `config.workers` stage processes at once.

    python -m r1jax.stages.pipeline_workers SPEC.pkl     (the child; the pipeline starts it)

Why processes: stages share nothing but the files `needs` names, so one that reads nothing of
another may run beside it, and a JAX process per stage keeps them apart (no shared heap; compiled
programs are shared only through the pipeline's cache on disk, compile_cache.py). What that buys
depends on the machine and the stages: on the 2-core VM two pretraining stages side by side took
0.84-0.95x of their time one after the other (one stage already keeps most of both cores busy),
and on stages of seconds it loses, as each process pays start-up and compiles afresh (the `:tiny`
chain: 1.17x slower; README, "Stages side by side"). Each stage's
output goes to `<workdir>/logs/<stage>.log`, and the parent prints the newest progress line of
every running stage every 30 seconds.

The plan decides what may overlap: a stage starts only when every stage in its `needs` has
finished, the first ready one in `config.order` first. A child writes its `finished` file only
after the stage returned, so a stage that exits early (SIGTERM writes a checkpoint and exits 0) is
not marked done; the parent writes DONE.json. A failed stage stops new starts; the stages already
running finish and keep their markers, then the run ends with one line naming the failed stage and
its log. If the parent dies, Linux sends its children SIGTERM (PR_SET_PDEATHSIG; checked by hand,
not by a test: a SIGKILLed pipeline's stage process ended within 3 s): a training stage inside its
loop writes its checkpoint and stops, anything else just stops, and a rerun resumes or redoes each
unmarked stage as the sequential pipeline does.
"""

from __future__ import annotations

import ctypes
import json
import os
import pickle
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

PR_SET_PDEATHSIG = 1
_PROGRESS_EVERY_S = 30.0


class StageFailed(RuntimeError):
    """A stage process ended without finishing its stage."""


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when the pipeline process dies (else: nothing to do)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (AttributeError, OSError):
        pass


def last_line(path: str, width: int = 110) -> str:
    """The newest non-empty line of a log that progress bars rewrite with carriage returns."""
    try:
        with open(path, "rb") as f:
            f.seek(max(os.path.getsize(path) - 4096, 0))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [s.strip() for s in re.split(r"[\r\n]", tail) if s.strip()]
    return lines[-1][:width] if lines else ""


class _Child:
    def __init__(self, name: str, config, stage_dir: str, log_dir: str, env: dict | None):
        self.name, self.t0 = name, time.perf_counter()
        self.log = os.path.join(log_dir, f"{name}.log")
        self.finished = os.path.join(log_dir, f"{name}.finished")
        if os.path.exists(self.finished):
            os.remove(self.finished)
        spec = os.path.join(log_dir, f"{name}.spec.pkl")
        with open(spec, "wb") as f:
            pickle.dump({"config": config, "workdir": stage_dir, "finished": self.finished}, f)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "r1jax.stages.pipeline_workers", spec],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )

    def outcome(self) -> str | None:
        """None while running; "" when the stage finished; else why it did not."""
        code = self.proc.poll()
        if code is None:
            return None
        if code == 0 and os.path.exists(self.finished):
            return ""
        if code < 0:
            return f"killed by signal {-code}"
        return f"exit code {code} before the stage finished" if code == 0 else f"exit code {code}"

    def finished_info(self) -> dict:
        """What the stage process wrote when it finished: its peak resident memory in MiB and
        the heap it ran with ({} when unreadable)."""
        try:
            with open(self.finished, encoding="utf-8") as f:
                info = json.load(f)
            return {"peak_rss_mib": float(info["peak_rss_mib"]), "heap": str(info["heap"])}
        except (OSError, ValueError, KeyError, TypeError):
            return {}


def run(
    order: Sequence[str],
    needs: dict[str, Sequence[str]],
    configs: dict,
    workdir: str,
    workers: int,
    on_done: Callable[[str, float, dict], None],
    env: dict[str, str] | None = None,
) -> dict[str, float]:
    """Runs the stages of `order` (none finished yet) with at most `workers` at once; returns
    {stage: wall seconds}. `needs` outside `order` must already be finished. `on_done` gets each
    finished stage's name, wall seconds and `_Child.finished_info`. `env`: the stage
    processes' environment (None: this process's)."""
    log_dir = os.path.join(workdir, "logs")
    os.makedirs(log_dir, exist_ok=True)
    pending, running, walls = list(order), {}, {}
    failed: list[str] = []
    last_report = time.perf_counter()
    while running or (pending and not failed):
        for name in [] if failed else list(pending):
            blocked = any(n in pending or n in running for n in needs.get(name, ()))
            if len(running) < workers and not blocked:
                pending.remove(name)
                path = os.path.join(workdir, name)
                print(
                    f"r1jax: pipeline: stage {name} ({configs[name].stage}) -> {path}; "
                    f"log {os.path.join(log_dir, name + '.log')}",
                    flush=True,
                )
                running[name] = _Child(name, configs[name], path, log_dir, env)
        if not running and pending and not failed:  # nothing can start: a need is missing
            raise StageFailed(f"stages {pending} wait for stages that are neither finished nor run")
        time.sleep(0.5)
        for name, child in list(running.items()):
            why = child.outcome()
            if why is None:
                continue
            del running[name]
            if why:
                failed.append(f"stage {name} failed ({why}); its log: {child.log}")
                print(f"r1jax: pipeline: {failed[-1]}", flush=True)
                continue
            walls[name] = time.perf_counter() - child.t0
            info = child.finished_info()
            on_done(name, walls[name], info)
            rss = info.get("peak_rss_mib")
            peak = f", peak RSS {rss / 1024:.2f} GiB" if rss is not None else ""
            print(
                f"r1jax: pipeline: {name} finished in {walls[name] / 60:.1f} min{peak}", flush=True
            )
        if running and time.perf_counter() - last_report > _PROGRESS_EVERY_S:
            last_report = time.perf_counter()
            for name, child in running.items():
                line = last_line(child.log) or "(no output yet)"
                print(f"r1jax: pipeline: [{name}] {line}", flush=True)
    if failed:
        done = f"; finished this run: {', '.join(walls)}" if walls else ""
        raise StageFailed(
            f"{' / '.join(failed)}{done}; rerun the same command to resume (finished stages are "
            "skipped, interrupted ones resume from their checkpoints)."
        )
    return walls


def _child_main(spec_path: str) -> int:
    from r1jax.train import heap_policy

    heap_policy.configure()  # as `python -m r1jax.main` does
    _die_with_parent()
    with open(spec_path, "rb") as f:
        spec = pickle.load(f)
    from r1jax.config_check import ConfigError
    from r1jax.stages import inputs
    from r1jax.train.checkpoint import CheckpointError
    from r1jax.train.loop import NonFiniteError

    try:
        inputs.run_stage(spec["config"], spec["workdir"])
    except (ConfigError, FileNotFoundError, CheckpointError, NonFiniteError) as e:
        print(f"r1jax: {type(e).__name__}: {e}", flush=True)
        return 2
    # the parent times the stage and writes DONE.json; the peak RSS (Linux: KiB) and the heap
    # this process re-executed itself with (heap_policy.configure) only this process can read
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open(spec["finished"], "w", encoding="utf-8") as f:
        json.dump({"peak_rss_mib": round(peak_mib, 1), "heap": heap_policy.current(os.environ)}, f)
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1]))
