"""Whether a finished stage still stands for the plan: its hashed config and its inputs' chain.

A finished stage leaves DONE.json (stages/pipeline.py): its config as it ran, its fingerprint, and
the fingerprints of the stages it read. It is **fresh** - skipped on a rerun, usable as an input,
linkable by `reuse` - when

1. its saved config hashes as the plan's config for it does (`own_hash`), and
2. every stage it read is fresh and its DONE.json carries the fingerprint this one recorded for
   it (an upstream stage rerun under another config writes another one).

What the hash leaves out: keys added later at their neutral value (neutral_keys.py), and the
`build` of an input that is a stage of the same pipeline. Such a build (the stage config that
would make the input if it were missing, e.g. `cold_start_sft.data.build`) is never run there: the
pipeline finishes the input first, and the input's own config and freshness already say what it
holds. Before 2026-12-05 these builds were hashed, so a default changed in an upstream experiment
file made the stages after a reused upstream stage stale although they would compute nothing
different. Because (1) compares saved configs, not saved fingerprints, stages finished under that
older hashing stay fresh without a fallback.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from r1jax.stages import neutral_keys
from r1jax.stages.resume_guard import flat_keys

# the keys under which a stage config names an input (a stage name, a list of them, or a path)
INPUT_KEYS = ("checkpoint", "path", "inputs")


def _names_one_of(node: Mapping, needs: Sequence[str]) -> bool:
    for key in INPUT_KEYS:
        value = node.get(key)
        names = value if isinstance(value, list) else [value]
        if any(isinstance(n, str) and n in needs for n in names):
            return True
    return False


def without_stage_builds(config: Any, needs: Sequence[str]) -> Any:
    """The config (as JSON) with `build` removed wherever its node names an input in `needs`.

    Builds of inputs outside the pipeline (a path, or a stage not in `needs`) are kept whole.
    """
    if isinstance(config, list):
        return [without_stage_builds(v, needs) for v in config]
    if not isinstance(config, Mapping):
        return config
    drop = "build" in config and _names_one_of(config, needs)
    return {
        k: (v if k == "build" else without_stage_builds(v, needs))
        for k, v in config.items()
        if not (drop and k == "build")
    }


def hashed(config: Any, needs: Sequence[str]) -> Any:
    """What a stage's hash covers: its config less unused builds and neutral keys."""
    return neutral_keys.hashed(without_stage_builds(config, needs))


def _hasher(config: Any, needs: Sequence[str]) -> Any:
    return hashlib.sha256(json.dumps(hashed(config, needs), sort_keys=True).encode())


def own_hash(config: Any, needs: Sequence[str]) -> str:
    """The hash of a stage's own config (as JSON), inputs not included."""
    return _hasher(config, needs).hexdigest()


def chain(
    order: Sequence[str], configs: Mapping[str, Any], needs: Mapping[str, Sequence[str]]
) -> dict[str, str]:
    """{stage: fingerprint}: its own hash and its inputs' fingerprints, hashed (16 hex digits)."""
    out: dict[str, str] = {}
    for name in order:
        h = _hasher(configs[name], needs[name])
        for n in needs[name]:
            h.update(out[n].encode())
        out[name] = h.hexdigest()[:16]
    return out


def changed_key(name: str, saved: Any, current: Any, needs: Sequence[str]) -> str | None:
    """'config.stages.<name>.<key> old -> new' for the first key whose hashed value changed."""
    own, old = flat_keys(hashed(current, needs)), flat_keys(hashed(saved, needs))
    changed = sorted(
        k for k in set(own) | set(old) if own.get(k, "<absent>") != old.get(k, "<absent>")
    )
    if not changed:
        return None
    k = changed[0]
    more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
    return (
        f"config.stages.{name}.{k} {old.get(k, '<absent>')!r} -> {own.get(k, '<absent>')!r}{more}"
    )


def stale_reasons(
    order: Sequence[str],
    configs: Mapping[str, Any],
    needs: Mapping[str, Sequence[str]],
    fingerprint: Mapping[str, str],
    read: Callable[[str], dict | None],
) -> dict[str, str | None]:
    """{stage: None when its DONE.json (`read(stage)`) is fresh for the plan, else why not:
    "missing", the changed key of its own config, or which input changed}.

    A marker with the plan's fingerprint is fresh. Otherwise (a marker written under an older
    hashing) it is fresh when its own config hashes alike and each input it recorded is either the
    plan's fingerprint for it or the fingerprint in that input's own DONE.json, the input itself
    fresh. Inputs come earlier in `order`, so one pass settles every stage.
    """
    markers = {name: read(name) for name in order}
    out: dict[str, str | None] = {}
    for name in order:
        marker = markers[name]
        if marker is None:
            out[name] = "missing"
            continue
        out[name] = None
        if marker.get("fingerprint") == fingerprint[name]:
            continue
        saved = marker.get("config", {})
        if own_hash(saved, needs[name]) != own_hash(configs[name], needs[name]):
            key = changed_key(name, saved, configs[name], needs[name])
            out[name] = key or f"config.stages.{name} changed"
            continue
        for n in needs[name]:
            recorded = marker.get("inputs", {}).get(n)
            upstream = markers[n] if out[n] is None else None
            if recorded != fingerprint[n] and (upstream or {}).get("fingerprint") != recorded:
                out[name] = f"its input stage {n} changed"
                break
    return out
