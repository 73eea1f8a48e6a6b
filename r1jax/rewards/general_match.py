"""The `general_match` reward: scores the general (non-reasoning) tasks of data/general_task.py.

Exact match is the verifier; token F1 and word edit similarity are graded variants that rank
near-misses (useful for the all-scenario RL stage, where a dense signal helps). Inputs are cut to
MAX_WORDS words, so the quadratic edit distance stays bounded.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from r1jax.rewards.registry import Reward, register
from r1jax.text.parsing import answer_block

MAX_WORDS = 256


def _words(text: str) -> list[str]:
    return text.split()[:MAX_WORDS]


def token_f1(pred: str, target: str) -> float:
    """F1 of the multisets of words (order-free); 1.0 when both are empty."""
    p, t = _words(pred), _words(target)
    if not p and not t:
        return 1.0
    common = sum((collections.Counter(p) & collections.Counter(t)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(t)
    return 2 * precision * recall / (precision + recall)


def edit_similarity(pred: str, target: str) -> float:
    """1 - word-level Levenshtein distance / the longer length (order-aware); 1.0 when both empty."""
    p, t = _words(pred), _words(target)
    if not p and not t:
        return 1.0
    prev = list(range(len(t) + 1))
    for i, pw in enumerate(p, start=1):
        cur = [i] + [0] * len(t)
        for j, tw in enumerate(t, start=1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (pw != tw))
        prev = cur
    return 1.0 - prev[-1] / max(len(p), len(t))


def general_output(text: str) -> str:
    """The answer of a completion: its last `<answer>` block, else the text after `</think>`."""
    block = answer_block(text)
    if block is None:
        block = text.rsplit("</think>", 1)[-1] if isinstance(text, str) else ""
    return " ".join(block.split())


METRICS = {"exact": lambda p, t: float(p == t), "token_f1": token_f1, "edit": edit_similarity}


@register("general_match")
def general_match(metric: str = "exact") -> Reward:
    """Scores general-task outputs against the target; NaN for an example without a target.

    range: [0, 1]. metric="exact": 1 for the exact target (whitespace-normalised, case-sensitive),
    else 0; "token_f1": word-multiset F1 (ignores order, so it cannot score "reverse"/"sort"
    alone); "edit": 1 - word edit distance / longer length.
    """
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r} is not one of {sorted(METRICS)}")
    score = METRICS[metric]

    def fn(completions: Sequence[str], examples: Sequence[Mapping[str, Any]]) -> np.ndarray:
        out = np.zeros(len(completions), np.float32)
        for i, (text, ex) in enumerate(zip(completions, examples, strict=True)):
            gt = ex.get("ground_truth")
            target = gt.get("target") if isinstance(gt, Mapping) else None
            if target is None:
                target = ex.get("answer")
            if not isinstance(target, str):
                out[i] = np.nan
                continue
            out[i] = score(general_output(text), " ".join(target.split()))
        return out

    return Reward("general_match", fn, 0.0, 1.0)
