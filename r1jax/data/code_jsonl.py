"""Imports a user's local JSONL file of code problems with tests (MBPP or LiveCodeBench-like exports).

    CodeJsonlTask(data_dir=d, path="mbpp.jsonl", fmt="mbpp")
    CodeJsonlTask(data_dir=d, path="lcb.jsonl", fmt="stdio", question_field="question_content",
                  tests_fields=("public_test_cases", "private_test_cases"))

Nothing is downloaded. Two shapes are read, field names configurable:
- "mbpp": `text` (the task), `test_list` (assert statements), `test_setup_code`, `code` (reference
  solution, becomes `answer`), `task_id`. The first `show_tests` asserts are put into the question
  (so the model knows the function's name and signature, as the MBPP prompt does); all asserts are
  run. ground_truth = {"type": "assert", "setup": ..., "tests": [...]}.
- "stdio" (LiveCodeBench and similar): a question field, one or more test fields, each a list (or a
  JSON string of a list) of {"input": ..., "output": ...} objects. Tests whose `testtype` is not
  "stdin" (LeetCode-style "functional" tests) are dropped; a record left with no test is skipped and
  counted. LiveCodeBench's private tests are a base64/zlib/pickle blob: they are never unpickled
  here (unpickling runs code); decode them to JSON first or leave that field out.
  ground_truth = {"type": "stdio", "tests": [...]}.

Splits, ids and errors follow jsonl_task.py: one file is split by a hash of the question
(`test_fraction`), or `paths` gives one file per split and a training problem also in another split
is dropped; errors are one line with file, line number and field.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from r1jax.data.jsonl_task import hash_fraction
from r1jax.data.tfds_base import TaskBuilder

_LOG = logging.getLogger(__name__)
FORMATS = ("mbpp", "stdio")
DEFAULT_FIELDS = {
    "mbpp": dict(question_field="text", tests_fields=("test_list",), setup_field="test_setup_code", answer_field="code", id_field="task_id"),
    "stdio": dict(question_field="question_content", tests_fields=("public_test_cases", "private_test_cases"), setup_field=None, answer_field=None, id_field="question_id"),
}  # fmt: skip
_DIFFICULTY_WORDS = {"easy": 1, "medium": 2, "hard": 3}


def _as_list(value: Any, where: str, field: str) -> list:
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except json.JSONDecodeError:
            raise ValueError(
                f"{where}: field {field!r} is a string but not a JSON list (compressed/pickled "
                "tests are not read: decode them to JSON, or leave the field out)"
            ) from None
    if not isinstance(value, list):
        raise ValueError(f"{where}: field {field!r} is not a list")
    return value


def _stdio_tests(
    record: Mapping, fields: Sequence[str], where: str, inp: str, out: str
) -> list[dict]:
    tests = []
    for field in fields:
        for t in _as_list(record.get(field, []), where, field):
            if not isinstance(t, Mapping) or inp not in t or out not in t:
                raise ValueError(
                    f"{where}: a test in {field!r} lacks {inp!r}/{out!r}: {str(t)[:80]}"
                )
            if t.get("testtype", "stdin") == "stdin":
                tests.append({"input": str(t[inp]), "output": str(t[out])})
    return tests


def _difficulty(value: Any) -> int:
    if isinstance(value, str) and value.strip().lower() in _DIFFICULTY_WORDS:
        return _DIFFICULTY_WORDS[value.strip().lower()]
    return int(value)


def read_code_jsonl(
    path: str,
    fmt: str = "mbpp",
    name: str = "code",
    show_tests: int = 1,
    difficulty_field: str | None = None,
    input_key: str = "input",
    output_key: str = "output",
    **fields: Any,
) -> list[dict]:
    """Records of one JSONL file in the common schema (see module docstring); one-line errors.

    `fields` overrides DEFAULT_FIELDS[fmt]: question_field, tests_fields, setup_field,
    answer_field, id_field. A repeated question keeps its first record.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt {fmt!r} is not one of {FORMATS}")
    unknown = set(fields) - set(DEFAULT_FIELDS[fmt])
    if unknown:
        raise ValueError(
            f"unknown field option(s) {sorted(unknown)}; known: {sorted(DEFAULT_FIELDS[fmt])}"
        )
    f = {**DEFAULT_FIELDS[fmt], **fields}
    if not os.path.isfile(path):
        raise FileNotFoundError(f"JSONL file not found: {path}")
    out, seen, skipped = [], set(), 0
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: bad JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(record, Mapping):
                raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
            text = record.get(f["question_field"])
            if not isinstance(text, str) or not text.strip():
                raise ValueError(
                    f"{where}: field {f['question_field']!r} is missing or not a non-empty string (record has {sorted(record)})"
                )
            if fmt == "mbpp":
                tests = [
                    str(t)
                    for field in f["tests_fields"]
                    for t in _as_list(record.get(field, []), where, field)
                ]
                setup = str(record.get(f["setup_field"]) or "") if f["setup_field"] else ""
                truth = {"type": "assert", "setup": setup, "tests": tests}
                shown = "\n".join(tests[:show_tests])
                question = (
                    f"{text.strip()}\nYour code should pass these tests:\n{shown}"
                    if shown
                    else text.strip()
                )
            else:
                tests = _stdio_tests(record, f["tests_fields"], where, input_key, output_key)
                truth = {"type": "stdio", "tests": tests}
                question = text.strip()
            if not tests:
                skipped += 1
                continue
            try:
                difficulty = _difficulty(record[difficulty_field]) if difficulty_field else 0
            except (KeyError, ValueError, TypeError):
                raise ValueError(
                    f"{where}: field {difficulty_field!r} is missing or not a difficulty"
                ) from None
            if question in seen:
                continue
            seen.add(question)
            rid = record.get(f["id_field"]) if f["id_field"] else None
            digest = hashlib.sha1(question.encode("utf-8")).hexdigest()[:16]
            answer = record.get(f["answer_field"]) if f["answer_field"] else None
            out.append({
                "id": f"{name}-{rid}-{digest}" if rid is not None else f"{name}-{digest}",
                "task": name,
                "question": question,
                "answer": answer if isinstance(answer, str) else "",
                "ground_truth": truth,
                "difficulty": difficulty,
            })  # fmt: skip
    if skipped:
        _LOG.warning("%s: skipped %d record(s) with no runnable test", path, skipped)
    if not out:
        raise ValueError(f"{path}: no records with runnable tests")
    return out


class CodeJsonlTask(TaskBuilder, skip_registration=True):
    """TFDS builder over local code-problem JSONL files; options as in read_code_jsonl."""

    TASK = "code_jsonl"

    def __init__(
        self,
        *,
        data_dir: str,
        path: str | None = None,
        paths: Mapping[str, str] | None = None,
        fmt: str = "mbpp",
        test_fraction: float = 0.1,
        seed: int = 0,
        **read: Any,
    ):
        if (path is None) == (paths is None):
            raise ValueError(
                "CodeJsonlTask needs exactly one of path= (one file) or paths= (per split)"
            )
        if not 0.0 <= test_fraction <= 1.0:
            raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}")
        files = {"all": path} if path is not None else dict(paths)
        self._records = {split: read_code_jsonl(p, fmt=fmt, **read) for split, p in files.items()}
        self.SPLITS = ("train", "test") if path is not None else tuple(files)
        options = dict(read, fmt=fmt, test_fraction=test_fraction, seed=seed)
        options["files"] = {s: [os.path.abspath(p), _file_sha(p)] for s, p in files.items()}
        self._test_fraction, self._seed = test_fraction, seed
        super().__init__(data_dir=data_dir, **options)

    def generate(self, split: str) -> Iterator[dict]:
        if "all" in self._records:
            for ex in self._records["all"]:
                if (hash_fraction(ex["question"], self._seed) < self._test_fraction) == (
                    split == "test"
                ):
                    yield ex
            return
        others = [s for s in self.SPLITS if s != split] if split == "train" else []
        held_out = {ex["question"] for s in others for ex in self._records[s]}
        dropped = [ex for ex in self._records[split] if ex["question"] in held_out]
        if dropped:
            _LOG.warning(
                "CodeJsonlTask: dropped %d train problems also in %s", len(dropped), others
            )
        yield from (ex for ex in self._records[split] if ex["question"] not in held_out)


def _file_sha(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]
