"""The whole recipe from one config: named stages run in order, each in `<workdir>/<name>`.

    config.order            the stage names, in the order they run
    config.stages.<name>    that stage's own config (its `stage` key names the runner)
    config.needs.<name>     the stages whose artifacts it reads; a stage refers to them by name
                            (a bare name is the sibling folder, see stages/inputs.py)
    config.only / until     run a subset: "a,b" only those (their inputs must exist), or up to one
    config.reuse_from       another pipeline run's workdir, and config.reuse the stages to link
                            from it (seeds share the tokenizer and base model); each must have
                            finished there with the same fingerprint
    config.workers          1: one stage after another in this process; N: up to N stages whose
                            inputs are finished run side by side, each in its own process
                            (pipeline_workers.py; single-process CPU runs only)
    config.compile_cache    where the stages share XLA's compiled programs (compile_cache.py)
    config.heap             the stage processes' C heap ("hugepages" or "" = glibc's own;
                            train/heap_policy.py); recorded per stage in its DONE.json

Resume at stage granularity: a finished stage leaves `DONE.json` (its config, its fingerprint and
its inputs', its wall time). Rerunning skips it while it is fresh (freshness.py): its own config
hashes as before - less keys added later at a value that changes nothing (neutral_keys.py) and the
`build` of an input that this pipeline makes - and its inputs are fresh; an interrupted stage (no
marker) runs again and resumes from its own checkpoint. A finished stage whose own config or whose inputs changed is stale: the run stops
with one line naming the stage and the changed key, or, with `rerun_stale=True`, moves the stale
folders aside (`<name>.stale-<n>`) and reruns them - exactly the changed stage and those after it
that read its artifacts, never an unrelated branch. Nothing is deleted.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence

import jax
import ml_collections

from r1jax import config_base, config_check
from r1jax.stages import common, compile_cache, freshness, inputs, pipeline_workers, preflight
from r1jax.train import heap_policy

MARKER = "DONE.json"


def _defaults(stage: str) -> ml_collections.ConfigDict:
    name = {"eval": "eval_stage"}.get(stage, stage)
    if not hasattr(config_base, name):
        raise config_check.ConfigError(f"config.stages.*.stage={stage!r} is not a known stage.")
    return getattr(config_base, name)()


def _json(config: ml_collections.ConfigDict) -> dict:
    return json.loads(config.to_json_best_effort())


class Plan:
    """The ordered stages with their configs, inputs and fingerprints (validated up front)."""

    def __init__(self, config: ml_collections.ConfigDict):
        self.order = tuple(config.order)
        if not self.order:
            raise config_check.ConfigError("config.order is empty; list the stages to run.")
        self.configs, self.needs = {}, {}
        for i, name in enumerate(self.order):
            if name not in config.stages:
                raise config_check.ConfigError(
                    f"config.order names {name!r} but config.stages has no such stage; add "
                    f"config.stages.{name} or remove it from config.order."
                )
            sub = config.stages[name]
            try:
                config_check.check_schema(sub, _defaults(sub.stage))
            except config_check.ConfigError as e:  # name the stage: config.stages.<name>.<key>
                raise config_check.ConfigError(
                    str(e).replace("config.", f"config.stages.{name}.")
                ) from None
            needs = tuple(config.needs.get(name, ()))
            for n in needs:
                if n not in self.order[:i]:
                    raise config_check.ConfigError(
                        f"config.needs.{name} names {n!r}, which is not a stage before {name!r} "
                        "in config.order."
                    )
            self.configs[name], self.needs[name] = sub, needs
        self.json = {name: _json(c) for name, c in self.configs.items()}
        self.fingerprint = freshness.chain(self.order, self.json, self.needs)

    def select(self, only: str, until: str) -> list[str]:
        names = [n.strip() for n in only.split(",") if n.strip()]
        for n in names + ([until] if until else []):
            if n not in self.order:
                raise config_check.ConfigError(
                    f"config.only/until name {n!r}, which is not in config.order {self.order}."
                )
        chosen = [n for n in self.order if not names or n in names]
        if until:
            chosen = [n for n in chosen if self.order.index(n) <= self.order.index(until)]
        return chosen

    def stale(self, workdir: str) -> dict[str, str | None]:
        """{stage: None if finished in `workdir` under this plan, else why not} (freshness.py)."""
        return freshness.stale_reasons(
            self.order,
            self.json,
            self.needs,
            self.fingerprint,
            lambda n: read_marker(os.path.join(workdir, n)),
        )


def status(plan: Plan, workdir: str) -> dict[str, str]:
    """{stage: "done" | "missing" | "stale: <why>"} for every stage of the plan in `workdir`."""
    reasons = plan.stale(workdir)
    return {
        n: "done" if r is None else r if r == "missing" else f"stale: {r}"
        for n, r in reasons.items()
    }


def read_marker(path: str) -> dict | None:
    try:
        with open(os.path.join(path, MARKER), encoding="utf-8") as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _move_aside(path: str) -> str:
    n = 1
    while os.path.exists(f"{path}.stale-{n}"):
        n += 1
    os.replace(path, f"{path}.stale-{n}")
    return f"{path}.stale-{n}"


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    config_check.check_schema(config, config_base.pipeline())
    plan = Plan(config)
    chosen = plan.select(config.only, config.until)
    workers = _check_workers(config.workers)
    try:  # the stage processes' heap (pipeline_config.py), checked whatever `workers` is
        env = heap_policy.child_env(config.heap, dict(os.environ))
    except ValueError as e:
        raise config_check.ConfigError(str(e)) from None
    os.makedirs(workdir, exist_ok=True)
    _link_reused(plan, config, workdir)
    cache = compile_cache.use(config.compile_cache, workdir)
    if cache:
        print(f"r1jax: pipeline: compiled programs are cached in {cache}", flush=True)
    reasons = plan.stale(workdir)
    _preflight(plan, chosen, reasons)
    walls, todo = {}, []
    for name in chosen:
        path = os.path.join(workdir, name)
        marker = read_marker(path)
        if marker is not None:
            why = reasons[name]
            if why is None:
                print(f"r1jax: pipeline: {name} already finished in {path}; skipped", flush=True)
                walls[name] = marker.get("wall_s")
                continue
            if not config.rerun_stale:
                raise config_check.ConfigError(
                    f"stage {name} in {path} finished under another config: {why}; its artifacts "
                    "and those of the stages after it that read them are stale. Rerun with "
                    "--config.rerun_stale=True (stale folders are moved aside, not deleted) or "
                    "use a new --workdir."
                )
            moved = _move_aside(path)
            print(f"r1jax: pipeline: {name} is stale ({why}); moved to {moved}", flush=True)
        todo.append(name)

    def done(name: str, wall: float, info: dict | None = None) -> None:
        _write_marker(os.path.join(workdir, name), plan, name, wall, info)

    if workers > 1:
        for name in todo:  # stages outside `todo` are as `reasons` found them
            _check_needs(plan, workdir, name, todo[: todo.index(name)], reasons)
        if env is not None:
            print(f"r1jax: pipeline: stage processes run with R1JAX_HEAP={config.heap}", flush=True)
        walls.update(
            pipeline_workers.run(todo, plan.needs, plan.configs, workdir, workers, done, env)
        )
        return {"stages": chosen, "wall_s": walls}
    for name in todo:
        _check_needs(plan, workdir, name)
        path = os.path.join(workdir, name)
        print(f"r1jax: pipeline: stage {name} ({plan.configs[name].stage}) -> {path}", flush=True)
        t0 = time.perf_counter()
        inputs.run_stage(plan.configs[name], path)
        walls[name] = time.perf_counter() - t0
        done(name, walls[name])
    return {"stages": chosen, "wall_s": walls}


def _preflight(plan: Plan, chosen: Sequence[str], reasons: dict[str, str | None]) -> None:
    """Every stage still to run checked for its batch and mesh arithmetic (preflight.py)."""
    pending = [n for n in chosen if reasons[n] is not None]
    n_devices = preflight.device_count([plan.configs[n] for n in pending])
    if n_devices is None:
        print("r1jax: pipeline: batch arithmetic is checked by each stage (jax.distributed)")
        return
    for name in pending:
        preflight.check_stage(name, plan.configs[name], n_devices)


def _check_workers(workers: int) -> int:
    """config.workers: 1 runs the stages in this process; more run independent ones side by side
    as separate processes (pipeline_workers.py), which a CPU machine can do but one accelerator
    or a multi-process job cannot: there the stages run one at a time, and the run says so."""
    if workers < 1:
        raise config_check.ConfigError(f"config.workers={workers} must be >= 1.")
    if workers > 1 and (jax.process_count() > 1 or jax.default_backend() != "cpu"):
        print(
            f"r1jax: pipeline: config.workers={workers} runs stages side by side as separate "
            f"processes, which needs a single-process CPU run (this is {jax.process_count()} "
            f"process(es) on {jax.default_backend()}); running one stage at a time",
            flush=True,
        )
        return 1
    return workers


def _check_needs(
    plan: Plan,
    workdir: str,
    name: str,
    made_here: Sequence[str] = (),
    reasons: dict[str, str | None] | None = None,
) -> None:
    """Every stage `name` reads is finished under this config (or is made earlier in this run);
    `reasons`: `plan.stale(workdir)` when the caller has it and no stage finished since."""
    reasons = reasons if reasons is not None else plan.stale(workdir)
    for n in plan.needs[name]:
        if n not in made_here and reasons[n] is not None:
            raise config_check.ConfigError(
                f"stage {name} needs the artifacts of stage {n} ({os.path.join(workdir, n)}), "
                f"which is not finished under this config; run --config.until={n} first (or "
                "drop --config.only)."
            )


def _write_marker(
    path: str, plan: Plan, name: str, wall_s: float, process: dict | None = None
) -> None:
    """DONE.json; `peak_rss_mib` and `heap` are the stage process's peak and C heap when the
    stage ran in a process of its own (`workers` > 1), else null (the pipeline's process holds
    every stage it ran)."""
    process = process or {}
    marker = {
        "stage": name,
        "fingerprint": plan.fingerprint[name],
        "inputs": {n: plan.fingerprint[n] for n in plan.needs[name]},
        "config": plan.json[name],
        "wall_s": wall_s,
        "peak_rss_mib": process.get("peak_rss_mib"),
        "heap": process.get("heap"),
        "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    common.write_json(path, MARKER, marker)


def _link_reused(plan: Plan, config: ml_collections.ConfigDict, workdir: str) -> None:
    """config.reuse: stages finished in config.reuse_from with the same fingerprint, linked."""
    if config.reuse and not config.reuse_from:
        raise config_check.ConfigError(
            "config.reuse names stages but config.reuse_from is empty; give the run to link from."
        )
    reasons = plan.stale(config.reuse_from) if config.reuse else {}
    for name in config.reuse:
        if name not in plan.order:
            raise config_check.ConfigError(f"config.reuse: no stage {name!r} in config.order.")
        src = os.path.join(config.reuse_from, name)
        if reasons[name] is not None:
            raise config_check.ConfigError(
                f"config.reuse: {src!r} is not a finished {name} stage with this config (its "
                "DONE.json is missing or its fingerprint differs); finish it there first or drop "
                "it from config.reuse."
            )
        dst = os.path.join(workdir, name)
        if jax.process_index() == 0 and not os.path.lexists(dst):
            os.symlink(os.path.abspath(src), dst)
