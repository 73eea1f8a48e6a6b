"""Held-out evaluation of a reward model: pair accuracy against the oracle, and calibration.

Letters: M held-out pairs.

- accuracy_oracle: the share of pairs the reward model orders as the oracle's NOISELESS preference
  does (sign(r_a - r_b) == sign(s_a - s_b); every pair has |s_a - s_b| >= min_gap, so no ties);
  the issue's goal is >= 0.9. accuracy_label: against the noisy labels the model was trained on
  (it cannot exceed the raters' own agreement with the oracle by much).
- calibration: each pair in a seeded random orientation (a, b), the model's P(a over b) =
  sigmoid(r_a - r_b) binned against how often the label says a (and the raters' own Bradley-Terry
  probability); ECE is the bin-weighted |predicted - observed|.
- oracle vs RM score on the distinct held-out responses (Spearman and Pearson correlation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from r1jax.data.preference_batches import PairArrays

GAP_BINS = (0.1, 0.25, 0.5, 0.75, 1.01)


def score_pairs(
    score_fn: Callable, params: Any, pairs: PairArrays, rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """(r_chosen [M], r_rejected [M]) in fixed batches of `rows` sequences (last one padded)."""
    toks = np.concatenate([pairs.chosen, pairs.rejected])
    valid = np.concatenate([pairs.chosen_valid, pairs.rejected_valid])
    n = len(toks)
    out = np.zeros(n, np.float32)
    for start in range(0, n, rows):
        idx = np.minimum(np.arange(start, start + rows), n - 1)
        got = np.asarray(score_fn(params, toks[idx], valid[idx]))
        stop = min(start + rows, n)
        out[start:stop] = got[: stop - start]
    m = len(pairs.chosen)
    return out[:m], out[m:]


def _gap(rec: dict, aspect: str) -> float:
    return rec["oracle"]["chosen"][aspect] - rec["oracle"]["rejected"][aspect]


def metrics(rc: np.ndarray, rr: np.ndarray, records: Sequence[dict], aspect: str) -> dict:
    """Scalar held-out metrics (prefixed `eval_`)."""
    d = rc.astype(np.float64) - rr
    gap = np.array([_gap(r, aspect) for r in records])
    oracle_ok = np.sign(d) == np.sign(gap)
    out = {
        "eval_loss": float(np.mean(np.logaddexp(0.0, -d))),
        "eval_accuracy_label": float(np.mean(d > 0)),
        "eval_accuracy_oracle": float(np.mean(oracle_ok)),
        "eval_pairs": len(records),
    }
    for src in sorted({r["source"] for r in records}):
        m = np.array([r["source"] == src for r in records])
        out[f"eval_accuracy_oracle_{src}"] = float(np.mean(oracle_ok[m]))
    return out


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged (for Spearman's correlation)."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), np.float64)
    ranks[order] = np.arange(len(x))
    for v in np.unique(x):
        m = x == v
        ranks[m] = ranks[m].mean()
    return ranks


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def report(rc: np.ndarray, rr: np.ndarray, records: Sequence[dict], aspect: str, seed: int) -> dict:
    """Everything the final evaluation writes (rm_eval.json) and plots (calibration.png)."""
    out = metrics(rc, rr, records, aspect)
    d = rc.astype(np.float64) - rr
    gap = np.array([_gap(r, aspect) for r in records])
    ok = np.sign(d) == np.sign(gap)
    out["accuracy_by_kind"] = {
        k: float(np.mean(ok[[r["kind"] == k for r in records]]))
        for k in sorted({r["kind"] for r in records})
    }
    out["accuracy_by_gap"] = []
    lo = 0.0
    for hi in GAP_BINS:
        m = (np.abs(gap) >= lo) & (np.abs(gap) < hi)
        acc = float(np.mean(ok[m])) if m.any() else None
        out["accuracy_by_gap"].append(
            {"gap": f"{lo:.2f}-{min(hi, 1.0):.2f}", "n": int(m.sum()), "accuracy_oracle": acc}
        )
        lo = hi
    # calibration of P(chosen) in a random orientation of each pair
    flip = np.random.default_rng(seed).random(len(d)) < 0.5
    p_model = 1.0 / (1.0 + np.exp(np.where(flip, d, -d)))
    label = (~flip).astype(np.float64)  # 1 when a is the chosen response
    p_true = np.array([r["label"]["p_chosen"] for r in records])
    p_true = np.where(flip, 1.0 - p_true, p_true)
    edges = np.linspace(0, 1, 11)
    bins, ece = [], 0.0
    for i in range(10):
        m = (p_model >= edges[i]) & ((p_model < edges[i + 1]) if i < 9 else (p_model <= 1.0))
        if not m.any():
            bins.append({"lo": float(edges[i]), "n": 0})
            continue
        b = {"lo": float(edges[i]), "n": int(m.sum()), "p_mean": float(p_model[m].mean())}
        b["label_rate"], b["p_true_mean"] = float(label[m].mean()), float(p_true[m].mean())
        ece += m.mean() * abs(b["p_mean"] - b["label_rate"])
        bins.append(b)
    out["reliability"], out["ece"] = bins, float(ece)
    # distinct held-out responses: oracle score vs RM score
    seen: dict[tuple, dict] = {}
    for r, a, b in zip(records, rc, rr):
        for side, score in (("chosen", a), ("rejected", b)):
            key = (r["question"], r[side])
            seen.setdefault(
                key,
                {"source": r["source"], "oracle": r["oracle"][side][aspect], "rm": float(score)},
            )
    pts = list(seen.values())
    xs = np.array([p["oracle"] for p in pts])
    ys = np.array([p["rm"] for p in pts])
    out["responses"] = pts
    out["spearman"] = _corr(_ranks(xs), _ranks(ys)) if len(pts) > 1 else float("nan")
    out["pearson"] = _corr(xs, ys)
    return out
