"""Every experiment file's batch and mesh arithmetic, and the pipeline's check of it before its first
stage (stages/preflight.py), without building or compiling anything.

Why: 8fc43b9 set `rl.grad_accum=4` in experiments/reasoning_rl.py, which 8 data-parallel devices
cannot split (4 prompts per micro-batch); only the all-scenario file had a test on 8 devices, so
that commit's CI was green. Here every file's defaults are checked on 1 device (a laptop) and on 8
(a pod slice or a GPU host); the `tiny` variants, the CI's laptop-sized runs, on 1 device.
"""

from __future__ import annotations

import glob
import os

import pytest
import sft_runs

from r1jax import config_base
from r1jax.config_check import ConfigError
from r1jax.stages import pipeline, preflight

EXPERIMENTS = sorted(
    os.path.basename(p)[:-3]
    for p in glob.glob(os.path.join(sft_runs.ROOT, "experiments", "*.py"))
    if not p.endswith("r1_pipeline.py")
)
PIPELINE = config_base.sibling(
    os.path.join(sft_runs.ROOT, "experiments", "r1_pipeline.py"), "r1_pipeline"
)


def _experiment(name: str, arg: str | None):
    path = os.path.join(sft_runs.ROOT, "experiments", f"{name}.py")
    return config_base.sibling(path, name).get_config(arg)


def test_every_experiment_file_is_checked():
    assert len(EXPERIMENTS) == 14 and "reasoning_rl" in EXPERIMENTS  # a new file joins by itself


@pytest.mark.parametrize("devices", [1, 8])
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_default_fits_1_and_8_devices(name, devices):
    preflight.check_stage(name, _experiment(name, None), devices)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_tiny_variant_fits_one_device(name):
    preflight.check_stage(name, _experiment(name, "tiny"), 1)


@pytest.mark.parametrize(
    "arg,devices", [(None, 1), ("tiny", 1), ("quick", 1), ("full", 1), ("full", 8)]
)
def test_every_pipeline_stage_fits(arg, devices):
    plan = pipeline.Plan(PIPELINE.get_config(arg))
    for name in plan.order:
        preflight.check_stage(name, plan.configs[name], devices)


def test_the_pipeline_refuses_impossible_arithmetic_before_its_first_stage(tmp_path):
    """The one-hour profile splits reasoning RL's 16 prompts into 4 micro-batches (a 2-core CPU
    setting, experiments/r1_pipeline.py:one_hour); on this process's 8 devices that cannot work,
    and the run stops at once, naming the stage and the fix, with no stage started."""
    with pytest.raises(ConfigError) as e:
        pipeline.run(PIPELINE.get_config(), str(tmp_path))
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("config.stages.reasoning_rl: prompts per micro-batch ")
    assert "= 16/4 (4) is not divisible by 8; make it a multiple of the 8 data-parallel" in msg
    assert msg.endswith("(checked before the pipeline's first stage, on 8 devices)")
    assert not set(os.listdir(tmp_path)) & set(pipeline.Plan(PIPELINE.get_config()).order)


def test_a_finished_stage_is_not_rechecked(tmp_path):
    """A stage that finished (same fingerprint) is skipped, so a later device count cannot refuse
    it; the stages still to run are checked."""
    config = PIPELINE.get_config()
    plan = pipeline.Plan(config)
    for name in ("reasoning_rl", "all_scenario_rl"):
        os.makedirs(tmp_path / name)
        pipeline._write_marker(str(tmp_path / name), plan, name, 1.0)
    config.only = "reasoning_rl,all_scenario_rl"
    out = pipeline.run(config, str(tmp_path))
    assert out["stages"] == ["reasoning_rl", "all_scenario_rl"]
    config.only = "reasoning_rl,all_scenario_rl,eval_base"
    config.stages.eval_base.batch_prompts = 12
    with pytest.raises(ConfigError, match=r"^config\.stages\.eval_base\.batch_prompts \(12\) is not divisible by 8"):  # fmt: skip
        pipeline.run(config, str(tmp_path))


@pytest.mark.parametrize(
    "key,value", [("num_processes", 2), ("auto", True)], ids=["explicit", "auto"]
)
def test_no_device_count_when_a_stage_starts_jax_distributed(key, value):
    """Counting devices would start JAX's backends, after which jax.distributed cannot start."""
    plan = pipeline.Plan(PIPELINE.get_config("tiny"))
    configs = [plan.configs[n] for n in plan.order]
    assert preflight.device_count(configs) == 8
    configs[3].distributed[key] = value
    assert preflight.device_count(configs) is None
