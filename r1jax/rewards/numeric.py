"""Exact numeric answers: integers, decimals and fractions compared as rationals.

"0.5", "1/2", ".50" and "$1/2$" are the same number; "1,000" and "1000" too; "5.0" equals "5".
Comparison is exact (fractions.Fraction), never via float, so 0.1 + 0.2 style rounding cannot
make a wrong answer right. Only ASCII digits are accepted: Python's int() also reads Arabic-Indic
and other Unicode digits, which a policy could use to smuggle in look-alike answers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from r1jax.rewards.registry import Reward, register
from r1jax.text.parsing import extract_answer

MAX_CHARS = 200  # longer "numbers" are rejected before any parsing
MAX_EXPONENT = 100  # |e| in scientific notation, so 1e999999999 cannot build a huge integer

_SIGN = r"[+-]?"
_UINT = r"(?:\d{1,3}(?:,\d{3})+|\d+)"  # plain digits, or correct thousands groups
_DEC = rf"(?:{_UINT}(?:\.\d*)?|\.\d+)"
_NUMBER = re.compile(rf"({_SIGN})({_DEC})(?:[eE]([+-]?\d{{1,4}}))?", re.ASCII)
_FRACTION = re.compile(rf"({_SIGN})({_UINT})\s*/\s*({_UINT})", re.ASCII)
_LATEX_FRAC = re.compile(r"(-?)\\[dt]?frac\{\s*(-?\d+)\s*\}\{\s*(-?\d+)\s*\}", re.ASCII)
_LAST_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?", re.ASCII)


def _clean(text: str) -> str:
    text = text.strip()
    for wrapper in ("$", "\\(", "\\)"):
        text = text.replace(wrapper, "")
    text = text.replace("\\!", "").replace("{,}", ",").replace("\\,", "")
    text = text.strip().rstrip(".").strip()
    if text.endswith("\\%"):
        text = text[:-2]
    elif text.endswith("%"):
        text = text[:-1]
    return text.strip()


def parse_number(text: str) -> Fraction | None:
    """The exact value of a numeric answer, or None if `text` is not one number.

    Accepts an optional sign, thousands separators in correct groups of three, decimals (".5",
    "5."), scientific notation with |exponent| <= 100, "a/b", LaTeX "\\frac{a}{b}", surrounding
    "$", a trailing period and a trailing percent sign (dropped, as in MATH: "50\\%" == "50").
    """
    if not isinstance(text, str) or len(text) > MAX_CHARS:
        return None
    text = _clean(text)
    if not text:
        return None
    try:
        m = _LATEX_FRAC.fullmatch(text)
        if m:
            den = int(m.group(3))
            if den == 0:
                return None
            value = Fraction(int(m.group(2)), den)
            return -value if m.group(1) else value
        m = _FRACTION.fullmatch(text)
        if m:
            den = int(m.group(3).replace(",", ""))
            if den == 0:
                return None
            value = Fraction(int(m.group(2).replace(",", "")), den)
            return -value if m.group(1) == "-" else value
        m = _NUMBER.fullmatch(text)
        if m:
            exp = int(m.group(3)) if m.group(3) else 0
            if abs(exp) > MAX_EXPONENT:
                return None
            mantissa = m.group(2).replace(",", "")
            if mantissa.endswith("."):
                mantissa = mantissa[:-1]
            value = Fraction(mantissa) * Fraction(10) ** exp
            return -value if m.group(1) == "-" else value
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    return None


def numeric_equal(pred: str | None, gold: str | None) -> bool:
    """True when both parse as numbers and are exactly equal."""
    if pred is None or gold is None:
        return False
    a, b = parse_number(pred), parse_number(gold)
    return a is not None and b is not None and a == b


def last_number(text: str) -> str | None:
    """The last number-looking substring of `text` (a fallback for completions without tags)."""
    if not isinstance(text, str):
        return None
    matches = _LAST_NUMBER.findall(text[-2000:])
    return matches[-1] if matches else None


def gold_answer(example: Mapping[str, Any]) -> str | None:
    """ground_truth["answer"] if present, else example["answer"], as a string (None if neither, or
    if it has no string form: str() of an int over 4300 digits raises in Python >= 3.11)."""
    gt = example.get("ground_truth")
    value = gt.get("answer") if isinstance(gt, Mapping) else None
    if value is None:
        value = example.get("answer")
    if value is None:
        return None
    try:
        return str(value)
    except ValueError:
        return None


@register("numeric_accuracy")
def numeric_accuracy(fallback_last_number: bool = False) -> Reward:
    """1 if the extracted answer equals the gold number exactly, else 0; NaN for a bad gold.

    range: [0, 1]. The answer is the last `<answer>` block, else the last `\\boxed{}`; with
    `fallback_last_number`, the last number of the completion when it has neither.
    """

    def fn(completions: Sequence[str], examples: Sequence[Mapping[str, Any]]) -> np.ndarray:
        out = np.zeros(len(completions), np.float32)
        for i, (text, ex) in enumerate(zip(completions, examples, strict=True)):
            gold = parse_number(gold_answer(ex) or "")
            if gold is None:
                out[i] = np.nan
                continue
            pred = extract_answer(text)
            if pred is None and fallback_last_number:
                pred = last_number(text)
            value = parse_number(pred) if pred is not None else None
            out[i] = float(value is not None and value == gold)
        return out

    return Reward("numeric_accuracy", fn, 0.0, 1.0)
