"""Qwen2 / Llama Hugging Face checkpoints <-> r1jax: the one module callers import.

    graphdef, params, cfg = hf.load_hf("/models/Qwen2.5-0.5B-Instruct", mesh, rules, param_dtype="float32")
    hf.save_hf("/out/policy-hf", params, cfg, tokenizer_dir="/models/Qwen2.5-0.5B-Instruct")

Import lives in hf_import.py (config.json -> ModelConfig, streamed sharded loading), export in
hf_export.py (config.json, sharded safetensors + index, tokenizer files).
"""

from r1jax.model.hf_export import TOKENIZER_FILES, config_to_hf, save_hf
from r1jax.model.hf_import import (
    ARCHITECTURES,
    HFTensor,
    abstract_model,
    config_from_hf,
    hf_tensors,
    load_hf,
    read_config,
    weight_map,
)

__all__ = [
    "ARCHITECTURES",
    "TOKENIZER_FILES",
    "HFTensor",
    "abstract_model",
    "config_from_hf",
    "config_to_hf",
    "hf_tensors",
    "load_hf",
    "read_config",
    "save_hf",
    "weight_map",
]
