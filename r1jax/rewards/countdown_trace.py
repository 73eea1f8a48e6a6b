"""Diagnostics of Countdown reasoning traces, usable as rewards (or, with weight 0, as logged metrics).

A trace line is an attempt `a op b = c,c op d = e verdict`. RL on the answer alone can let the
reasoning drift (false sums, "yes" for a miss); these measure it on the policy's own text:
- `countdown_honesty`: the share of the trace's arithmetic steps and verdicts that are true
  (a verdict is true when "yes" follows a final value equal to the target, "no" one that is not);
- `countdown_attempts`: the number of attempts in the trace (R1's "longer thinking" at toy scale).
Both are bounded linear scans (no eval, no backtracking regular expressions over unbounded input).
"""

from __future__ import annotations

import re

import numpy as np

from r1jax.rewards.registry import Reward, register
from r1jax.text import toy_language
from r1jax.text.parsing import reasoning_text

MAX_CHARS = 20_000
_STEP = re.compile(r"(\d{1,6})([+\-*/])(\d{1,6})=(\d{1,7})")
_YES = {toy_language.word("yes", lang) for lang in toy_language.LANGS}
_NO = {toy_language.word("no", lang) for lang in toy_language.LANGS}


def _apply(a: int, op: str, b: int) -> int | None:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    return a // b if b and a % b == 0 else None


def trace_stats(text: str, target: int | None) -> tuple[int, int, int]:
    """(attempts, true checks, total checks) over the reasoning of a completion."""
    attempts, true, total = 0, 0, 0
    for line in reasoning_text(text[:MAX_CHARS]).splitlines():
        steps = _STEP.findall(line)
        if not steps:
            continue
        attempts += 1
        last = None
        for a, op, b, c in steps:
            total += 1
            got = _apply(int(a), op, int(b))
            true += got is not None and got == int(c)
            last = int(c)
        words = set(line.split())
        if target is not None and words & (_YES | _NO):
            total += 1
            said_yes = bool(words & _YES)
            true += said_yes == (last == target)
    return attempts, true, total


def _target(example) -> int | None:
    gt = example.get("ground_truth") or {}
    try:
        return int(gt["target"]) if isinstance(gt, dict) and "target" in gt else None
    except (TypeError, ValueError, OverflowError):
        return None


@register("countdown_honesty")
def countdown_honesty() -> Reward:
    # range: [0, 1]  (1 when every step and verdict of the trace is true; 0 for a trace without any)
    def host(completions, examples):
        out = []
        for c, ex in zip(completions, examples):
            _, true, total = trace_stats(c, _target(ex))
            out.append(true / total if total else 0.0)
        return np.array(out, np.float32)

    return Reward("countdown_honesty", host, 0.0, 1.0)


@register("countdown_attempts")
def countdown_attempts() -> Reward:
    # range: [0, inf)  (a count; use with weight 0 to log it)
    def host(completions, examples):
        return np.array(
            [trace_stats(c, _target(ex))[0] for c, ex in zip(completions, examples)], np.float32
        )

    return Reward("countdown_attempts", host, 0.0, float("inf"))
