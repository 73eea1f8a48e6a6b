"""A TFDS builder over an SFT JSONL file (sft_format.py): the same records through TFDS.

    b = SftBuilder(data_dir="/tmp/tfds", path="/tmp/r1jax/cold_start_data")
    records = sft_tfds.load(b)       # == sft_format.read(path), field for field

The file's content hash is part of the builder's options, so an edited file gets a new data
directory instead of stale records. Written as array_record and read with `as_data_source`, so
TensorFlow is not needed. ground_truth and provenance travel as JSON text.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import tensorflow_datasets as tfds

from r1jax.data import sft_format

_TEXT = ("prompt", "completion", "source", "task", "ground_truth", "provenance")


class SftBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """One split, "train", holding every record of the file in order."""

    VERSION = tfds.core.Version("1.0.0")

    def __init__(self, *, data_dir: str, path: str):
        self.path = sft_format.resolve(path)
        self.records = sft_format.read(self.path)  # validates (one-line errors) before any build
        digest = sft_format.file_digest(self.path)
        tag = hashlib.sha1(f"{os.path.abspath(self.path)}:{digest}".encode()).hexdigest()[:10]
        super().__init__(data_dir=os.path.join(data_dir, f"sft_{tag}"), file_format="array_record")

    def _log_download_bytes(self) -> None:
        print(f"r1jax: building SFT data {self.path} into {self.data_dir}", flush=True)

    def _log_download_done(self) -> None:
        pass

    def _info(self) -> tfds.core.DatasetInfo:
        features = {k: tfds.features.Text() for k in _TEXT}
        features["index"] = tfds.features.Scalar(dtype=np.int64)
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(features),
            description=f"r1jax SFT records of {self.path}",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing is downloaded
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i, r in enumerate(self.records):
            row = {k: r[k] for k in _TEXT[:4]}
            row["ground_truth"] = json.dumps(r["ground_truth"], sort_keys=True)
            row["provenance"] = json.dumps(r["provenance"], sort_keys=True)
            row["index"] = i
            yield i, row


def load(builder: SftBuilder) -> list[dict]:
    """Builds once and reads every record back in file order, as `sft_format.read` returns them."""
    tfds.display_progress_bar(False)
    builder.download_and_prepare()
    source = builder.as_data_source(split="train")
    rows = [source[i] for i in range(len(source))]
    out = []
    for row in sorted(rows, key=lambda r: int(r["index"])):
        d = {k: (v.decode("utf-8") if isinstance(v, bytes) else v) for k, v in row.items()}
        rec = {k: d[k] for k in _TEXT[:4]}
        rec["ground_truth"] = json.loads(d["ground_truth"])
        rec["provenance"] = json.loads(d["provenance"])
        out.append(rec)
    return out
