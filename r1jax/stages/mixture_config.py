"""All-scenario RL's config boundary: the prompt mixture, rewards by source, replay, RM-vs-oracle eval.

    config.task.mixture = (
        dict(source="reasoning", name="countdown", options=dict(max_number=4), weight=0.5),
        dict(source="general", name="general", options=dict(kinds=("reverse", "harm")), weight=0.5),
    )
    config.rewards_by_source = {
        "general": ("reward_model(path='../rm_helpfulness', on='summary')",
                    "reward_model(path='../rm_harmlessness', on='all')"),
    }   # a source not named here gets config.rewards (the reasoning rule rewards)

An empty mixture is the single-task path, untouched. `grpo_defaults()` are the schema's keys
(config_base.grpo() adds them: that file's 300-line limit); `setup()` validates, builds each reward
spec once and returns the `Mixture` the stage uses, or None for the single-task path.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import ml_collections

from r1jax import config_check
from r1jax.data import tasks
from r1jax.rewards import build as build_rewards
from r1jax.rewards.registry import Reward, parse
from r1jax.rl import routing as routing_lib
from r1jax.stages import inputs

ENTRY_KEYS = ("source", "name", "options", "weight")


def grpo_defaults() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        dict(
            rewards_by_source={},  # source -> reward specs (sources not named: config.rewards)
            # name -> the reward_model stage config that builds `reward_model(path='<name>')`
            # (a bare name: the sibling <workdir>/../<name>) when it is missing
            reward_models={},
            # DeepSeekMath's iterative RL: every `every_steps` steps the reward models take
            # `rm_steps` Bradley-Terry steps on oracle-labelled pairs of the policy's recent samples
            # (the `sources` groups), `historical_share` of each batch drawn from the replay buffer
            replay=dict(
                enabled=False,
                every_steps=4,
                rm_steps=2,
                historical_share=0.1,
                buffer_pairs=2048,  # the buffer keeps the newest pairs up to this many
                batch_pairs=8,
                seq_len=192,
                lr=1e-4,
                sources=("general",),
                min_gap=0.1,
                label_temperature=0.1,
                max_pairs_per_prompt=6,
            ),
            # reward hacking in view: the RM's and the oracle's scores of the same held-out
            # responses at every eval step ("" = off)
            rm_eval=dict(
                sources=(), num_problems=16
            ),  # held-out prompts per source, G samples each
        )
    )


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    source: str
    name: str  # the task (data/tasks.py)
    options: dict
    weight: float


def option(config: ml_collections.ConfigDict, key: str) -> Any:
    """A key of this module's, with its default where a config was built without it (an experiment
    that replaces `config.task` or predates these keys)."""
    node, default = config, grpo_defaults()
    if key == "task.mixture":
        return config.task.get("mixture", ())
    for part in key.split("."):
        default = default[part]
        node = node.get(part, default) if node is not None else default
    return node


def sources(config: ml_collections.ConfigDict) -> list[SourceSpec]:
    """The mixture's entries, checked: one-line errors for a malformed one."""
    out = []
    for i, entry in enumerate(option(config, "task.mixture")):
        where = f"config.task.mixture[{i}]"
        if not isinstance(entry, dict) or not {"source", "name", "weight"} <= set(entry):
            raise config_check.ConfigError(
                f"{where}={entry!r} must be a dict with keys source, name, weight (and options)."
            )
        extra = sorted(set(entry) - set(ENTRY_KEYS))
        if extra:
            raise config_check.ConfigError(f"{where} has unknown key(s) {extra}; use {ENTRY_KEYS}.")
        if entry["name"] not in tasks.names():
            raise config_check.ConfigError(
                f"{where}: task {entry['name']!r} is not registered; known: {tasks.names()}."
            )
        w = entry["weight"]
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not w > 0:
            raise config_check.ConfigError(f"{where}: weight={w!r} must be a number > 0.")
        opts = dict(entry.get("options") or {})
        out.append(SourceSpec(str(entry["source"]), entry["name"], opts, float(w)))
    names = [s.source for s in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise config_check.ConfigError(f"config.task.mixture names source(s) {dup} twice.")
    return out


def validate(config: ml_collections.ConfigDict) -> list[SourceSpec]:
    """Before anything is built or compiled: the mixture and what depends on it."""
    specs = sources(config)
    produced = [s.source for s in specs]
    named = list(option(config, "rewards_by_source").keys())
    replay, rm_sources = option(config, "replay"), tuple(option(config, "rm_eval.sources"))
    if not specs:
        if named or replay.enabled or rm_sources:
            raise config_check.ConfigError(
                "config.rewards_by_source, config.replay.enabled and config.rm_eval.sources need "
                "a prompt mixture (config.task.mixture); set one or leave them empty."
            )
        return specs
    for name in named:
        if name not in produced:
            raise config_check.ConfigError(
                f"config.rewards_by_source names source {name!r}, which config.task.mixture does "
                f"not produce (its sources: {produced}); add it to the mixture or remove it."
            )
    for key, value in tuple(("rm_eval.sources", s) for s in rm_sources) + tuple(
        ("replay.sources", s) for s in (replay.sources if replay.enabled else ())
    ):
        if value and value not in produced:
            raise config_check.ConfigError(
                f"config.{key}={value!r} is not a source of config.task.mixture ({produced})."
            )
    if replay.enabled:
        _check_replay(replay)
    if rm_sources and option(config, "rm_eval.num_problems") < 1:
        raise config_check.ConfigError("config.rm_eval.num_problems must be >= 1.")
    if config.rl.dynamic_sampling or config.rl.fused == "on":
        raise config_check.ConfigError(
            "config.task.mixture routes rewards on the host: it needs rl.dynamic_sampling=False "
            "and rl.fused='auto' or 'off'."
        )
    return specs


def _check_replay(r: ml_collections.ConfigDict) -> None:
    for key in ("every_steps", "rm_steps", "buffer_pairs", "batch_pairs", "seq_len"):
        if r[key] < 1:
            raise config_check.ConfigError(f"config.replay.{key}={r[key]} must be >= 1.")
    if not 0.0 <= r.historical_share <= 1.0:
        raise config_check.ConfigError(
            f"config.replay.historical_share={r.historical_share} must be in [0, 1] "
            "(DeepSeekMath keeps 0.1)."
        )
    if not r.lr > 0 or not r.min_gap > 0 or r.label_temperature < 0:
        raise config_check.ConfigError(
            "config.replay needs lr > 0, min_gap > 0 and label_temperature >= 0."
        )
    n = jax.device_count()
    config_check.require_divisible(
        r.batch_pairs, n, "config.replay.batch_pairs",
        f"make it a multiple of the {n} devices the reward models are sharded over",
    )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Mixture:
    specs: tuple[SourceSpec, ...]
    rewards: list[Reward]  # the union of the sources' rewards: the step's reward columns
    routing: routing_lib.Routing
    accuracy_cols: dict  # source -> the column of its task's accuracy reward, or None


def resolve(config: ml_collections.ConfigDict, spec: str, workdir: str) -> str:
    """`reward_model(path='<bare name>', ...)` with the sibling directory's path, built first by
    `config.reward_models[name]` when it holds no finished reward model; other specs unchanged."""
    name, kwargs = parse(spec)
    path = kwargs.get("path", "")
    if name != "reward_model" or not path or os.sep in path or path.startswith("."):
        return spec
    full = inputs.resolve(path, workdir)
    if not os.path.exists(os.path.join(full, "rm_info.json")):
        build = option(config, "reward_models").get(path)
        if not build:
            raise config_check.ConfigError(
                f"reward spec {spec!r}: no finished reward model in {full} (rm_info.json is "
                f"missing); run the reward_model stage there or give its config in "
                f"config.reward_models[{path!r}]."
            )
        print(f"r1jax: no reward model in {full}; running the reward_model stage there first")
        inputs.run_stage(build, full)
    kwargs["path"] = full
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"


def setup(config: ml_collections.ConfigDict, workdir: str) -> Mixture | None:
    """Validates, then builds every distinct reward spec once (a reward model loads once)."""
    specs = validate(config)
    if not specs:
        return None
    by_spec: dict[str, list[str]] = {}
    for s in specs:
        named = option(config, "rewards_by_source").get(s.source, config.rewards)
        by_spec[s.source] = [resolve(config, x, workdir) for x in named]
    built: dict[str, Reward] = {}
    for names in by_spec.values():
        for spec in names:
            if spec not in built:
                built[spec] = build_rewards([spec])[0]
    by_source = {src: [built[x] for x in names] for src, names in by_spec.items()}
    try:
        rewards, routing = routing_lib.build(by_source, [s.source for s in specs])
    except ValueError as e:
        raise config_check.ConfigError(f"config.rewards_by_source: {e}.") from None
    acc = {}
    for i, s in enumerate(specs):
        name = tasks.accuracy_reward(s.name)
        cols = [j for j, fn in enumerate(rewards) if fn.name == name and routing.use_SxR[i, j]]
        acc[s.source] = cols[0] if cols else None
    return Mixture(tuple(specs), rewards, routing, acc)


def loaded(config: ml_collections.ConfigDict, mix: Mixture, split: str) -> dict[str, Any]:
    """source -> the examples of its task's `split`."""
    return {
        s.source: tasks.load(s.name, split, config.task.data_dir, **s.options) for s in mix.specs
    }
