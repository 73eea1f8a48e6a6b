"""r1jax params -> a Hugging Face Qwen2 / Llama folder that transformers and vLLM load as is.

The folder gets config.json, the weights as safetensors shards of at most `max_shard_bytes` (with
model.safetensors.index.json when there is more than one), and the tokenizer files copied from the
model's original folder. Tensors are gathered one at a time and one shard is in host memory at once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from r1jax.model.config import ModelConfig
from r1jax.model.hf_import import ARCHITECTURES, INDEX_FILE, HFTensor, _get, hf_tensors

# What a model folder needs besides the weights to be served: tokenizer, chat template, stop ids.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    "generation_config.json",
)
_TOKEN_ID_KEYS = ("bos_token_id", "eos_token_id", "pad_token_id")
_OWN_FILES = re.compile(r"^model(-\d{5}-of-\d{5})?\.safetensors$")


def config_to_hf(cfg: ModelConfig, dtype: str | None = None) -> dict[str, Any]:
    """config.json for `cfg`: Qwen2 when it has q/k/v biases (Qwen2 always does), Llama otherwise.

    Rope settings are written in one form, `rope_theta` plus `rope_scaling` (null, or the llama3
    dict), as the published Qwen2.5 and Llama 3 configs have them: transformers 4 and 5 and vLLM
    all read it, and a user who edits `rope_scaling` (e.g. adds Qwen's YaRN line) changes the one
    place every reader looks. No `rope_parameters` is written, so the two can never disagree.
    """
    kind = "qwen2" if cfg.qkv_bias else "llama"
    scaling = None
    if cfg.rope_scaling is not None:
        s = cfg.rope_scaling
        scaling = {
            "rope_type": "llama3",
            "factor": s.factor,
            "low_freq_factor": s.low_freq_factor,
            "high_freq_factor": s.high_freq_factor,
            "original_max_position_embeddings": s.original_max_position,
        }
    out = {
        "architectures": [ARCHITECTURES[kind]],
        "model_type": kind,
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.mlp_dim,
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.n_kv_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": cfg.max_len,
        "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta,
        "rope_scaling": scaling,
        "tie_word_embeddings": cfg.tie_embeddings,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "use_cache": True,
        "torch_dtype": dtype or cfg.param_dtype,
        "dtype": dtype or cfg.param_dtype,
    }
    if kind == "llama":
        out.update(attention_bias=False, mlp_bias=False, pretraining_tp=1)
    else:
        out.update(use_sliding_window=False, sliding_window=None, max_window_layers=cfg.n_layers)
    return out


def _host(x: jax.Array) -> np.ndarray:
    """The full value of a (possibly sharded, possibly multi-process) array on this host."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        from jax.experimental import multihost_utils

        x = multihost_utils.process_allgather(x, tiled=True)
    return np.asarray(jax.device_get(x))


def _plan(specs: list[HFTensor], itemsize: int, max_shard_bytes: int) -> list[list[HFTensor]]:
    """Greedy split into shards of at most max_shard_bytes (a bigger tensor gets a shard alone)."""
    shards: list[list[HFTensor]] = [[]]
    size = 0
    for spec in specs:
        nbytes = int(np.prod(spec.hf_shape)) * itemsize
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(spec)
        size += nbytes
    return shards


def save_hf(
    folder: str,
    params: Mapping[str, Any],
    model_cfg: ModelConfig,
    tokenizer_dir: str | None = None,
    max_shard_bytes: int = 5 * 10**9,
    dtype: str | None = None,
    extra_config: Mapping[str, Any] | None = None,
) -> None:
    """Writes `params` as a Hugging Face model folder (replacing an earlier export's weights there).

    `dtype` (default: the param dtype) is the stored dtype, e.g. "bfloat16" for serving.
    `tokenizer_dir` (usually the original model folder) supplies the tokenizer files and the
    bos/eos/pad token ids of its config.json; `extra_config` entries are added to config.json last.
    In a multi-process run every process must call this (arrays are gathered); process 0 writes.
    """
    from safetensors.numpy import save_file

    out_dtype = np.dtype(model_cfg.weight_dtype if dtype is None else jax.numpy.dtype(dtype))
    config = config_to_hf(model_cfg, str(out_dtype) if dtype is None else dtype)
    if tokenizer_dir is not None:
        src = os.path.join(tokenizer_dir, "config.json")
        if os.path.exists(src):
            with open(src) as fh:
                orig = json.load(fh)
            config.update({k: orig[k] for k in _TOKEN_ID_KEYS if orig.get(k) is not None})
    config.update(extra_config or {})
    specs = hf_tensors(model_cfg)
    shards = _plan(specs, out_dtype.itemsize, max_shard_bytes)
    names = (
        ["model.safetensors"]
        if len(shards) == 1
        else [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    )
    writer = jax.process_index() == 0
    if writer:
        os.makedirs(folder, exist_ok=True)
        for old in os.listdir(folder):
            if _OWN_FILES.match(old) or old == INDEX_FILE:
                os.remove(os.path.join(folder, old))
    total, weights = 0, {}
    for name, shard in zip(names, shards):
        tensors = {}
        for spec in shard:  # gathered one by one; the host holds one shard
            value = _get(params, spec.path)
            hf = np.ascontiguousarray(spec.to_hf(_host(value)), dtype=out_dtype)
            if hf.shape != spec.hf_shape:
                raise ValueError(
                    f"param {spec.path} has shape {value.shape}; config implies otherwise."
                )
            tensors[spec.name] = hf
            weights[spec.name] = name
            total += hf.nbytes
        if writer:
            save_file(tensors, os.path.join(folder, name), metadata={"format": "pt"})
        del tensors
    if not writer:
        return
    if len(shards) > 1:
        index = {"metadata": {"total_size": total}, "weight_map": weights}
        with open(os.path.join(folder, INDEX_FILE), "w") as fh:
            json.dump(index, fh, indent=2)
    with open(os.path.join(folder, "config.json"), "w") as fh:
        json.dump(config, fh, indent=2)
    if tokenizer_dir is not None:
        for file in TOKENIZER_FILES:
            src = os.path.join(tokenizer_dir, file)
            if os.path.exists(src) and os.path.abspath(src) != os.path.abspath(
                os.path.join(folder, file)
            ):
                shutil.copyfile(src, os.path.join(folder, file))
