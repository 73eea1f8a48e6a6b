"""The distillation stage: a smaller student learns from the teacher's samples (R1's distilled models).

    python -m r1jax.main --config=experiments/distill_student.py --workdir=/tmp/r1jax/distill

(a) `kd_weight` = 0: SFT of the student on the teacher's rejection-sampled traces, the paper's method
(the SFT stage's loop, stages/sft.py, with the student as the starting model); (b) `kd_weight` = w > 0:
the loss becomes (1 - w) * NLL + w * KL(teacher top-k || student) on every token whose teacher
distribution was recorded while sampling (stages/topk_record.py; general examples have none and
keep the NLL only). The student's base model is pretrained on the same corpus at its own size
(`init.pretrain.model`), built into the sibling "student_base" if missing. Logit distillation needs
one vocabulary: the data set's tokenizer (the teacher's) must be the student's, byte for byte.
"""

from __future__ import annotations

import os

import ml_collections

from r1jax import config_base, config_check
from r1jax.stages import sft, topk_record


def _same_tokenizer(data_dir: str, workdir: str) -> None:
    teacher = os.path.join(data_dir, "tokenizer.model")
    student = os.path.join(workdir, "tokenizer.model")
    if not os.path.exists(teacher):
        raise config_check.ConfigError(
            f"config.kd_weight > 0 but {data_dir} has no tokenizer.model (the teacher's); "
            "rerun rejection sampling into it, or set config.kd_weight=0."
        )
    with open(teacher, "rb") as f, open(student, "rb") as g:
        if f.read() != g.read():
            raise config_check.ConfigError(
                f"config.kd_weight > 0 needs one tokenizer, but {teacher} (teacher) differs from "
                f"{student} (student); build the student base with the teacher's tokenizer "
                "(config.init.pretrain.tokenizer.path) or set config.kd_weight=0."
            )


def teacher_topk_fn(config: ml_collections.ConfigDict, workdir: str):
    """The loader sft.train calls: per record (ids [n, K], logp [n, K]) or None."""

    def load(paths, records, encoded, counts):
        out, start = [], 0
        for path, n in zip(paths, counts):
            _same_tokenizer(path if os.path.isdir(path) else os.path.dirname(path), workdir)
            table = topk_record.load(path) if os.path.isdir(path) else None
            for i in range(start, start + n):
                row = records[i]["provenance"].get("topk_row")
                if row is None or table is None:
                    out.append(None)
                    continue
                if records[i]["provenance"].get("topk_template") != config.data.template:
                    raise config_check.ConfigError(
                        f"{path}: the teacher's top-k were recorded with template "
                        f"{records[i]['provenance'].get('topk_template')!r}; set "
                        "config.data.template to it."
                    )
                a, b = table["offsets"][row], table["offsets"][row + 1]
                if b - a != len(encoded[i][0]):
                    raise config_check.ConfigError(
                        f"{path}: top-k rows of record {i - start} ({b - a}) do not match its "
                        f"{len(encoded[i][0])} tokens; the data set was recorded with another "
                        "tokenizer. Rerun rejection sampling with config.record_topk."
                    )
                out.append((table["ids"][a:b], table["logp"][a:b]))
            start += n
        if not any(t is not None for t in out):
            raise config_check.ConfigError(
                f"config.kd_weight={config.kd_weight} but no record of {paths} has recorded "
                "top-k log-probs; run rejection sampling with config.record_topk > 0."
            )
        return out

    return load


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    config_check.check_schema(config, config_base.distill())  # before reading any key
    kd = teacher_topk_fn(config, workdir) if config.kd_weight > 0 else None
    return sft.train(config, workdir, config_base.distill(), kd)
