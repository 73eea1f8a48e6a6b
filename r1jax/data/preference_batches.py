"""Preference pairs as token arrays for the reward model: [prompt | view of the response], right padded.

Letters: M pairs, L = seq_len tokens.

The prompt is the question in a template (BOS + the record's own template, the one the policy
was prompted with, unless the reward model has its own; data/prompts.py) and the response through the reward model's view (`response_view`: the
text after the reasoning for on="summary", everything for on="all"), so the reward model reads at
training time what it reads as a reward. Pairs that cannot teach this view are dropped and counted:
sequences longer than seq_len, and pairs whose two views are identical (two responses that differ
only in their reasoning say nothing about their summaries).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from r1jax.data.preference import response_view
from r1jax.data.prompts import encode_prompt


@dataclasses.dataclass
class PairArrays:
    chosen: np.ndarray  # int32 [M, L]
    chosen_valid: np.ndarray  # bool [M, L]
    rejected: np.ndarray
    rejected_valid: np.ndarray
    records: list[dict]  # the kept records, row-aligned


def encode_pairs(
    records: Sequence[Mapping[str, Any]], tokenizer: Any, on: str, seq_len: int, template: str = ""
) -> tuple[PairArrays, dict[str, int]]:
    """Token arrays of the usable pairs and counts of what was dropped and why.

    `template` renders the question for the reward model ("" = each record's own template, the
    one the policy was prompted with).
    """
    rows, kept, dropped = [], [], {"too_long": 0, "same_view": 0}
    for rec in records:
        prompt = encode_prompt(tokenizer, template or rec["template"], rec["question"])
        views = [response_view(rec[k], on) for k in ("chosen", "rejected")]
        if " ".join(views[0].split()) == " ".join(views[1].split()):
            dropped["same_view"] += 1
            continue
        seqs = [prompt + tokenizer.encode(v) for v in views]
        if max(len(s) for s in seqs) > seq_len:
            dropped["too_long"] += 1
            continue
        rows.append(seqs)
        kept.append(dict(rec))
    m = len(rows)
    arrays = {}
    for j, name in enumerate(("chosen", "rejected")):
        toks = np.full((m, seq_len), tokenizer.pad_id, np.int32)
        valid = np.zeros((m, seq_len), bool)
        for i, seqs in enumerate(rows):
            toks[i, : len(seqs[j])], valid[i, : len(seqs[j])] = seqs[j], True
        arrays[name], arrays[name + "_valid"] = toks, valid
    return PairArrays(records=kept, **arrays), dropped


def batch(pairs: PairArrays, rows: Sequence[int], margin: float) -> dict[str, np.ndarray]:
    """The step's arrays for the given pair rows (margin: one constant per pair)."""
    idx = np.asarray(rows, np.int64)
    return {
        "chosen": pairs.chosen[idx],
        "chosen_valid": pairs.chosen_valid[idx],
        "rejected": pairs.rejected[idx],
        "rejected_valid": pairs.rejected_valid[idx],
        "margin": np.full(len(idx), margin, np.float32),
    }
