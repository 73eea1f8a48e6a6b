"""A TFDS builder base class shared by every r1jax task, and a loader that needs no TensorFlow.

Every task example has the same features, so rewards, the evaluation harness and the GRPO data
pipeline can treat all tasks alike:

    id          str    unique within the data set (stable across rebuilds)
    task        str    the task family, e.g. "countdown", "arithmetic", "jsonl", "code"
    question    str    the problem text (the template puts it into the prompt)
    answer      str    the reference final answer as text
    ground_truth str   JSON of the structured truth a verifier reads (numbers + target, tests, ...)
    difficulty  int32  task-specific (number of operands, digits, ...)

Builders write array_record files and are read with `as_data_source`, so TensorFlow is not needed.
A subclass sets `TASK` and implements `generate(split)`; keyword arguments of the constructor are
the builder's config (seed, sizes, ...), recorded in the data directory name so that two configs
never share files.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

FEATURE_NAMES = ("id", "task", "question", "answer", "ground_truth", "difficulty")


def _features() -> tfds.features.FeaturesDict:
    return tfds.features.FeaturesDict(
        {
            "id": tfds.features.Text(),
            "task": tfds.features.Text(),
            "question": tfds.features.Text(),
            "answer": tfds.features.Text(),
            "ground_truth": tfds.features.Text(),
            "difficulty": tfds.features.Scalar(dtype=np.int32),
        }
    )


class TaskBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base class: subclasses define TASK, SPLITS and `generate(split)`."""

    VERSION = tfds.core.Version("1.0.0")
    SPLITS: tuple[str, ...] = ("train", "test")
    TASK = ""

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        # TFDS looks for metadata files (README, citations) in the package of the builder's module;
        # a builder defined in an experiment file or a notebook has none. Point every task at this
        # package (which holds no such files), so a builder may live anywhere.
        if "pkg_dir_path" not in cls.__dict__:
            cls.pkg_dir_path = epath.Path(os.path.dirname(os.path.abspath(__file__)))

    def __init__(self, *, data_dir: str, **options: Any):
        self.options = dict(options)
        key = json.dumps(self.options, sort_keys=True, default=str)
        tag = hashlib.sha1(key.encode()).hexdigest()[:10]
        super().__init__(
            data_dir=os.path.join(data_dir, f"{self.TASK}_{tag}"), file_format="array_record"
        )

    def _log_download_bytes(self) -> None:
        # TFDS prints "Downloading and preparing ..."; nothing is ever downloaded here.
        print(
            f"r1jax: generating task {self.TASK!r} into {self.data_dir} (array_record)", flush=True
        )

    def _log_download_done(self) -> None:
        pass

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=_features(),
            description=f"r1jax task {self.TASK} with options {self.options}",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing is ever downloaded
        return {split: self._generate_examples(split) for split in self.SPLITS}

    def _generate_examples(self, split: str):
        for ex in self.generate(split):
            ex = check_example(ex)
            yield ex["id"], ex

    def generate(self, split: str) -> Iterator[dict]:
        raise NotImplementedError


def check_example(ex: Mapping[str, Any]) -> dict:
    """Validates one example dict against the common schema (clear error on a missing field)."""
    missing = [k for k in FEATURE_NAMES if k not in ex]
    if missing:
        raise ValueError(f"task example {ex.get('id', '?')!r} lacks field(s) {missing}")
    out = {k: ex[k] for k in FEATURE_NAMES}
    if not isinstance(out["ground_truth"], str):
        out["ground_truth"] = json.dumps(out["ground_truth"], sort_keys=True)
    out["difficulty"] = int(out["difficulty"])
    return out


def load(builder: TaskBuilder, split: str) -> list[dict]:
    """Builds (once) and reads one split as a list of plain dicts (str fields, decoded ground truth)."""
    tfds.display_progress_bar(False)
    builder.download_and_prepare()
    source = builder.as_data_source(split=split)
    return [decode(source[i]) for i in range(len(source))]


def decode(record: Mapping[str, Any]) -> dict:
    """A record as read back from array_record (bytes) -> str fields and ground_truth as a dict."""
    out = {}
    for k, v in record.items():
        out[k] = v.decode("utf-8") if isinstance(v, bytes) else v
    out["ground_truth"] = json.loads(out["ground_truth"])
    out["difficulty"] = int(out["difficulty"])
    return out


@contextlib.contextmanager
def build_lock(data_dir: str) -> Iterator[None]:
    """An exclusive file lock in data_dir while a data set is built and read.

    The processes of a multi-process run, pipeline stages side by side or two runs that build the
    same data set at once would race on TFDS's final rename (the loser fails); under the lock the
    later ones construct their builder after the data exists and only read it. A remote data_dir
    (gs://...) gets no lock.
    """
    if "://" in data_dir:
        yield
        return
    os.makedirs(data_dir, exist_ok=True)
    with open(os.path.join(data_dir, ".r1jax_build.lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
