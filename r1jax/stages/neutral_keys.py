"""Config keys added after runs finished, left out of a stage's fingerprint at their neutral value.

A stage's fingerprint (stages/pipeline.py) hashes its whole config, so adding a key to a stage's
defaults would make every finished stage of that kind stale - and every stage after it - although
at a value that reproduces the old behaviour the key changes nothing the stage writes. Such keys
are listed here, by stage runner, with that value: at it they are left out of the hash (finished
runs stay valid); at any other value they are hashed as usual, so setting one still invalidates
exactly that stage and those that read it. A key belongs here only when its neutral value leaves
the stage's output unchanged by construction (tests/test_cold_start_designed.py checks these).

A key whose every value computes the same thing, only scheduled differently, is neutral at ANY
value: the sampler's host threads give every row the draws of one call, so the tokens are the
one call's and the log-probs agree to float32 rounding (tests/test_sampler_threads.py) - the
rounding a different CPU gives too. Changing such a key, or its default, stales nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ANY = object()  # neutral at every value: how the work is scheduled, not what it computes

# stage runner -> {dotted key: the value at which the stage behaves as before the key existed}
NEUTRAL: dict[str, dict[str, Any]] = {
    # 2026-12-05: more passes over the Countdown pool, and the near-miss share of the searches
    # (later that day) how an attempt line checks its value against the target
    "cold_start_data": {
        "designed.passes": 1,
        "designed.near_miss_share": 0.0,
        "designed.check": "whole",
    },
    # 2026-12-05 (evening): one task's own prompt count and sampling (empty: every task the stage's)
    "rejection_sampling": {"per_task": {}},
    # 2026-12-05 (night): the sampler in threads; 2026-12-06: auto (0) by default, so any value
    "grpo": {"rl.sampler_threads": ANY},
}


def hashed(config: Any) -> Any:
    """The stage config (as JSON) that its fingerprint hashes: in it and in every config nested in
    it (a `build` of a missing input is one), neutral keys at their neutral value removed."""
    if isinstance(config, list):
        return [hashed(v) for v in config]
    if not isinstance(config, Mapping):
        return config
    out = {k: hashed(v) for k, v in config.items()}
    for key, neutral in NEUTRAL.get(str(out.get("stage", "")), {}).items():
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.get(p) if isinstance(node.get(p), dict) else {}
        if leaf in node and (neutral is ANY or node[leaf] == neutral):
            del node[leaf]
    return out
