"""Every stage's batch and mesh arithmetic, checked by the pipeline before its first stage runs.

Why: each stage checks its own config when it starts, but in a chain that start can be half an hour
away - a prompts-per-micro-batch that 8 devices cannot split in the reasoning-RL stage would stop
the run after the base, R1-Zero and the cold start. Here the same checks (the stage modules' own
`validate` functions, not copies) run for every stage of the plan on the device count this process
sees, on an abstract mesh of the shape the stage would build, so nothing is initialised, loaded or
compiled. What needs artifacts (tokenizer size, checkpoints, data files) is still checked by the
stage itself.

Skipped, with a line saying so, when a stage would start jax.distributed: asking for the device
count first would start JAX's backends, after which jax.distributed refuses to initialise.
"""

from __future__ import annotations

import jax
import ml_collections

from r1jax import config_check
from r1jax.parallel import distributed, sharding
from r1jax.stages import (
    cold_start_data,
    common,
    grpo_config,
    mixture_config,
    pretrain,
    rejection_sampling,
    rm_config,
    sft_config,
)


def device_count(configs: list[ml_collections.ConfigDict]) -> int | None:
    """The devices the stages will see, or None when one of them would start jax.distributed."""
    if jax.distributed.is_initialized():
        return jax.device_count()
    ds = [c.distributed for c in configs if "distributed" in c]
    if distributed.launch_mode() or any(
        distributed.launch_mode(d.num_processes, d.auto) for d in ds
    ):
        return None
    return jax.device_count()


def check_stage(name: str, config: ml_collections.ConfigDict, num_devices: int) -> None:
    """ConfigError naming `config.stages.<name>` if the stage cannot run on `num_devices`."""
    try:
        _check(config, num_devices)
    except config_check.ConfigError as e:
        msg = str(e)
        named = msg.replace("config.", f"config.stages.{name}.")
        if named == msg:
            named = f"config.stages.{name}: {msg}"
        raise config_check.ConfigError(
            f"{named} (checked before the pipeline's first stage, on {num_devices} devices)"
        ) from None


def _check(config: ml_collections.ConfigDict, num_devices: int) -> None:
    shape = common.check_mesh(config, common.training_devices(config, num_devices))
    mesh = jax.sharding.AbstractMesh(shape, sharding.MESH_AXES)
    rules = common.rules(config)
    dp = sharding.data_parallel_size(mesh, rules)
    kind = config.stage
    if kind == "grpo":
        mixture_config.validate(config)
        grpo_config.validate(config, mesh, rules, None)  # rewards: built by the stage
    elif kind in ("sft", "distill"):
        sft_config.validate(config, dp)
    elif kind == "pretrain":
        pretrain.validate(config, num_devices, dp)
    elif kind == "reward_model":
        rm_config.validate_reward_model(config, dp)
    elif kind in ("eval", "report"):
        common.require_batch(config.batch_prompts, dp, "batch_prompts")
    elif kind == "preference_data":
        rm_config.validate_preference_data(config)
        if config.source == "policy":
            common.require_batch(config.sampling.batch_prompts, dp, "sampling.batch_prompts")
    elif kind == "rejection_sampling":
        rejection_sampling.validate(config)
    elif kind == "cold_start_data":
        cold_start_data.validate(config)
