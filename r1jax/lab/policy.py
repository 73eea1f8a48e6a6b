"""A policy (model + parameters + tokenizer) and a task, loaded with explicit arguments.

A policy comes from any stage directory (`checkpoints/`, `model_config.json`, `tokenizer.model`:
the toy base model in /tmp/r1jax/base, or a GRPO run's workdir) or from a Hugging Face folder
(`config.json` + safetensors + tokenizer files). Notebooks run on one device, so the default mesh
is a (1, 1, 1) mesh on the first device; pass another mesh to shard.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
from flax import nnx

from r1jax.data import tasks
from r1jax.model.config import ModelConfig
from r1jax.parallel import sharding
from r1jax.stages import init_model
from r1jax.tokenizers import sentencepiece as tok_lib
from r1jax.train import checkpoint as ckpt_lib


@dataclasses.dataclass
class Policy:
    """What sampling and the losses need: the model's graph, its pure-dict params, the tokenizer."""

    graphdef: nnx.GraphDef
    params: dict
    config: ModelConfig
    tokenizer: Any
    mesh: jax.sharding.Mesh
    rules: sharding.Rules = tuple(sharding.DEFAULT_RULES)
    source: str = ""

    def with_params(self, params: dict, source: str = "") -> Policy:
        """The same model with other parameters (e.g. after `run_updates`)."""
        return dataclasses.replace(self, params=params, source=source or self.source)


def one_device_mesh() -> jax.sharding.Mesh:
    return sharding.make_mesh((1, 1, 1), jax.devices()[:1])


def is_hf_folder(path: str) -> bool:
    """A Hugging Face folder has config.json and no r1jax model_config.json."""
    has = lambda name: os.path.exists(os.path.join(path, name))  # noqa: E731
    return has("config.json") and not has("model_config.json")


def load_policy(
    path: str,
    mesh: jax.sharding.Mesh | None = None,
    rules: sharding.Rules = tuple(sharding.DEFAULT_RULES),
    step: int | None = None,
    dtype: str = "float32",
) -> Policy:
    """The policy in a stage directory (newest checkpoint, or `step`) or a Hugging Face folder.

    Nothing is built or downloaded: a missing directory is an error naming the command that makes it.
    """
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"{path} does not exist; build the toy base model with `python -m r1jax.main "
            f"--config=experiments/pretrain_toy.py --workdir={path}` or pass a Hugging Face folder."
        )
    mesh = mesh or one_device_mesh()
    rules = tuple(rules)
    if is_hf_folder(path):
        from r1jax.model import hf
        from r1jax.tokenizers import hf as hf_tokenizer

        graphdef, params, mcfg = hf.load_hf(path, mesh, rules, dtype=dtype)
        return Policy(graphdef, params, mcfg, hf_tokenizer.load(path), mesh, rules, path)
    mcfg = init_model.read_model_config(path)
    graphdef, target, _ = init_model.abstract_params(mcfg, mesh, rules)
    params = ckpt_lib.load_item(os.path.join(path, "checkpoints"), "params", target, step)
    tok = tok_lib.SentencePieceTokenizer.load(os.path.join(path, "tokenizer.model"))
    return Policy(graphdef, params, mcfg, tok, mesh, rules, path)


def save_policy(policy: Policy, path: str, step: int = 0) -> str:
    """Writes the policy as a stage directory (checkpoints/, model_config.json, tokenizer) that
    `load_policy`, the eval stage and `config.init.checkpoint` of any stage read. A policy with a
    Hugging Face tokenizer is exported with `r1jax.model.hf.save_hf` instead."""
    if not hasattr(policy.tokenizer, "save"):
        raise ValueError(
            "this policy's tokenizer cannot be written as tokenizer.model; export a Hugging Face "
            "policy with r1jax.model.hf.save_hf(path, policy.params, policy.config, tokenizer_dir=...)."
        )
    ckpt = ckpt_lib.Checkpointer(os.path.join(path, "checkpoints"), ("params",), async_save=False)
    ckpt.save(step, {"params": policy.params}, {"step": step, "stage": "lab"})
    ckpt.close()
    init_model.publish_layout(path, policy.source, policy.config, policy.tokenizer)
    return path


@dataclasses.dataclass(frozen=True)
class Task:
    """A task's examples (one split) and the registered reward that decides accuracy."""

    name: str
    split: str
    examples: list[dict]
    accuracy: str


def load_task(name: str, split: str = "train", data_dir: str = "", **options: Any) -> Task:
    """A registered task (data/tasks.py), e.g. `load_task("countdown", n_numbers=3, max_number=9)`.

    The examples are built once into array_record files under `data_dir` (default: the system
    temp folder), exactly as a GRPO run builds them.
    """
    examples = tasks.load(name, split, data_dir, **options)
    return Task(name, split, examples, tasks.accuracy_reward(name))
