"""The files of a Hugging Face model folder: config.json, the safetensors index, the tensors.

Every failure names the file: a corrupt or truncated safetensors file otherwise surfaces as the
library's bare "Error while deserializing header: ...", with no hint which of many shards is bad.
"""

from __future__ import annotations

import glob
import json
import os
from typing import Any

import numpy as np

INDEX_FILE = "model.safetensors.index.json"


def _unreadable(path: str, e: Exception) -> ValueError:
    return ValueError(
        f"cannot read safetensors file {path}: {e}. The file is corrupt or truncated (an "
        "interrupted download or copy?); fetch it again."
    )


def read_config(folder: str) -> dict[str, Any]:
    path = os.path.join(folder, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{folder} has no config.json; is it a Hugging Face model folder?")
    with open(path) as fh:
        try:
            return json.load(fh)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from None


def tensor_names(path: str) -> list[str]:
    """The tensor names in one safetensors file (its header only)."""
    from safetensors import safe_open

    try:
        with safe_open(path, framework="numpy") as fh:
            return list(fh.keys())
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
        raise _unreadable(path, e) from None


def read_tensor(path: str, name: str) -> np.ndarray:
    """One tensor of a safetensors file, in its stored dtype (the file is closed afterwards)."""
    from safetensors import safe_open

    try:
        with safe_open(path, framework="numpy") as fh:
            return fh.get_tensor(name)
    except Exception as e:  # noqa: BLE001
        raise _unreadable(path, e) from None


def weight_map(folder: str) -> dict[str, str]:
    """HF tensor name -> safetensors file path, from the index json or from the files' headers."""
    index = os.path.join(folder, INDEX_FILE)
    if os.path.exists(index):
        with open(index) as fh:
            names = json.load(fh)["weight_map"]
        out = {name: os.path.join(folder, file) for name, file in names.items()}
        for path in sorted(set(out.values())):
            if not os.path.exists(path):
                raise FileNotFoundError(
                    f"{INDEX_FILE} in {folder} names {path}, which does not exist."
                )
        return out
    files = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
    if not files:
        raise FileNotFoundError(f"no *.safetensors files (nor {INDEX_FILE}) in {folder}.")
    out = {}
    for path in files:
        out.update((name, path) for name in tensor_names(path))
    return out
