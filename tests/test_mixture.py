"""All-scenario RL's prompt mixture: per-source reward routing by hand, the stream, config errors.

A tiny batch of 3 groups x 2 samples from two sources goes through the routing: each reward must be
called with exactly its sources' rows, the logged matrix holds NaN elsewhere, the update's matrix 0
there, and the update's weighted total of every row equals the hand sum of its own rewards. The
mixture stream is a pure function of (seed, position) with the configured shares; per-source metrics
are checked against hand values. Malformed mixtures fail before anything compiles, one line each.
"""

from __future__ import annotations

import os
import re

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from r1jax import config_base, config_check
from r1jax.rewards.registry import Reward
from r1jax.rl import routing, step, train_step
from r1jax.stages import common, grpo_config, mixture, mixture_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K = routing.SOURCE_KEY


def _recording(name: str, calls: list, values: dict, weight: float = 1.0) -> Reward:
    def fn(texts, examples):
        calls.append((name, list(texts), [e[K] for e in examples]))
        return np.array([values[t] for t in texts], np.float32)

    return Reward(name, fn, -10.0, 10.0, weight)


def test_each_group_gets_only_its_sources_rewards():
    calls: list = []
    acc = _recording("acc", calls, {"r0": 1.0, "r1": 0.0, "r2": 1.0, "r3": np.nan})
    fmt = _recording("fmt", calls, {"r0": 1.0, "r1": 1.0, "r2": 0.0, "r3": 1.0}, weight=0.5)
    help_ = _recording("help", calls, {"g0": 0.3, "g1": -0.7})
    harm = _recording("harm", calls, {"g0": 1.0, "g1": 0.0}, weight=2.0)
    rewards, route = routing.build({"reason": [acc, fmt], "general": [help_, harm]}, ["reason", "general"])  # fmt: skip
    assert [r.name for r in rewards] == ["acc", "fmt", "help", "harm"]
    # 3 groups of G=2: reason, general, reason (group order as the stream gives them)
    texts = ["r0", "r1", "g0", "g1", "r2", "r3"]
    ex = [{K: s, "question": "q"} for s in ("reason",) * 2 + ("general",) * 2 + ("reason",) * 2]
    r = route.host_rewards(rewards, texts, ex, np.arange(6))
    seen = {name: (t, s) for name, t, s in calls}
    assert seen["acc"] == (["r0", "r1", "r2", "r3"], ["reason"] * 4)
    assert seen["fmt"][0] == ["r0", "r1", "r2", "r3"]
    assert seen["help"] == (["g0", "g1"], ["general"] * 2)
    assert seen["harm"][0] == ["g0", "g1"]
    nan = np.nan
    want = np.array(
        [[1, 1, nan, nan], [0, 1, nan, nan], [nan, nan, 0.3, 1], [nan, nan, -0.7, 0],
         [1, 0, nan, nan], [nan, 1, nan, nan]], np.float32)  # fmt: skip
    np.testing.assert_array_equal(r, want)
    upd = route.for_update(r, ex)
    w = tuple(f.weight for f in rewards)
    total = np.asarray(train_step.total_reward(jnp.asarray(upd), w))
    # by hand: acc + 0.5 fmt on reasoning rows, help + 2 harm on general rows; r3's accuracy is
    # unscorable (NaN, a reward its source uses): its total stays NaN (advantage 0)
    np.testing.assert_allclose(total[:5], [1.5, 0.5, 2.3, -0.7, 1.0], rtol=1e-6)
    assert np.isnan(total[5])


def test_a_reward_named_by_two_sources_is_one_column():
    calls: list = []
    shared = _recording("fmt", calls, {"a": 1.0, "b": 0.0})
    only = _recording("acc", calls, {"a": 1.0})
    rewards, route = routing.build({"x": [only, shared], "y": [shared]}, ["x", "y"])
    assert len(rewards) == 2
    r = route.host_rewards(rewards, ["a", "b"], [{K: "x"}, {K: "y"}], np.zeros(2))
    assert [c[0] for c in calls] == ["acc", "fmt"]  # fmt called once, on both rows
    np.testing.assert_array_equal(r, [[1.0, 1.0], [np.nan, 0.0]])


def _mix_stream(weights=(0.75, 0.25), seed=3):
    a = [{"question": f"a{i}", "answer": "x"} for i in range(10)]
    b = [{"question": f"b{i}", "answer": "y"} for i in range(7)]
    return mixture.MixtureStream({"a": a, "b": b}, {"a": weights[0], "b": weights[1]}, seed)


def test_stream_is_stateless_with_the_configured_shares():
    s = _mix_stream()
    whole = s.take(0, 400)
    assert whole[37:45] == _mix_stream().take(37, 8)  # any window equals the same positions
    share = np.mean([e[K] == "a" for e in whole])
    assert 0.70 < share < 0.80, share
    assert all(e["question"][0] == e[K] for e in whole)
    # within one epoch of a source, its prompts never repeat
    first_a = [e["question"] for e in whole[:10] if e[K] == "a"]
    assert len(first_a) == len(set(first_a))


def test_source_metrics_by_hand():
    calls: list = []
    acc = _recording("countdown_accuracy", calls, {"r0": 1.0, "r1": 0.0})
    help_ = _recording("help", calls, {"g0": 0.5, "g1": -0.5}, weight=2.0)
    rewards, route = routing.build({"reason": [acc], "general": [help_]}, ["reason", "general"])
    specs = (
        mixture_config.SourceSpec("reason", "countdown", {}, 1.0),
        mixture_config.SourceSpec("general", "general", {}, 1.0),
    )
    mix = mixture_config.Mixture(specs, rewards, route, {"reason": 0, "general": None})
    ex = [{K: "general"}, {K: "reason"}]
    r = route.host_rewards(rewards, ["g0", "g1", "r0", "r1"], [e for e in ex for _ in range(2)], np.zeros(4))  # fmt: skip
    ro = step.Rollouts({}, ex, r, None, None, np.ones(4), np.zeros(4, bool))
    m = mixture.source_metrics(mix, ro, 2)
    assert m["reason_groups"] == 1 and m["general_groups"] == 1
    assert m["reason_reward"] == 0.5 and m["reason_accuracy"] == 0.5
    assert m["general_reward"] == 0.0 and m["general_help_mean"] == 0.0
    assert "general_accuracy" not in m


def _config(changes: dict) -> ml_collections.ConfigDict:
    path = os.path.join(ROOT, "experiments", "r1_zero_countdown.py")
    d = config_base.sibling(path, "r1_zero_countdown").get_config("tiny").to_dict()
    d["task"]["mixture"] = (
        dict(source="reasoning", name="countdown", options={}, weight=1.0),
        dict(source="general", name="general", options={}, weight=1.0),
    )
    d["rewards_by_source"] = {"general": ("general_match",)}
    for key, v in changes.items():
        *parents, last = key.split(".")
        node = d
        for p in parents:
            node = node[p]
        node[last] = v
    return ml_collections.ConfigDict(d)


CASES = [
    ({"rewards_by_source": {"general": ("general_match",), "roleplay": ("format",)}}, r"config\.rewards_by_source names source 'roleplay', which config\.task\.mixture does not produce \(its sources: \['reasoning', 'general'\]\)"),
    ({"task.mixture": ({"source": "a", "name": "countdown"},)}, r"config\.task\.mixture\[0\]=.* must be a dict with keys source, name, weight"),
    ({"task.mixture": ({"source": "a", "name": "cntdown", "weight": 1.0},)}, r"task 'cntdown' is not registered"),
    ({"task.mixture": ({"source": "a", "name": "countdown", "weight": 0.0},)}, r"mixture\[0\]: weight=0\.0 must be a number > 0"),
    ({"task.mixture": ({"source": "a", "name": "countdown", "weight": 1.0, "w": 2},)}, r"unknown key\(s\) \['w'\]"),
    ({"task.mixture": ({"source": "a", "name": "countdown", "weight": 1.0},) * 2}, r"names source\(s\) \['a'\] twice"),
    ({"task.mixture": ()}, r"config\.rewards_by_source, config\.replay\.enabled and config\.rm_eval\.sources need a prompt mixture"),
    ({"rm_eval.sources": ("general", "harm")}, r"config\.rm_eval\.sources='harm' is not a source of config\.task\.mixture"),
    ({"rl.dynamic_sampling": True}, r"needs rl\.dynamic_sampling=False and rl\.fused='auto' or 'off'"),
    ({"rl.fused": "on"}, r"needs rl\.dynamic_sampling=False"),
    ({"replay.enabled": True, "replay.historical_share": 1.5}, r"config\.replay\.historical_share=1\.5 must be in \[0, 1\]"),
    ({"replay.enabled": True, "replay.rm_steps": 0}, r"config\.replay\.rm_steps=0 must be >= 1"),
    ({"replay.enabled": True, "replay.batch_pairs": 12}, r"config\.replay\.batch_pairs \(12\) is not divisible by 8; make it a multiple of the 8 devices"),
    ({"replay.enabled": True, "replay.sources": ("roleplay",)}, r"config\.replay\.sources='roleplay' is not a source"),
    ({"rm_eval.sources": ("general",), "rm_eval.num_problems": 0}, r"config\.rm_eval\.num_problems must be >= 1"),
]  # fmt: skip


def test_the_baseline_mixture_is_valid():
    config = _config({})
    common.setup(config, config_base.grpo())
    assert [s.source for s in mixture_config.validate(config)] == ["reasoning", "general"]


@pytest.mark.parametrize("changes,match", CASES, ids=[str(c[0])[:60] for c in CASES])
def test_malformed_mixture_gives_its_one_line_error(changes, match):
    config = _config(changes)
    with pytest.raises(config_check.ConfigError) as err:
        common.setup(config, config_base.grpo())
        mixture_config.validate(config)
    msg = str(err.value)
    assert "\n" not in msg and re.search(match, msg), msg


def test_replay_without_a_reward_model_is_refused(tmp_path):
    from r1jax.stages import rm_replay

    config = _config({"replay.enabled": True})
    mix = mixture_config.setup(config, str(tmp_path / "run"))
    assert [r.name for r in mix.rewards][-1] == "general_match"
    with pytest.raises(config_check.ConfigError, match=r"no source has a reward_model\(\.\.\.\)"):
        rm_replay.build(config, mix)


def test_a_missing_reward_model_names_its_fix(tmp_path):
    spec = "reward_model(path='rm_helpfulness', on='summary')"
    config = _config({"rewards_by_source": {"general": (spec,)}})
    with pytest.raises(config_check.ConfigError) as err:
        mixture_config.setup(config, str(tmp_path / "run"))
    msg = str(err.value)
    assert "\n" not in msg and re.search(r"no finished reward model in .*rm_helpfulness .*config\.reward_models\['rm_helpfulness'\]", msg), msg  # fmt: skip


@pytest.mark.parametrize("arg", [None, "replay=False", "tiny"])
def test_the_all_scenario_configs_validate(arg):
    from r1jax import rewards

    path = os.path.join(ROOT, "experiments", "all_scenario_rl.py")
    config = config_base.sibling(path, "all_scenario_rl").get_config(arg)
    config.rl.prompts_per_step = 8 if arg == "tiny" else config.rl.prompts_per_step
    mesh = common.setup(config, config_base.grpo())
    specs = mixture_config.validate(config)
    assert [s.source for s in specs] == ["reasoning", "general", "harm"]
    assert config.replay.enabled == (arg != "replay=False")
    grpo_config.validate(config, mesh, common.rules(config), rewards.build(config.rewards))
