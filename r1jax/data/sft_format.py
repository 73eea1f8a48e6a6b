"""One SFT data format for every source: cold-start, rejection-sampled, general and distillation data.

A data set is a JSONL file, one record per line:

    prompt       str   the user's question; the template (R1 / chat) is applied at load time, so
                       one file serves any template
    completion   str   what the model is trained to write after the prompt
    source       str   where it came from: "r1_zero_rewrite", "hand_designed", "rejection_sampled",
                       "general_reference", ...
    task         str   the task family ("countdown", "arithmetic", "general", ...)
    ground_truth dict  optional: what the task's verifier reads (numbers + target, ...)
    provenance   dict  optional: which checkpoint, seed and filters produced it (free-form)

A stage writes its data set with `write` (a temporary file renamed into place, so a reader never sees
half a file) as `<stage workdir>/sft_data.jsonl`; `resolve` turns a stage workdir into that path, so a
stage names its inputs by workdir. `builder.SftBuilder` (sft_tfds.py) serves the same records through
TFDS. Bad input is one line naming the file, the line and the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from r1jax.config_check import ConfigError

FILENAME = "sft_data.jsonl"
REQUIRED = ("prompt", "completion", "source", "task")
OPTIONAL = ("ground_truth", "provenance")
_FIX = (
    "every record needs string fields prompt, completion, source, task (r1jax/data/sft_format.py)"
)


def resolve(path: str) -> str:
    """The JSONL file of a stage workdir (its sft_data.jsonl), or `path` itself when it is a file."""
    return os.path.join(path, FILENAME) if os.path.isdir(path) else path


def check_record(record: Any, where: str) -> dict:
    """One validated record (optional fields filled with {}); ConfigError naming `where` otherwise."""
    if not isinstance(record, Mapping):
        raise ConfigError(f"{where}: a record must be a JSON object; {_FIX}.")
    for key in REQUIRED:
        if key not in record:
            raise ConfigError(f"{where}: missing field {key!r}; {_FIX}.")
        if not isinstance(record[key], str):
            raise ConfigError(f"{where}: field {key!r} must be a string; {_FIX}.")
    if not record["completion"].strip():
        raise ConfigError(f"{where}: field 'completion' is empty; drop the record or fill it.")
    out = {k: record[k] for k in REQUIRED}
    for key in OPTIONAL:
        value = record.get(key) or {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: field {key!r} must be a JSON object when present.")
        out[key] = dict(value)
    return out


def read(path: str) -> list[dict]:
    """All records of a JSONL file (blank lines skipped), validated; one-line ConfigErrors."""
    path = resolve(path)
    if not os.path.isfile(path):
        raise ConfigError(
            f"SFT data file {path!r} does not exist; run the stage that writes it first, or point "
            "the config at an existing JSONL file."
        )
    records = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{path}:{n}: not valid JSON ({e.msg}); fix or remove the line.")
            records.append(check_record(record, f"{path}:{n}"))
    if not records:
        raise ConfigError(f"SFT data file {path!r} holds no records; regenerate it or remove it.")
    return records


def write(path: str, records: Iterable[Mapping[str, Any]]) -> int:
    """Writes the records atomically (temporary file + rename); returns how many were written."""
    rows = [check_record(r, f"record {i} for {path}") for i, r in enumerate(records)]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return len(rows)


def record_id(record: Mapping[str, Any]) -> str:
    """A stable id of a record's content (prompt and completion)."""
    key = json.dumps([record["prompt"], record["completion"]])
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def file_digest(path: str) -> str:
    """sha256 of a file's bytes (a data set's identity in provenance and builder options)."""
    h = hashlib.sha256()
    with open(resolve(path), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
