"""A stage's inputs are other stages' workdirs, named by stage: resolve them, build them if missing.

A bare name ("cold_start_data") is the sibling workdir `<workdir>/../cold_start_data`, so the
experiments and the pipeline chain stages by name; a path with a "/" is used as it is. A missing
input is built by running the stage config given for it (`build`), as the GRPO stage builds its
base model; without one the error names the stage that makes it.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import ml_collections

from r1jax import config_check


def resolve(name: str, workdir: str) -> str:
    """`name` as a path: a bare name is a sibling of `workdir`, anything else is used as it is."""
    if not name:
        raise config_check.ConfigError("an input stage name is empty; name the stage or a path.")
    if os.sep in name or name.startswith("."):
        return name
    return os.path.join(os.path.dirname(os.path.abspath(workdir)), name)


def run_stage(config: ml_collections.ConfigDict, workdir: str) -> Any:
    """Runs the stage that `config.stage` names into `workdir` (it resumes if it was interrupted)."""
    module = importlib.import_module(f"r1jax.stages.{config.stage}")
    return module.run(config, workdir)


def dataset_finished(path: str) -> bool:
    """A data-set stage's workdir is finished when its stats.json (written last) exists; a plain
    JSONL file is always finished."""
    if os.path.isfile(path):
        return True
    return os.path.isfile(os.path.join(path, "stats.json"))


def ensure_dataset(
    path: str, build: ml_collections.ConfigDict | None, build_if_missing: bool, key: str
) -> str:
    """`path` when its data set is finished; otherwise builds it with `build` or says what to run."""
    if dataset_finished(path):
        return path
    if path.endswith(".jsonl"):
        raise config_check.ConfigError(f"config.{key}: the SFT data file {path!r} does not exist.")
    if not build_if_missing or not build:
        raise config_check.ConfigError(
            f"config.{key}: no finished data set at {path!r} (its stats.json is missing); run the "
            "stage that writes it first (cold_start_data or rejection_sampling), or give the stage "
            f"config to build it in config.{key.rsplit('.', 1)[0]}.build."
        )
    print(f"r1jax: no data set in {path}; running stage {build.stage!r} there first", flush=True)
    run_stage(build, path)
    return path


def ensure_model(path: str, build: Any, build_if_missing: bool, key: str) -> str:
    """`path` when it holds a finished stage's checkpoint; otherwise builds it with `build`.

    Finished means the newest checkpoint reached the steps its own saved config planned (an
    interrupted input is resumed by its stage, never used half-trained).
    """
    import json

    from r1jax.train import checkpoint as ckpt_lib

    can_build = bool(build_if_missing and build)
    try:
        step, meta = ckpt_lib.read_meta(os.path.join(path, "checkpoints"))
    except FileNotFoundError:
        if not can_build:
            raise config_check.ConfigError(
                f"config.{key}={path!r} holds no complete checkpoint; run the stage that makes it "
                f"into it first, or give its stage config in config.{key.rsplit('.', 1)[0]}.build."
            ) from None
        why = "no finished model"
    else:
        try:
            planned = int(json.loads(meta.get("config") or "{}").get("steps", 0))
        except (TypeError, ValueError):
            planned = 0
        if step >= planned or not can_build:
            return path
        why = f"an unfinished model (step {step} of {planned})"
    print(f"r1jax: {why} in {path}; running stage {build.stage!r} there first", flush=True)
    run_stage(build, path)
    return path


def load_model(path: str, mesh: Any, rules: Any) -> tuple[Any, dict, Any, Any]:
    """(graphdef, params, model config, tokenizer) of a stage workdir's newest checkpoint."""
    from r1jax.stages import init_model
    from r1jax.tokenizers import sentencepiece as tok_lib
    from r1jax.train import checkpoint as ckpt_lib

    mcfg = init_model.read_model_config(path)
    graphdef, target, _ = init_model.abstract_params(mcfg, mesh, rules)
    params = ckpt_lib.load_item(os.path.join(path, "checkpoints"), "params", target)
    tok = tok_lib.SentencePieceTokenizer.load(os.path.join(path, "tokenizer.model"))
    return graphdef, params, mcfg, tok
