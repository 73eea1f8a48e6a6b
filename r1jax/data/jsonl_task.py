"""Imports a user's local JSONL file of question/answer records (GSM8K, MATH-500, AIME exports).

    JsonlTask(data_dir=d, path="math500.jsonl", question_field="problem", answer_field="solution",
              answer_format="boxed", difficulty_field="level", name="math500")

Nothing is downloaded: the user exports the data set once and points the config at the file.
The final answer is taken from the answer field as configured: "boxed" (last `\\boxed{}`, MATH),
"gsm8k" (after the last `####`), "raw" (the whole field), or "auto" (boxed if present, else
`####` if present, else raw). The structured truth is {"answer": final answer}, which the
numeric_accuracy and math_accuracy rewards read.

Splits: with `path` (one file, no split), a problem goes to "test" when a hash of its question
falls below `test_fraction`, so the split is deterministic, independent of the file's order, and
two copies of one question always land in the same split; duplicates are dropped. With `paths`
({"train": ..., "test": ...}, one file per split), a training question that also appears in another
split is dropped from training (and logged), so splits never share a problem.

Errors are one line and name the file, the line number and the field. The file is read and
checked when the builder is constructed, and its content hash is part of the builder's options,
so editing the file makes a new data directory instead of silently reusing stale records.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

from r1jax.data.tfds_base import TaskBuilder
from r1jax.text.parsing import gsm8k_final, last_boxed

ANSWER_FORMATS = ("auto", "boxed", "gsm8k", "raw")
_LOG = logging.getLogger(__name__)


def _final_answer(value: Any, answer_format: str) -> str | None:
    text = value if isinstance(value, str) else json.dumps(value)
    if answer_format == "raw":
        return text.strip() or None
    if answer_format == "boxed":
        return last_boxed(text)
    if answer_format == "gsm8k":
        return gsm8k_final(text)
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    return gsm8k_final(text) if "####" in text else (text.strip() or None)


def _difficulty(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int):
        return value
    m = re.search(r"-?\d+", str(value))  # "Level 5" -> 5
    if not m:
        raise ValueError
    return int(m.group(0))


def read_jsonl(
    path: str,
    question_field: str = "question",
    answer_field: str = "answer",
    answer_format: str = "auto",
    difficulty_field: str | None = None,
    name: str = "jsonl",
) -> list[dict]:
    """Records of one JSONL file in the common task schema (no split); one-line errors.

    Blank lines are skipped; a repeated question keeps its first record. Ids are stable: the task
    name and a hash of the question text.
    """
    if answer_format not in ANSWER_FORMATS:
        raise ValueError(f"answer_format {answer_format!r} is not one of {ANSWER_FORMATS}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"JSONL file not found: {path}")
    out, seen = [], set()
    with open(path, encoding="utf-8-sig") as f:  # tolerate a byte-order mark
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: bad JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(record, Mapping):
                raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
            for field in (question_field, answer_field) + (
                (difficulty_field,) if difficulty_field else ()
            ):
                if field not in record:
                    raise ValueError(
                        f"{where}: record has no field {field!r} (it has {sorted(record)})"
                    )
            question = record[question_field]
            if not isinstance(question, str) or not question.strip():
                raise ValueError(f"{where}: field {question_field!r} is not a non-empty string")
            answer = _final_answer(record[answer_field], answer_format)
            if answer is None:
                raise ValueError(
                    f"{where}: field {answer_field!r} has no final answer "
                    f"(answer_format={answer_format!r})"
                )
            try:
                difficulty = _difficulty(record[difficulty_field]) if difficulty_field else 0
            except ValueError:
                raise ValueError(f"{where}: field {difficulty_field!r} is not an integer") from None
            if question in seen:
                continue
            seen.add(question)
            digest = hashlib.sha1(question.encode("utf-8")).hexdigest()[:16]
            out.append(
                {
                    "id": f"{name}-{digest}",
                    "task": name,
                    "question": question,
                    "answer": answer,
                    "ground_truth": {"answer": answer},
                    "difficulty": difficulty,
                }
            )
    if not out:
        raise ValueError(f"{path}: no records")
    return out


def hash_fraction(text: str, seed: int = 0) -> float:
    """A deterministic number in [0, 1) from `text` (stable across runs and machines)."""
    digest = hashlib.sha256(f"{seed}:{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _file_sha(path: str) -> str:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"JSONL file not found: {path}")
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


class JsonlTask(TaskBuilder, skip_registration=True):
    """TFDS builder over local JSONL files; options as in the module docstring."""

    TASK = "jsonl"

    def __init__(
        self,
        *,
        data_dir: str,
        path: str | None = None,
        paths: Mapping[str, str] | None = None,
        question_field: str = "question",
        answer_field: str = "answer",
        answer_format: str = "auto",
        difficulty_field: str | None = None,
        name: str = "jsonl",
        test_fraction: float = 0.1,
        seed: int = 0,
    ):
        if (path is None) == (paths is None):
            raise ValueError(
                "JsonlTask needs exactly one of path= (one file) or paths= (per split)"
            )
        if not 0.0 <= test_fraction <= 1.0:
            raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}")
        files = {"all": path} if path is not None else dict(paths)
        read = dict(
            question_field=question_field,
            answer_field=answer_field,
            answer_format=answer_format,
            difficulty_field=difficulty_field,
            name=name,
        )
        self._records = {split: read_jsonl(p, **read) for split, p in files.items()}
        self.SPLITS = ("train", "test") if path is not None else tuple(files)
        options = dict(read, test_fraction=test_fraction, seed=seed)
        options["files"] = {split: [os.path.abspath(p), _file_sha(p)] for split, p in files.items()}
        self._test_fraction, self._seed = test_fraction, seed
        super().__init__(data_dir=data_dir, **options)

    def generate(self, split: str) -> Iterator[dict]:
        if "all" in self._records:
            for ex in self._records["all"]:
                is_test = hash_fraction(ex["question"], self._seed) < self._test_fraction
                if is_test == (split == "test"):
                    yield ex
            return
        others = [s for s in self.SPLITS if s != split] if split == "train" else []
        held_out = {ex["question"] for s in others for ex in self._records[s]}
        dropped = 0
        for ex in self._records[split]:
            if ex["question"] in held_out:
                dropped += 1
                continue
            yield ex
        if dropped:
            _LOG.warning("JsonlTask: dropped %d train questions also in %s", dropped, others)
