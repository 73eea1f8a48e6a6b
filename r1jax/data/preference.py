"""Preference pairs: the record format, the views a reward model reads, labels drawn with noise.

One JSONL record per labelled pair (like every other dataset here; `PreferenceBuilder` in
preference_tfds.py is the TFDS builder over the file):

    id          stable hash of (question, chosen, rejected, aspect)
    split       "train" | "test"   (by prompt: the general task's own splits, so held-out pairs
                                    never share a prompt with training pairs)
    question, template, prompt     the task question, the template name, the rendered prompt text
    chosen, rejected               the two responses (completion text, as sampled)
    aspect      "helpfulness" | "harmlessness"   (which oracle score the label is drawn from)
    source      the prompt source ("general" or "harm"; RL routes rewards by it)
    kind        the general task kind ("reverse", ..., "harm")
    oracle      {"chosen": {aspect: score, ...}, "rejected": {...}}  (the oracle's scores, [0, 1])
    label       {"temperature": tau, "p_chosen": P(chosen preferred) under Bradley-Terry noise,
                 "agrees_with_oracle": whether the drawn label matches the noiseless preference}
    provenance  {"responses": how they were made, "checkpoint": ..., "seed": ..., "run": ...}

Labels: annotators prefer response a over b with probability sigmoid((s_a - s_b) / tau), where s is
the oracle's score for the pair's aspect (a Bradley-Terry rater with noise tau; tau = 0 is a
noiseless rater). Pairs whose scores differ by less than `min_gap` are not made (a near-tie is a
coin flip for any rater and carries no signal about which response is better).

Bad pairs are refused: chosen == rejected (after whitespace normalisation), an empty response, an
unknown aspect, a missing field. Writing filters them with counts; reading a file raises a
one-line error naming the file, line and problem.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
from collections.abc import Mapping, Sequence
from typing import Any

from r1jax.text.parsing import THINK_CLOSE, THINK_OPEN

ASPECTS = ("helpfulness", "harmlessness")
VIEWS = ("summary", "all")
FIELDS = (
    "id",
    "split",
    "question",
    "template",
    "prompt",
    "chosen",
    "rejected",
    "aspect",
    "source",
    "kind",
    "oracle",
    "label",
    "provenance",
)


def response_view(text: str, on: str) -> str:
    """What a judge reads of a response: "all" the whole text; "summary" only what follows the
    reasoning (after the last `</think>`; nothing while a `<think>` is still open; the whole text
    when it has no reasoning block). The text is returned as is (not stripped), so its tokens are a
    suffix of the whole response's tokens."""
    if on == "all":
        return text
    if on != "summary":
        raise ValueError(f"view on={on!r} is not one of {VIEWS}")
    end = text.rfind(THINK_CLOSE)
    if end >= 0:
        return text[end + len(THINK_CLOSE) :]
    return "" if THINK_OPEN in text else text


def _norm(text: str) -> str:
    return " ".join(text.split())


def pair_problem(chosen: Any, rejected: Any) -> str | None:
    """Why a (chosen, rejected) pair is unusable, or None when it is fine."""
    if not isinstance(chosen, str) or not isinstance(rejected, str):
        return "chosen and rejected must be strings"
    if not _norm(chosen) or not _norm(rejected):
        return "empty response (chosen or rejected is blank)"
    if _norm(chosen) == _norm(rejected):
        return "chosen == rejected (identical after whitespace normalisation)"
    return None


def check_record(rec: Mapping[str, Any], where: str) -> None:
    """Raises ValueError naming `where` (file:line) when a record is malformed or a bad pair."""
    missing = [k for k in FIELDS if k not in rec]
    if missing:
        raise ValueError(f"{where}: preference record lacks field(s) {missing}")
    if rec["aspect"] not in ASPECTS:
        raise ValueError(f"{where}: aspect {rec['aspect']!r} is not one of {ASPECTS}")
    if rec["split"] not in ("train", "test"):
        raise ValueError(f"{where}: split {rec['split']!r} is not 'train' or 'test'")
    why = pair_problem(rec["chosen"], rec["rejected"])
    if why:
        raise ValueError(f"{where}: bad pair {rec.get('id', '?')!r}: {why}")


def pair_id(question: str, chosen: str, rejected: str, aspect: str) -> str:
    key = json.dumps([question, chosen, rejected, aspect])
    return "pref-" + hashlib.sha1(key.encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class PairConfig:
    """How pairs are made from one prompt's responses and labelled."""

    aspects: tuple[str, ...] = ASPECTS
    min_gap: float = 0.1  # minimum |s_a - s_b| of the aspect's oracle scores
    temperature: float = 0.1  # Bradley-Terry rater noise tau (0 = noiseless)
    max_pairs_per_prompt: int = 6  # per aspect; a random subset of the eligible pairs

    def __post_init__(self):
        bad = [a for a in self.aspects if a not in ASPECTS]
        if bad or not self.aspects:
            raise ValueError(
                f"pair aspects {list(self.aspects)} must be a non-empty subset of {ASPECTS}"
            )
        if self.min_gap <= 0 or self.temperature < 0 or self.max_pairs_per_prompt < 1:
            raise ValueError("need min_gap > 0, temperature >= 0 and max_pairs_per_prompt >= 1")


def p_prefer(s_a: float, s_b: float, temperature: float) -> float:
    """P(a preferred over b) for a Bradley-Terry rater: sigmoid((s_a - s_b) / tau)."""
    d = s_a - s_b
    if temperature == 0:
        return 1.0 if d > 0 else (0.0 if d < 0 else 0.5)
    z = d / temperature
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def distinct_responses(texts: Sequence[str]) -> tuple[list[int], dict[str, int]]:
    """Indices of the usable, distinct responses (first occurrence) and what was dropped."""
    keep, seen, dropped = [], set(), {"empty": 0, "duplicate": 0}
    for i, t in enumerate(texts):
        n = _norm(t) if isinstance(t, str) else ""
        if not n:
            dropped["empty"] += 1
        elif n in seen:
            dropped["duplicate"] += 1
        else:
            seen.add(n)
            keep.append(i)
    return keep, dropped


def make_pairs(
    texts: Sequence[str],
    scores: Mapping[str, Sequence[float]],
    rng: random.Random,
    cfg: PairConfig,
) -> tuple[list[dict], dict[str, int]]:
    """Labelled pairs from one prompt's responses: [{chosen, rejected, aspect, oracle, label}].

    `scores[aspect][i]` is the oracle's score of texts[i]. Responses are deduplicated and empty
    ones dropped first; for each aspect, every pair with |score gap| >= min_gap is eligible, at most
    `max_pairs_per_prompt` are drawn, and the label of each is drawn from the Bradley-Terry rater.
    """
    keep, counts = distinct_responses(texts)
    counts.update(near_tie=0, pairs=0, flipped=0)
    out = []
    for aspect in cfg.aspects:
        s = scores[aspect]
        eligible = []
        for x in range(len(keep)):
            for y in range(x + 1, len(keep)):
                if abs(s[keep[x]] - s[keep[y]]) >= cfg.min_gap:
                    eligible.append((keep[x], keep[y]))
                else:
                    counts["near_tie"] += 1
        rng.shuffle(eligible)
        for a, b in eligible[: cfg.max_pairs_per_prompt]:
            p_a = p_prefer(s[a], s[b], cfg.temperature)
            a_wins = rng.random() < p_a
            c, r = (a, b) if a_wins else (b, a)
            agrees = s[c] > s[r]
            counts["pairs"] += 1
            counts["flipped"] += int(not agrees)
            out.append(
                {
                    "chosen": texts[c],
                    "rejected": texts[r],
                    "aspect": aspect,
                    "oracle": {
                        "chosen": {k: float(v[c]) for k, v in scores.items()},
                        "rejected": {k: float(v[r]) for k, v in scores.items()},
                    },
                    "label": {
                        "temperature": cfg.temperature,
                        "p_chosen": p_a if a_wins else 1.0 - p_a,
                        "agrees_with_oracle": bool(agrees),
                    },
                }
            )
    return out, counts


def write_jsonl(path: str, records: Sequence[Mapping[str, Any]]) -> str:
    """Writes the records atomically (a temporary file renamed over the target); checks each."""
    for i, rec in enumerate(records):
        check_record(rec, f"record {i} for {path}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def read_jsonl(path: str) -> list[dict]:
    """Every record of a preference file, validated; one-line errors name the file and line."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"preference file not found: {path}")
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from None
            if not isinstance(rec, dict):
                raise ValueError(f"{path}:{n}: a preference record must be a JSON object")
            check_record(rec, f"{path}:{n}")
            out.append(rec)
    if not out:
        raise ValueError(f"{path}: holds no preference records")
    return out
