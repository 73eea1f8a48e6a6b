"""Keys added to a stage's defaults at a value that changes nothing keep finished runs valid
(stages/neutral_keys.py): the fingerprint is the one the config had before the key existed, in
the stage itself and in every stage that nests its config (`build`), and any other value
invalidates exactly that stage and those after it."""

from __future__ import annotations

import copy
import os

import ml_collections
import sft_runs

from r1jax import config_base
from r1jax.stages import neutral_keys, pipeline

PIPELINE = config_base.sibling(
    os.path.join(sft_runs.ROOT, "experiments", "r1_pipeline.py"), "r1_pipeline"
)


def _drop_neutral_keys(node) -> None:
    """The config as it was before the keys existed: removed wherever a stage of their runner sits
    and they hold their neutral value (a default that sets another value, as `designed.passes=3`
    does since 2026-12-05, is part of the config and hashed)."""
    if isinstance(node, dict):
        for key, neutral in neutral_keys.NEUTRAL.get(node.get("stage"), {}).items():
            *parents, leaf = key.split(".")
            parent = node
            for p in parents:
                parent = parent[p]
            if leaf in parent and (neutral is neutral_keys.ANY or parent[leaf] == neutral):
                parent.pop(leaf)
        for v in node.values():
            _drop_neutral_keys(v)


def _fingerprints(config) -> dict[str, str]:
    return dict(pipeline.Plan(config).fingerprint)


def test_hashed_drops_only_neutral_values_and_leaves_its_input_alone():
    config = {"stage": "cold_start_data", "designed": {"passes": 1, "near_miss_share": 0.2, "x": 1}}
    nested = {"stage": "sft", "data": {"build": copy.deepcopy(config)}}
    assert neutral_keys.hashed(config) == {
        "stage": "cold_start_data",
        "designed": {"near_miss_share": 0.2, "x": 1},
    }
    assert neutral_keys.hashed(nested)["data"]["build"] == neutral_keys.hashed(config)
    assert config["designed"]["passes"] == 1  # the input is not modified
    other = {"stage": "sft", "designed": {"passes": 1}}  # another runner: hashed as it is
    assert neutral_keys.hashed(other) == other


def test_neutral_keys_keep_the_fingerprints_and_other_values_invalidate_downstream():
    config = PIPELINE.get_config()
    before = copy.deepcopy(config.to_dict())
    _drop_neutral_keys(before)
    old = pipeline.Plan(config).fingerprint
    # the fingerprints of the same pipeline before the keys were added: equal stage by stage
    assert _fingerprints(ml_collections.ConfigDict(before)) == old
    config.stages.cold_start_data.designed.passes = 2  # the default's 3, or the neutral 1
    new = _fingerprints(config)
    changed = {n for n in old if new[n] != old[n]}
    assert "cold_start_data" in changed and "cold_start_sft" in changed
    assert "base" not in changed and "r1_zero" not in changed


def test_a_key_neutral_at_any_value_stales_nothing_at_any_value():
    """rl.sampler_threads schedules the same sampling (the same draws per row): finished GRPO
    stages stay fresh whatever it is set to, its old explicit 1 and its auto default 0 alike."""
    config = PIPELINE.get_config()
    old = _fingerprints(config)
    grpo = [n for n in config.order if config.stages[n].stage == "grpo"]
    assert grpo and all(config.stages[n].rl.sampler_threads == 0 for n in grpo)
    for k in (1, 2, 4):
        for n in grpo:
            config.stages[n].rl.sampler_threads = k
        assert _fingerprints(config) == old, k
    config.stages[grpo[0]].rl.beta = 0.5  # a key that changes what is computed still stales
    assert _fingerprints(config)[grpo[0]] != old[grpo[0]]
