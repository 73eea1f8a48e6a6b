"""The TFDS builder over a preference JSONL file (array_record, read without TensorFlow).

    b = PreferenceBuilder(data_dir="/tmp/tfds", path="/tmp/r1jax/preference_data/preferences.jsonl")
    train = load(b, "train")   # list of record dicts (oracle / label / provenance decoded)

The file is read and validated when the builder is constructed (bad pairs are one-line errors
naming the line), and its content hash is part of the data directory name, so a regenerated file
never reuses stale records.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

import tensorflow_datasets as tfds

from r1jax.data import preference

_JSON_FIELDS = ("oracle", "label", "provenance")


class PreferenceBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Splits "train" and "test" of one preference JSONL file."""

    VERSION = tfds.core.Version("1.0.0")
    SPLITS = ("train", "test")

    def __init__(self, *, data_dir: str, path: str):
        self.path = os.path.abspath(path)
        self.records = preference.read_jsonl(self.path)
        with open(self.path, "rb") as f:
            tag = hashlib.sha1(f.read()).hexdigest()[:10]
        super().__init__(
            data_dir=os.path.join(data_dir, f"preference_{tag}"), file_format="array_record"
        )

    def _log_download_bytes(self) -> None:
        print(f"r1jax: building preference data {self.path} into {self.data_dir}", flush=True)

    def _log_download_done(self) -> None:
        pass

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {k: tfds.features.Text() for k in preference.FIELDS}
            ),
            description=f"r1jax preference pairs from {self.path}",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing is ever downloaded
        return {s: self._generate_examples(s) for s in self.SPLITS}

    def _generate_examples(self, split: str):
        for rec in self.records:
            if rec["split"] == split:
                yield rec["id"], encode(rec)


def encode(rec: Mapping[str, Any]) -> dict:
    """A record as stored: every field text, the nested ones as JSON."""
    return {
        k: json.dumps(rec[k], sort_keys=True) if k in _JSON_FIELDS else str(rec[k])
        for k in preference.FIELDS
    }


def decode(stored: Mapping[str, Any]) -> dict:
    out = {}
    for k, v in stored.items():
        v = v.decode("utf-8") if isinstance(v, bytes) else v
        out[k] = json.loads(v) if k in _JSON_FIELDS else v
    return out


def load(builder: PreferenceBuilder, split: str) -> list[dict]:
    """Builds (once) and reads one split, in the file's order (an absent split is empty)."""
    if not any(r["split"] == split for r in builder.records):
        return []
    tfds.display_progress_bar(False)
    builder.download_and_prepare()
    source = builder.as_data_source(split=split)
    rows = [decode(source[i]) for i in range(len(source))]
    order = {r["id"]: i for i, r in enumerate(builder.records)}
    return sorted(rows, key=lambda r: order[r["id"]])
