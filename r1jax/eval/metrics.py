"""Evaluation metrics of the R1 protocol, as pure functions of sampled answers and verdicts.

The harness samples k completions per problem and verifies them; these functions turn the results
into the numbers the paper reports:

- pass@1 averaged over the k samples (the paper's main number, at temperature 0.6, top-p 0.95),
- cons@k: the majority answer over the k samples is checked (self-consistency),
- the unbiased pass@k estimator of Chen et al. (2021) from n >= k samples,
- format compliance (`strict_format_ok`, which the format reward reuses), the readable pattern
  (`readable_format_ok`, the cold-start format), language mixing in the reasoning, and response length statistics,
- and a Markdown table of the results.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from r1jax.rewards.math_answer import normalize as normalize_answer
from r1jax.text import toy_language
from r1jax.text.parsing import (
    readable_format_ok,
    readable_violation,
    reasoning_text,
    strict_format_ok,
)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 - C(n-c, k) / C(n, k).

    Computed as 1 - prod_{i=n-c+1}^{n} (1 - k/i), which never forms the huge binomials.
    """
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=np.float64)))


def mean_pass_at_k(correct: Sequence[Sequence[bool]], k: int) -> float:
    """pass@k averaged over problems; correct[p][s] is the verdict of sample s of problem p."""
    if not correct:
        raise ValueError("no problems")
    return float(np.mean([pass_at_k(len(c), int(sum(map(bool, c))), k) for c in correct]))


def pass1_over_samples(correct: Sequence[Sequence[bool]]) -> float:
    """pass@1 averaged over the k samples of each problem, then over problems (= pass@k at k=1)."""
    if not correct or any(len(c) == 0 for c in correct):
        raise ValueError("every problem needs at least one sample")
    return float(np.mean([np.mean(np.asarray(c, dtype=np.float64)) for c in correct]))


def majority_vote(
    answers: Sequence[str | None], normalize: Callable[[str], str | None] = normalize_answer
) -> int | None:
    """Index of the sample whose normalised answer wins the vote, or None if none has an answer.

    Missing answers (None, or normalising to None/"") do not vote. Tie rule: among the answers
    with the highest count, the one whose first occurrence comes earliest wins, and the returned
    index is that first occurrence. This is deterministic given the sample order.
    """
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    for i, answer in enumerate(answers):
        key = normalize(answer) if answer is not None else None
        if not key:
            continue
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, i)
    if not counts:
        return None
    best = max(counts, key=lambda key: (counts[key], -first[key]))
    return first[best]


def cons_at_k(
    answers: Sequence[Sequence[str | None]],
    correct: Sequence[Sequence[bool]],
    normalize: Callable[[str], str | None] = normalize_answer,
) -> float:
    """Majority-vote accuracy: per problem, the verdict of the winning answer (0 if none voted).

    All samples with the same normalised answer share a verdict (the verifiers compare normalised
    answers first), so the first occurrence's verdict stands for the group.
    """
    if len(answers) != len(correct) or not answers:
        raise ValueError("answers and correct must be non-empty and of equal length")
    scores = []
    for ans, ok in zip(answers, correct):
        if len(ans) != len(ok):
            raise ValueError("each problem needs one verdict per answer")
        winner = majority_vote(ans, normalize)
        scores.append(0.0 if winner is None else float(bool(ok[winner])))
    return float(np.mean(scores))


def format_rate(texts: Sequence[str], think_opened: bool = False) -> float:
    """Share of completions that pass `strict_format_ok`."""
    if not texts:
        raise ValueError("no completions")
    return float(np.mean([strict_format_ok(t, think_opened) for t in texts]))


def readable_rate(texts: Sequence[str]) -> float:
    """Share of completions that follow the readable pattern (`readable_format_ok`)."""
    if not texts:
        raise ValueError("no completions")
    return float(np.mean([readable_format_ok(t) for t in texts]))


def pattern_rate(texts: Sequence[str]) -> float:
    """Share of completions in the readable pattern's form - the tags, one summary line holding the
    answer, one toy language - whatever their attempts: `readable_violation` is None or only
    "repeated". The pattern the paper and issue 16 name is reasoning + summary; `readable_rate`
    also forbids an attempt written twice, which the toy models break on long searches."""
    if not texts:
        raise ValueError("no completions")
    return float(np.mean([readable_violation(t) in (None, "repeated") for t in texts]))


def language_mixing_rate(texts: Sequence[str], langs: Sequence[str] = ("en", "zl")) -> float:
    """Share of completions whose reasoning uses reasoning words of more than one toy language."""
    if not texts:
        raise ValueError("no completions")
    return float(np.mean([toy_language.is_mixed(reasoning_text(t), langs) for t in texts]))


def length_stats(lengths: Iterable[int]) -> dict[str, float]:
    """mean, std, min, p50, p90, max of response lengths (tokens or characters, as given)."""
    x = np.asarray(list(lengths), dtype=np.float64)
    if x.size == 0:
        raise ValueError("no lengths")
    return {
        "mean": float(x.mean()),
        "std": float(x.std()),
        "min": float(x.min()),
        "p50": float(np.percentile(x, 50)),
        "p90": float(np.percentile(x, 90)),
        "max": float(x.max()),
    }


def _cell(value: object, digits: int) -> str:
    if isinstance(value, bool) or value is None:
        text = "" if value is None else str(value)
    elif isinstance(value, (int, np.integer)):
        text = str(int(value))
    elif isinstance(value, (float, np.floating)):
        text = "nan" if np.isnan(value) else f"{float(value):.{digits}f}"
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(
    results: Mapping[str, Mapping[str, object]] | Mapping[str, object], digits: int = 3
) -> str:
    """A Markdown table: rows are the outer keys (e.g. tasks), columns the union of the inner keys
    in order of first appearance; a flat dict gives a two-column metric | value table."""
    if results and all(isinstance(v, Mapping) for v in results.values()):
        columns: list[str] = []
        for row in results.values():
            columns += [c for c in row if c not in columns]
        lines = ["| | " + " | ".join(_cell(c, digits) for c in columns) + " |"]
        lines.append("|---" * (len(columns) + 1) + "|")
        for name, row in results.items():
            cells = [_cell(row.get(c), digits) for c in columns]
            lines.append(f"| {_cell(name, digits)} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"
    lines = ["| metric | value |", "|---|---|"]
    lines += [f"| {_cell(k, digits)} | {_cell(v, digits)} |" for k, v in results.items()]
    return "\n".join(lines) + "\n"
