"""Malformed configs stop before anything compiles, with one line that names the key and the fix.

A table of broken pretrain and GRPO configs runs through the same validation the stages run
(`common.setup`, `pretrain.validate`, `rewards.build`, `grpo_config.validate`, `model_config`), on
the 8 simulated devices, and each must raise a ConfigError whose message matches. A few go through
`python -m r1jax.main` in subprocesses: exit code 2, one line on stderr, no traceback. Overrides
(`--config.optimizer.lr=1e-3`) are parsed by the same `config_check.parse_flags` main uses.
"""

import os
import re
import subprocess
import sys

import jax
import ml_collections
import pytest
from absl import flags
from ml_collections import config_flags

from r1jax import config_base, config_check, rewards
from r1jax.parallel import sharding
from r1jax.stages import common, grpo_config, pretrain

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRETRAIN = os.path.join(ROOT, "experiments", "pretrain_toy.py")
GRPO = os.path.join(ROOT, "experiments", "r1_zero_countdown.py")


def _load(path: str, arg: str) -> ml_collections.ConfigDict:
    return config_base.sibling(path, os.path.basename(path)[:-3]).get_config(arg)


def _set(d: dict, key: str, value) -> None:
    *parents, last = key.split(".")
    for p in parents:
        d = d[p]
    d[last] = value


def _validate(stage: str, changes: dict) -> None:
    """Builds the config with `changes` (any type: done on a plain dict) and validates it."""
    base = _load(PRETRAIN, "tiny") if stage == "pretrain" else _load(GRPO, "tiny")
    d = base.to_dict()
    if stage == "grpo":
        d["rl"]["prompts_per_step"] = 8  # a valid baseline on 8 data-parallel devices
    for k, v in changes.items():
        _set(d, k, v)
    config = ml_collections.ConfigDict(d)
    mesh = common.setup(
        config, config_base.pretrain() if stage == "pretrain" else config_base.grpo()
    )
    rules = common.rules(config)
    if stage == "pretrain":
        pretrain.validate(config, jax.device_count(), sharding.data_parallel_size(mesh, rules))
        common.model_config(config)
    else:
        grpo_config.validate(config, mesh, rules, rewards.build(config.rewards))


CASES = [
    # schema: unknown keys (with a did-you-mean) and wrong types
    ("pretrain", {"stepz": 3}, r"unknown config key config\.stepz \(did you mean config\.steps\?\)"),
    ("pretrain", {"optimizer.lrr": 1e-3}, r"config\.optimizer\.lrr \(did you mean config\.optimizer\.lr\?\)"),
    ("pretrain", {"model.n_head": 4}, r"config\.model\.n_head \(did you mean config\.model\.n_heads\?\)"),
    ("pretrain", {"steps": "100"}, r"config\.steps='100' has type str; expected int"),
    ("pretrain", {"data.batch_size": 8.0}, r"config\.data\.batch_size=8\.0 has type float; expected int"),
    ("pretrain", {"steps": True}, r"config\.steps=True has type bool; expected int"),
    ("pretrain", {"optimizer.lr": "fast"}, r"config\.optimizer\.lr='fast' has type str; expected float"),
    # batch arithmetic
    ("pretrain", {"optimizer.grad_accum": 3}, r"config\.data\.batch_size \(8\) is not divisible by 3; make it a multiple of config\.optimizer\.grad_accum"),
    ("pretrain", {"data.batch_size": 12}, r"batch_size/grad_accum = 12/1 \(12\) is not divisible by 8; make it a multiple of the 8 data-parallel devices"),
    ("pretrain", {"data.batch_size": 16, "optimizer.grad_accum": 4}, r"16/4 \(4\) is not divisible by 8"),
    # mesh
    ("pretrain", {"mesh.shape": (16, 1, 1)}, r"config\.mesh\.shape: .*needs 16 devices but 8 are available"),
    ("pretrain", {"mesh.shape": (-1, 3, 1)}, r"config\.mesh\.shape: .*cannot fill 8 devices"),
    ("pretrain", {"mesh.shape": (2, 2)}, r"config\.mesh\.shape: .*must have 3 entries"),
    # values
    ("pretrain", {"optimizer.schedule": "cos"}, r"config\.optimizer\.schedule='cos' is not one of 'cosine', 'linear', 'constant'"),
    ("pretrain", {"steps": -5}, r"config\.steps=-5 must be positive"),
    ("pretrain", {"data.seq_len": 0}, r"config\.data\.seq_len=0 must be positive"),
    ("pretrain", {"optimizer.grad_accum": 0}, r"config\.optimizer\.grad_accum=0 must be positive"),
    ("pretrain", {"data.loss_on": "prompt"}, r"config\.data\.loss_on='prompt' must be 'all' or 'completion'"),
    ("pretrain", {"data.seq_len": 512}, r"config\.data\.seq_len=512 exceeds config\.model\.max_len=512"),
    ("pretrain", {"distributed.num_processes": 2}, r"num_processes > 1 needs config\.distributed\.coordinator"),
    # model dimensions
    ("pretrain", {"model.n_kv_heads": 3}, r"model\.n_heads=4 must be a multiple of model\.n_kv_heads=3"),
    ("pretrain", {"model.d_model": 30}, r"model\.d_model=30 is not divisible by model\.n_heads=4"),
    ("pretrain", {"model.head_dim": 7}, r"model\.head_dim=7 must be even"),
    ("pretrain", {"model.dtype": "float64"}, r"model\.dtype='float64' is not one of"),
    # GRPO: rewards, groups, batch arithmetic, option names
    ("grpo", {"rewards": ("nope",)}, r"unknown reward 'nope' in config\.rewards; known: \["),
    ("grpo", {"rewards": ("format(weight=)",)}, r"reward spec 'format\(weight=\)' is not 'name' or 'name\(key=value, \.\.\.\)'"),
    ("grpo", {"rewards": ("format(bogus=1)",)}, r"reward spec 'format\(bogus=1\)': .*bogus"),
    ("grpo", {"rewards": ("format(weight='heavy')",)}, r"reward spec \"format\(weight='heavy'\)\": could not convert"),
    ("grpo", {"rewards": ()}, r"config\.rewards is empty"),
    ("grpo", {"rl.betta": 0.1}, r"config\.rl\.betta \(did you mean config\.rl\.beta\?\)"),
    ("grpo", {"rl.prompts_per_step": 12}, r"config\.rl\.prompts_per_step \(12\) is not divisible by 8; make it a multiple of the 8 data-parallel devices"),
    ("grpo", {"rl.mini_batches": 3}, r"make it a multiple of rl\.mini_batches \* rl\.grad_accum = 3"),
    ("grpo", {"rl.mini_batches": 2}, r"prompts per micro-batch rl\.prompts_per_step / \(rl\.mini_batches \* rl\.grad_accum\) = 8/2 \(4\) is not divisible by 8; make it a multiple of the 8"),
    ("grpo", {"rl.group_size": 1}, r"config\.rl\.group_size=1: group advantages need at least 2 samples"),
    ("grpo", {"rl.temperature": 0.0}, r"config\.rl\.temperature=0\.0 must be positive"),
    ("grpo", {"rl.kl_estimator": "k4"}, r"config\.rl: .*k4"),
    ("grpo", {"rl.advantage": "ppo"}, r"config\.rl\.advantage='ppo' is not a registered estimator; known: \[.*'dr_grpo', 'grpo', .*'rloo'"),
    ("grpo", {"rl.fused": "yes"}, r"config\.rl\.fused='yes' must be 'auto', 'on' or 'off'"),
    ("grpo", {"rl.fused": "on", "rl.dynamic_sampling": True}, r"config\.rl\.fused='on' needs jittable rewards and no dynamic sampling"),
    ("grpo", {"rl.sampler_mesh": (16, 1, 1)}, r"sampler mesh \(16, 1, 1\) needs 16 devices, this process has 8; .*xla_force_host_platform_device_count"),
    ("grpo", {"rl.sampler_mesh": (3, 1, 1)}, r"sampler mesh \(3, 1, 1\): \d+ prompts per step do not split over its data x fsdp = 3 devices"),
    ("grpo", {"optimizer.schedule": "step"}, r"config\.optimizer\.schedule='step' is not one of"),
]  # fmt: skip


def test_the_baselines_are_valid():
    _validate("pretrain", {})
    _validate("grpo", {})


@pytest.mark.parametrize("stage,changes,match", CASES, ids=[str(c[1]) for c in CASES])
def test_malformed_config_gives_its_one_line_error(stage, changes, match):
    with pytest.raises(config_check.ConfigError) as err:
        _validate(stage, changes)
    msg = str(err.value)
    assert "\n" not in msg and re.search(match, msg), msg


def test_model_vocab_smaller_than_the_tokenizer():
    config = _load(PRETRAIN, "tiny")
    with pytest.raises(
        config_check.ConfigError, match=r"vocab_size=512 is smaller than the tokenizer's 600 pieces"
    ):
        common.model_config(config, vocab_size=600)


def test_missing_tokenizer_path(tmp_path):
    config = _load(PRETRAIN, "tiny")
    config.tokenizer.path = str(tmp_path / "nowhere" / "tok.model")
    with pytest.raises(
        config_check.ConfigError,
        match=r"config\.tokenizer\.path='.*tok\.model': tokenizer model does not exist",
    ):
        common.tokenizer(config, str(tmp_path / "workdir"))
    assert not os.path.exists(tmp_path / "workdir")  # failed before training a tokenizer


def test_missing_input_checkpoint_without_build_if_missing(tmp_path):
    from r1jax.stages import init_model

    config = _load(GRPO, "tiny")
    config.init.checkpoint = str(tmp_path / "no_base")
    config.init.build_if_missing = False
    with pytest.raises(
        config_check.ConfigError,
        match=r"config\.init\.checkpoint='.*no_base' holds no complete checkpoint",
    ):
        init_model.ensure_input(config, str(tmp_path / "workdir"))


def _flag_values() -> flags.FlagValues:
    fv = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "config", flag_values=fv, lock_config=True)
    return fv


def test_overrides_are_applied(monkeypatch):
    fv = _flag_values()
    argv = ["main", f"--config={PRETRAIN}:tiny", "--config.optimizer.lr=1e-3", "--config.mesh.shape=(2,2,2)", "--config.data.loss_on=completion"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)  # config_flags reads its overrides from sys.argv
    config_check.parse_flags(argv, fv)
    assert fv.config.optimizer.lr == 1e-3
    assert tuple(fv.config.mesh.shape) == (2, 2, 2)
    assert fv.config.data.loss_on == "completion"
    assert fv.config.steps == 30  # untouched keys keep the file's values


@pytest.mark.parametrize(
    "override,match",
    [("--config.optimizer.lrr=1e-3", r"unknown config key config\.optimizer\.lrr \(did you mean config\.optimizer\.lr\?\)"),
     ("--config.optimiser.lr=1e-3", r"unknown config key config\.optimiser \(did you mean config\.optimizer\?\)"),
     ("--config.steps=abc", r"--config\.steps=abc: invalid literal for int\(\)")],
)  # fmt: skip
def test_bad_overrides_are_one_line_and_exit_2(override, match, capsys, monkeypatch):
    argv = ["main", f"--config={PRETRAIN}:tiny", override]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as ex:
        config_check.parse_flags(argv, _flag_values())
    assert ex.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("r1jax: ConfigError: ") and re.search(match, err), err


MAIN_CASES = {  # run through `python -m r1jax.main` (8 simulated devices, inherited from conftest)
    "unknown_override": ([f"--config={PRETRAIN}:tiny", "--config.optimizer.lrr=1e-3"], r"config\.optimizer\.lrr \(did you mean config\.optimizer\.lr\?\)"),
    "wrong_type": ([f"--config={PRETRAIN}:tiny", "--config.steps=abc"], r"--config\.steps=abc"),
    "batch_vs_data_axes": ([f"--config={PRETRAIN}:tiny", "--config.data.batch_size=12"], r"is not divisible by 8"),
    "mesh_too_big": ([f"--config={PRETRAIN}:tiny", "--config.mesh.shape=(16,1,1)"], r"needs 16 devices but 8 are available"),
    "bad_schedule": ([f"--config={PRETRAIN}:tiny", "--config.optimizer.schedule=cos"], r"schedule='cos'"),
    "unknown_stage": ([f"--config={PRETRAIN}:tiny", "--config.stage=pretrian"], r"config\.stage='pretrian' is not one of"),
    "other_stage": ([f"--config={PRETRAIN}:tiny", "--config.stage=distill"], r"unknown config key config\.corpus\.arithmetic_weight"),
    "unknown_loss": ([f"--config={GRPO}:tiny", "--config.rl.prompts_per_step=8", "--config.rl.loss=ppo2"], r"unknown loss 'ppo2'"),
    "unknown_reward": ([f"--config={GRPO}:tiny", "--config.rewards=('nope',)"], r"unknown reward 'nope'"),
}  # fmt: skip


@pytest.fixture(scope="module")
def main_runs(tmp_path_factory):
    """Every MAIN_CASES command, started together (they are mostly interpreter start-up)."""
    procs = {}
    for name, (args, _) in MAIN_CASES.items():
        workdir = str(tmp_path_factory.mktemp(name))
        cmd = [sys.executable, "-m", "r1jax.main", f"--workdir={workdir}", *args]
        procs[name] = (subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), workdir)  # fmt: skip
    out = {}
    try:
        for name, (p, workdir) in procs.items():
            stdout, stderr = p.communicate(timeout=300)
            out[name] = (p.returncode, stdout, stderr, workdir)
    finally:
        for p, _ in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MAIN_CASES))
def test_main_exits_2_with_one_line(name, main_runs):
    rc, _, stderr, workdir = main_runs[name]
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert rc == 2, stderr
    assert "Traceback" not in stderr
    assert len(lines) == 1 and lines[0].startswith("r1jax: "), stderr
    assert re.search(MAIN_CASES[name][1], lines[0]), lines[0]
    assert not os.path.exists(os.path.join(workdir, "checkpoints"))  # stopped before training


def test_interrupted_base_build_is_resumed_not_taken_as_finished(tmp_path, monkeypatch, capsys):
    """A main job killed while pretraining must not start RL from the half-trained base model."""
    from r1jax.stages import init_model, pretrain
    from r1jax.train import checkpoint as ckpt_lib

    config = _load(GRPO, "tiny")
    config.init.checkpoint = str(tmp_path / "base")
    config.init.pretrain.steps = 6
    config.init.pretrain.checkpoint.every_steps = 3
    monkeypatch.setenv("R1JAX_FAULTS", "sigterm_after_step=3")
    with pytest.raises(SystemExit):
        pretrain.run(config.init.pretrain, config.init.checkpoint)
    assert ckpt_lib.read_meta(str(tmp_path / "base" / "checkpoints"))[0] == 4
    monkeypatch.delenv("R1JAX_FAULTS")
    assert init_model.ensure_input(config, str(tmp_path / "workdir")) == config.init.checkpoint
    assert "stopped at step 4 of 6; resuming its pretraining first" in capsys.readouterr().out
    assert ckpt_lib.read_meta(str(tmp_path / "base" / "checkpoints"))[0] == 6
    # finished now: a second call returns it untouched
    assert init_model.ensure_input(config, str(tmp_path / "workdir")) == config.init.checkpoint
    assert "resuming" not in capsys.readouterr().out
