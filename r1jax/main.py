"""r1jax entry point: `python -m r1jax.main --config=experiments/x.py[:arg] --workdir=DIR`.

Flags and dispatch only (the stages live in r1jax/stages/). Overrides: `--config.optimizer.lr=3e-4`.
"""

import importlib
import sys

from absl import app, flags, logging
from ml_collections import config_flags

STAGES = (  # each is a module r1jax/stages/<name>.py with run()
    "pretrain",
    "sft",
    "cold_start_data",
    "grpo",
    "eval",
    "preference_data",
    "reward_model",
    "rejection_sampling",
    "distill",
    "report",
    "pipeline",
)

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and plots.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    from r1jax.config_check import ConfigError
    from r1jax.parallel.distributed import exit_after_error
    from r1jax.stages.pipeline_workers import StageFailed
    from r1jax.train.checkpoint import CheckpointError
    from r1jax.train.loop import NonFiniteError

    config = _CONFIG.value
    stage = config.get("stage")
    if stage not in STAGES:
        print(
            f"r1jax: ConfigError: config.stage={stage!r} is not one of {STAGES}; set one of them.",
            file=sys.stderr,
        )
        sys.exit(2)
    module = importlib.import_module(f"r1jax.stages.{stage}")
    try:
        module.run(config, _WORKDIR.value)
    except (ConfigError, FileNotFoundError, CheckpointError, NonFiniteError, StageFailed) as e:
        print(f"r1jax: {type(e).__name__}: {e}", file=sys.stderr)
        exit_after_error(e, 2)  # several processes: exit now, peers stop on their heartbeat
        sys.exit(2)
    except Exception as e:
        exit_after_error(e, 3, show_traceback=True)
        raise


if __name__ == "__main__":
    from r1jax.train import heap_policy

    try:  # the opt-in heap policies: R1JAX_MALLOC_ARENAS, R1JAX_HEAP=hugepages
        heap_policy.configure()
    except ValueError as e:  # a malformed R1JAX_MALLOC_ARENAS: one line, not a traceback
        print(f"r1jax: {e}", file=sys.stderr)
        sys.exit(2)
    from r1jax.config_check import parse_flags

    app.run(main, flags_parser=parse_flags)
