"""What every stage runner does first: validate, start distributed JAX, build the mesh, tokenizer.

Only stage runners read the ConfigDict; they turn it into the small dataclasses the library takes.
"""

from __future__ import annotations

import json
import logging
import math
import os
from typing import Any

import jax
import ml_collections

from r1jax import config_check
from r1jax.data import corpus as corpus_lib
from r1jax.model.config import ModelConfig
from r1jax.parallel import distributed, rows, sharding
from r1jax.tokenizers import sentencepiece as tok_lib
from r1jax.train import optim
from r1jax.train.telemetry import Telemetry, TelemetryConfig

log = logging.getLogger(__name__)


def setup(config: ml_collections.ConfigDict, defaults: ml_collections.ConfigDict) -> Any:
    """Schema check, distributed init and the mesh (errors are ConfigErrors, before compiling)."""
    config_check.check_schema(config, defaults)
    if "optimizer" in config:  # a bad schedule name would otherwise surface after model init
        try:
            optim.schedule(optim.OptimizerConfig.from_dict(config.optimizer.to_dict()), 1)
        except ValueError as e:
            raise config_check.ConfigError(f"config.{e}") from None
    d = config.distributed
    try:
        how = distributed.initialize(
            d.coordinator,
            d.num_processes,
            d.process_id,
            d.cpu_collectives,
            d.auto,
            d.init_timeout_s,
            d.heartbeat_timeout_s,
            tuple(d.local_device_ids),
        )
    except ValueError as e:  # a missing coordinator (not a failure inside jax.distributed)
        raise config_check.ConfigError(str(e)) from None
    if how and how != "initialized":
        print(f"r1jax: jax.distributed ({how}): {distributed.describe()}", flush=True)
    devices = jax.devices()[: training_devices(config, jax.device_count())]
    shape = check_mesh(config, len(devices))
    sharding.set_strict(bool(config.get("sharding_strict", False)))
    mesh = sharding.make_mesh(shape, devices)
    try:
        rows.check_layout(mesh, rules(config))
    except ValueError as e:
        raise config_check.ConfigError(f"config.mesh.shape={shape}: {e}") from None
    return mesh


def rules(config: ml_collections.ConfigDict) -> tuple:
    return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in config.sharding_rules)


def model_config(config: ml_collections.ConfigDict, vocab_size: int | None = None) -> ModelConfig:
    """The ModelConfig; with `vocab_size` (the tokenizer's), checks that the model's is big enough."""
    try:
        cfg = ModelConfig.from_dict(config.model.to_dict())
    except (ValueError, TypeError) as e:
        raise config_check.ConfigError(str(e)) from None
    if vocab_size is not None and cfg.vocab_size < vocab_size:
        raise config_check.ConfigError(
            f"config.model.vocab_size={cfg.vocab_size} is smaller than the tokenizer's "
            f"{vocab_size} pieces; set it to at least {vocab_size}."
        )
    return cfg


def corpus_config(config: ml_collections.ConfigDict) -> corpus_lib.CorpusConfig:
    d = config.corpus.to_dict()
    d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
    return corpus_lib.CorpusConfig(**d)


def tokenizer(config: ml_collections.ConfigDict, workdir: str) -> tok_lib.SentencePieceTokenizer:
    """The configured tokenizer; on the toy path (no path given) trains one into the workdir.

    With several processes, process 0 loads or trains it and the others read its file after a
    barrier (one tokenizer for all; the workdir must be on storage every process sees).
    """
    path = config.tokenizer.path or os.path.join(workdir, "tokenizer.model")
    if jax.process_index() != 0:
        distributed.barrier("r1jax_tokenizer")
        if not os.path.exists(path):
            raise config_check.ConfigError(
                f"process 0 wrote the tokenizer to {path}, which process {jax.process_index()} "
                "cannot see: put --workdir on storage every process shares (NFS, a bucket)."
            )
        return tok_lib.SentencePieceTokenizer.load(path)
    if os.path.exists(path):
        tok = tok_lib.SentencePieceTokenizer.load(path)
    else:
        tok = _train_tokenizer(config, path)
    distributed.barrier("r1jax_tokenizer")
    return tok


def _train_tokenizer(
    config: ml_collections.ConfigDict, path: str
) -> tok_lib.SentencePieceTokenizer:
    if config.tokenizer.path:
        config_check.require_path(config.tokenizer.path, "tokenizer.path", "tokenizer model")
    ccfg = corpus_config(config)
    n = int(config.tokenizer.train_docs)
    print(
        f"r1jax: no tokenizer at {path}; training a sentencepiece model on {n} corpus documents",
        flush=True,
    )
    texts = corpus_lib.texts(config.seed + 7919, 0, n, ccfg)
    tok = tok_lib.train(texts, int(config.tokenizer.vocab_size))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tok.save(path)
    return tok


def write_json(workdir: str, name: str, obj: Any) -> str:
    path = os.path.join(workdir, name)
    if jax.process_index() == 0:
        os.makedirs(workdir, exist_ok=True)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, default=str)
        os.replace(path + ".tmp", path)
    return path


def training_devices(config: ml_collections.ConfigDict, num_devices: int) -> int:
    """How many of the devices the stage's mesh takes: all, except that with `rl.sampler_mesh` (the
    sampler has devices of its own) a mesh shape without -1 takes only the first few of them."""
    rl = config.get("rl")
    if rl is not None and rl.get("sampler_mesh") and -1 not in tuple(config.mesh.shape):
        return min(num_devices, math.prod(config.mesh.shape))
    return num_devices


def require_batch(value: int, dp: int, key: str) -> None:
    """A sampled batch of `value` prompts is split over the `dp` data-parallel devices."""
    config_check.require_divisible(
        value,
        dp,
        f"config.{key}",
        f"make it a multiple of the {dp} data-parallel devices (config.mesh.shape)",
    )


def check_mesh(config: ml_collections.ConfigDict, num_devices: int) -> tuple[int, ...]:
    """The resolved mesh shape, or a ConfigError naming the device count."""
    try:
        return sharding.resolve_mesh_shape(tuple(config.mesh.shape), num_devices)
    except ValueError as e:
        raise config_check.ConfigError(f"config.mesh.shape: {e}") from None


def telemetry(config: ml_collections.ConfigDict, workdir: str) -> Telemetry:
    """The profiler window and the optional W&B run of this stage (train/telemetry.py)."""
    w = config.wandb
    try:
        cfg = TelemetryConfig(
            profile_steps=tuple(config.profile_steps),
            wandb=w.enabled,
            wandb_project=w.project,
            wandb_mode=w.mode,
            wandb_entity=w.entity,
        )
        return Telemetry(cfg, workdir, config.to_dict())
    except ValueError as e:
        raise config_check.ConfigError(f"config.{e}") from None
