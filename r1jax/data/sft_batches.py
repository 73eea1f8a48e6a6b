"""SFT examples as token rows: tokenize with the template, plan each epoch's batches, build rows.

Letters: B rows per step, L tokens per row (inputs are [:, :-1], so a row trains L - 1 positions),
K the teacher's top-k (distillation only).

An example is BOS + template(prompt) (exactly what sampling and evaluation feed the model), then
completion + EOS; `loss_mask` marks the completion and EOS (or every token with loss_on="all").
Each epoch's plan is a pure function of (seed, epoch, lengths): a seeded shuffle, then either
- packing: whole examples first-fit into rows of L = seq_len + 1 tokens (never cut; a row's examples
  get segment ids 1, 2, ... and padding 0, so the model keeps them apart: model/packing.py), or
- length buckets: examples sorted by length within windows of 16 batches, each batch padded to the
  next multiple of `bucket` (a few compiled shapes, little padding), batches in seeded order.
The last batch of an epoch is filled with empty rows. A checkpoint therefore only needs the step:
the plan says which examples step s trains on, so resuming mid-epoch repeats nothing and skips
nothing. Examples longer than a row are dropped and counted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from r1jax.data import prompts as prompts_lib

_WINDOW = 16  # packing: open rows searched (first fit); buckets: batches per sorting window


@dataclasses.dataclass(frozen=True)
class BatchConfig:
    seq_len: int  # inputs per packed row (rows hold seq_len + 1 tokens)
    batch_size: int  # rows per step
    packing: bool = True
    bucket: int = 32  # packing off: inputs padded to a multiple of this
    seed: int = 0


def encode(
    tokenizer: Any, template: str, record: dict, loss_on: str = "completion"
) -> tuple[np.ndarray, np.ndarray]:
    """(ids int32 [n], loss_mask bool [n]) of one record: prompt tokens, then completion + EOS."""
    p = prompts_lib.encode_prompt(tokenizer, template, record["prompt"])
    c = list(tokenizer.encode(record["completion"])) + [tokenizer.eos_id]
    mask = np.array([loss_on == "all"] * len(p) + [True] * len(c), bool)
    return np.asarray(p + c, np.int32), mask


def epoch_plan(lengths: Sequence[int], epoch: int, cfg: BatchConfig) -> list[list[list[int]]]:
    """Batches of rows of example indices for one epoch (examples longer than a row left out)."""
    rng = np.random.default_rng([cfg.seed, epoch, 7])
    cap = cfg.seq_len + 1
    order = [int(i) for i in rng.permutation(len(lengths)) if lengths[i] <= cap]
    if cfg.packing:
        rows: list[list[int]] = []
        room: list[int] = []
        for i in order:
            start = max(0, len(rows) - _WINDOW)
            j = next((r for r in range(start, len(rows)) if room[r] >= lengths[i]), None)
            if j is None:
                rows.append([])
                room.append(cap)
                j = len(rows) - 1
            rows[j].append(i)
            room[j] -= lengths[i]
    else:
        rows = []
        w = cfg.batch_size * _WINDOW
        for s in range(0, len(order), w):
            rows += [[i] for i in sorted(order[s : s + w], key=lambda i: lengths[i])]
    batches = [rows[s : s + cfg.batch_size] for s in range(0, len(rows), cfg.batch_size)]
    if not cfg.packing:  # sorted windows would otherwise run short to long
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return [b + [[] for _ in range(cfg.batch_size - len(b))] for b in batches]


def row_length(batch: Sequence[Sequence[int]], lengths: Sequence[int], cfg: BatchConfig) -> int:
    """L for this batch: seq_len + 1 when packing, else the longest row rounded up to a bucket."""
    if cfg.packing:
        return cfg.seq_len + 1
    longest = max((lengths[r[0]] for r in batch if r), default=2)
    inputs = -(-(longest - 1) // cfg.bucket) * cfg.bucket
    return min(max(inputs, cfg.bucket), cfg.seq_len) + 1


def make_batch(
    batch: Sequence[Sequence[int]],
    encoded: Sequence[tuple[np.ndarray, np.ndarray]],
    cfg: BatchConfig,
    pad_id: int,
    topk: Sequence[tuple[np.ndarray, np.ndarray] | None] | None = None,
    length: int | None = None,
) -> dict[str, np.ndarray]:
    """The arrays of one step: tokens, loss_mask [B, L]; segment_ids when packing; KD arrays.

    topk[i] = (ids [n_i, K], logp [n_i, K]) of example i (row t: the teacher's distribution of
    token t given the tokens before it), or None for an example without a teacher (kd_mask False).
    `length` (L) defaults to `row_length` of these rows; a process building its own rows of a
    global batch passes the global batch's.
    """
    if length is None:
        length = row_length(batch, [len(e[0]) for e in encoded], cfg)
    b = len(batch)
    tokens = np.full((b, length), pad_id, np.int32)
    mask = np.zeros((b, length), bool)
    seg = np.zeros((b, length), np.int32)
    k = next((t[0].shape[1] for t in (topk or ()) if t is not None), 1)
    kd_ids = np.zeros((b, length, k), np.int32)
    kd_logp = np.zeros((b, length, k), np.float32)
    kd_mask = np.zeros((b, length), bool)
    for r, row in enumerate(batch):
        pos = 0
        for s, i in enumerate(row, start=1):
            ids, m = encoded[i]
            n = len(ids)
            tokens[r, pos : pos + n], mask[r, pos : pos + n], seg[r, pos : pos + n] = ids, m, s
            if topk is not None and topk[i] is not None:
                kd_ids[r, pos : pos + n], kd_logp[r, pos : pos + n] = topk[i]
                kd_mask[r, pos : pos + n] = True
            pos += n
    out = {"tokens": tokens, "loss_mask": mask}
    if cfg.packing:
        out["segment_ids"] = seg
    if topk is not None:
        out.update(topk_ids=kd_ids, topk_logp=kd_logp, kd_mask=kd_mask)
    return out


def padding_share(
    batch: Sequence[Sequence[int]], lengths: Sequence[int], cfg: BatchConfig
) -> float:
    """Share of the batch's B x L token slots that hold no example token."""
    used = sum(lengths[i] for row in batch for i in row)
    return 1.0 - used / (len(batch) * row_length(batch, lengths, cfg))
