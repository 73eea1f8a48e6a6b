"""Why completions are not readable: the broken rule's share, and repeats against search length.

The readable rate (eval/metrics.py) says how many Countdown answers follow the cold-start pattern;
this says why the others do not, from an evaluation's own samples:

    python -m r1jax.eval.readability --evals=/tmp/r1jax/pipeline/cold_start_sft/eval_after.json

prints one JSON object per file (and task): the share of samples breaking each rule of
`text.parsing.READABLE_RULES` (the first rule broken counts, as `readable_violation` reports it),
the share with a repeated attempt by the number of attempts in the reasoning, and the distance in
attempts from a repeated attempt back to its first occurrence (1 = the line just above); where
the file keeps one problem's samples together, also the repeat share that k attempts drawn
independently from that problem's pooled attempts would show (`independent_repeat_share`): a
model whose repeats match it writes each attempt without regard to the lines above it.

Reads the JSON the evaluation stage (`eval_<task>.json`: one task's `records` list) and the stages'
own evaluations (`eval_after.json`, `eval_before.json`) and the pipeline's report
(`report/records/<stage>.json`) write (`records` per task).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence

from absl import app, flags

from r1jax.text.parsing import READABLE_RULES, attempt_keys, readable_violation, reasoning_text

# attempts per completion are grouped as 0, 1, ..., LONG - 1 and "LONG+"
LONG = 8


def _bucket(attempts: int) -> str:
    """The attempts bucket of a completion: "0" ... str(LONG - 1), then f"{LONG}+"."""
    return str(attempts) if attempts < LONG else f"{LONG}+"


def _bucket_order(buckets) -> list[str]:
    return sorted(buckets, key=lambda b: int(b.rstrip("+")))


def first_repeat_gap(keys: Sequence[str]) -> int | None:
    """Attempts between the first repeated attempt and its earlier occurrence (None: no repeat)."""
    seen: dict[str, int] = {}
    for i, k in enumerate(keys):
        if k in seen:
            return i - seen[k]
        seen[k] = i
    return None


def breakdown(samples: Sequence[str]) -> dict:
    """The readability diagnostics of a set of completions (see the module docstring)."""
    if not samples:
        raise ValueError("no completions")
    n = len(samples)
    rules = dict.fromkeys(("readable", *READABLE_RULES), 0)
    by_len: dict[str, list[int]] = {}  # bucket -> [with a repeat, samples]
    gaps: dict[int, int] = {}
    for text in samples:
        rules[readable_violation(text) or "readable"] += 1
        keys = attempt_keys(reasoning_text(text))
        gap = first_repeat_gap(keys)
        cell = by_len.setdefault(_bucket(len(keys)), [0, 0])
        cell[0] += gap is not None
        cell[1] += 1
        if gap is not None:
            gaps[gap] = gaps.get(gap, 0) + 1
    order = _bucket_order(by_len)
    return {
        "samples": n,
        "rule_share": {k: v / n for k, v in rules.items()},
        "repeated_share_by_attempts": {b: by_len[b][0] / by_len[b][1] for b in order},
        "samples_by_attempts": {b: by_len[b][1] for b in order},
        "first_repeat_gap": {str(g): gaps[g] for g in sorted(gaps)},
    }


def distinct_probability(p_K: Sequence[float], k: int) -> float:
    """P(k independent draws from the distribution p_K are all different) = k! * e_k(p_K), the
    elementary symmetric polynomial by the usual recurrence (exact, no sampling)."""
    e = [1.0] + [0.0] * k
    for x in p_K:
        for j in range(k, 0, -1):
            e[j] += e[j - 1] * x
    return math.factorial(k) * e[k]


def independent_repeat_share(groups: Sequence[Sequence[str]]) -> dict[str, float]:
    """Per attempts bucket, the mean chance that a sample's k attempts would repeat one if drawn
    independently from its problem's attempt distribution (pooled over the problem's samples, the
    sample itself included): the baseline that `repeated_share_by_attempts` is read against."""
    by_len: dict[str, list[float]] = {}
    for group in groups:
        keys = [attempt_keys(reasoning_text(t)) for t in group]
        pool = Counter(k for ks in keys for k in ks)
        total = sum(pool.values())
        p_K = [c / total for c in pool.values()]
        for ks in keys:
            by_len.setdefault(_bucket(len(ks)), []).append(1.0 - distinct_probability(p_K, len(ks)))
    return {b: sum(by_len[b]) / len(by_len[b]) for b in _bucket_order(by_len)}


def groups_by_task(data: Mapping) -> dict[str, list[list[str]]]:
    """{task: [one problem's samples, ...]} from an evaluation file's `records` (a list, or one
    list per task)."""
    records = data.get("records")
    if isinstance(records, list):
        records = {"all": records}
    if not isinstance(records, Mapping):
        raise ValueError("no `records` in this file: is it an evaluation's JSON (eval_*.json)?")
    return {task: [list(r["samples"]) for r in recs] for task, recs in records.items()}


def samples_by_task(data: Mapping) -> dict[str, list[str]]:
    """{task: every sample} from an evaluation file's `records` (a list, or one list per task)."""
    return {task: [s for g in gs for s in g] for task, gs in groups_by_task(data).items()}


FLAGS = flags.FLAGS
flags.DEFINE_list("evals", [], "evaluation JSON files (eval_after.json, eval_countdown.json, ...)")
flags.DEFINE_string(
    "task", "countdown", "the task to analyse where a file holds several ('' = all)"
)


def main(argv: Sequence[str]) -> None:
    del argv
    if not FLAGS.evals:
        raise app.UsageError("--evals=<eval json>[,<eval json>...] is required")
    for path in FLAGS.evals:
        with open(path) as f:
            by_task = groups_by_task(json.load(f))
        for task, groups in by_task.items():
            if FLAGS.task and task not in (FLAGS.task, "all"):
                continue
            row = {"file": path, "task": task, **breakdown([s for g in groups for s in g])}
            row["independent_repeat_share_by_attempts"] = independent_repeat_share(groups)
            print(json.dumps(row))


if __name__ == "__main__":
    app.run(main)
