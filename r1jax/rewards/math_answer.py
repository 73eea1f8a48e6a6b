"""Math answers (MATH, AIME, GSM8K imports): normalise, then decide equivalence.

Order of checks, cheapest first: (1) equal normalised strings, (2) both plain numbers -> exact
rational comparison, (3) sympy in an isolated worker under a hard time limit (sympy_worker.py).
Model text reaches sympy only after `to_sympy_syntax` has rewritten it into a tiny language
(numbers, names, + - * / **, parentheses, commas; every name a single word that is a symbol or a
whitelisted function) and checked it, so the worker's parse_expr can only build sympy objects.

A gold answer that cannot be normalised or parsed is not a wrong answer: the reward is NaN for it
(the advantage code gives NaN rewards zero advantage), STATS["gold_unparseable"] counts it and it
is logged once.
"""

from __future__ import annotations

import collections
import logging
import re
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from r1jax.rewards import sympy_worker
from r1jax.rewards.latex_to_sympy import to_sympy_syntax
from r1jax.rewards.numeric import gold_answer, parse_number
from r1jax.rewards.registry import Reward, register
from r1jax.text.parsing import extract_answer, last_boxed

MAX_CHARS = 1000  # longer answers are not normalised (a final answer is short)
STATS: collections.Counter = collections.Counter()
_LOG = logging.getLogger(__name__)
_LOGGED: set[str] = set()
_CACHE: dict[tuple, str] = {}

_SPACING = ("\\$", "\\!", "\\,", "\\;", "\\:", "\\quad", "\\qquad", "\\displaystyle", "~", "$")
_DELIMS = ("\\(", "\\)", "\\[", "\\]")
_TEXT = r"\\(?:text|textbf|textit|textrm|mbox|mathrm|mathbf|operatorname)\s*"
_TRAILING_TEXT = re.compile(_TEXT + r"\{[^{}]*\}\s*$")
_TEXT_GROUP = re.compile(_TEXT + r"\{([^{}]*)\}")
_UNITS = (
    r"units?|cm|centimeters?|mm|millimeters?|meters?|km|kilometers?|inch(?:es)?|feet|foot|ft|"
    r"yards?|miles?|mph|kg|kilograms?|grams?|pounds?|lbs?|ounces?|oz|liters?|ml|hours?|hrs?|"
    r"minutes?|mins?|seconds?|secs?|days?|weeks?|months?|years?|degrees?|dollars?|cents?|"
    r"percent|points?|people|students?"
)
_UNIT_WORDS = re.compile(
    r"(?<=[\d}])\s*(?:(?:square|sq\.?|cubic)\s*)?(?:" + _UNITS + r")(?:\^\{?[23]\}?)?\.?\s*$"
)
_LEAD_VAR = re.compile(r"^\s*\\?[a-zA-Z]\s*=\s*(?=\S)")
_THOUSANDS = re.compile(r"(?<![\d.])(\d{1,3}(?:,\d{3})+)(?![\d])(?!,\d)")
_CMD_SPACE = re.compile(r"(\\[a-zA-Z]+)\s+(?=[a-zA-Z0-9])")


def _match_brace(s: str, i: int) -> int:
    """Index of the '}' closing the '{' at s[i], or -1."""
    depth = 0
    for j in range(i, len(s)):
        if s[j] == "{":
            depth += 1
        elif s[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return -1


def _brace_args(s: str, command: str) -> str:
    """`\\frac12` -> `\\frac{1}{2}`, `\\sqrt2` -> `\\sqrt{2}`: single-token arguments get braces."""
    n_args = 2 if command == "\\frac" else 1
    out, i = [], 0
    while True:
        j = s.find(command, i)
        if j < 0:
            out.append(s[i:])
            return "".join(out)
        k = j + len(command)
        out.append(s[i:k])
        if k < len(s) and s[k] == " ":
            k += 1  # "\frac 12"
        if k < len(s) and s[k].isalpha():  # a longer command such as \fracx: leave it
            i = k
            continue
        for _ in range(n_args):
            if k < len(s) and s[k] == "{":
                end = _match_brace(s, k)
                if end < 0:
                    break
                out.append(s[k : end + 1])
                k = end + 1
            elif k < len(s) and s[k].isascii() and s[k].isalnum():
                out.append("{" + s[k] + "}")
                k += 1
            else:
                break
        i = k


def normalize(text: str | None) -> str | None:
    """A canonical string for an answer, or None if it is missing or too long.

    Drops `\\boxed`, `$`, spacing commands, `\\left`/`\\right`, `^\\circ`, percent signs, trailing
    units (`\\text{cm}`, "5 cm"), a leading "x =", thousands separators, all whitespace, trailing
    ".0" and a final period; `\\dfrac`/`\\tfrac` -> `\\frac`, `\\frac12` -> `\\frac{1}{2}`,
    ".5" -> "0.5". `\\text{(A)}` keeps its content.
    """
    if not isinstance(text, str) or len(text) > MAX_CHARS:
        return None
    s = text.replace("\x00", "").strip()
    boxed = last_boxed(s)
    if boxed is not None:
        s = boxed
    for token in _SPACING + _DELIMS:
        s = s.replace(token, " ")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = re.sub(r"\\(?:left|right)(?![a-zA-Z])", "", s)
    s = re.sub(r"\^\s*\{?\s*\\circ\s*\}?", "", s).replace("\\circ", "").replace("°", "")
    s = s.replace("\\%", "").replace("%", "").replace("{,}", ",")
    while (m := _TRAILING_TEXT.search(s)) and re.search(r"[\d}]", s[: m.start()]):
        s = s[: m.start()].rstrip()
    s = _TEXT_GROUP.sub(r"\1", s)
    s = _UNIT_WORDS.sub("", s)
    if s.count("=") == 1:
        s = _LEAD_VAR.sub("", s)
    s = _THOUSANDS.sub(lambda m: m.group(1).replace(",", ""), s)
    s = _CMD_SPACE.sub("\\1\x00", s)  # a space ending a command survives: "\pi r", "\sin x"
    s = re.sub(r"\s+", "", s).replace("\x00", " ")
    s = _brace_args(_brace_args(s, "\\frac"), "\\sqrt")
    s = re.sub(r"(\d)\.0+(?![\d])", r"\1", s)
    s = re.sub(r"(?<![\d])\.(\d)", r"0.\1", s)
    return s.rstrip(".")


def _log_bad_gold(gold: str) -> None:
    STATS["gold_unparseable"] += 1
    if len(_LOGGED) < 1000 and gold not in _LOGGED:
        _LOGGED.add(gold)
        _LOG.warning("math_accuracy: gold answer %r is unparseable; scored NaN", gold[:200])


def _plan(pred: str | None, gold: str | None) -> str | tuple:
    """Decides without sympy where possible: a status, or the request key for the worker."""
    g = normalize(gold)
    if not g:
        return "bad_gold"
    p = normalize(pred) if pred is not None else None
    if p is not None and p == g:
        return "equal"
    g_num = parse_number(g)
    g_parts = [_exact(g_num)] if g_num is not None else to_sympy_syntax(g)
    if g_parts is None:
        return "bad_gold"
    if not p:
        return "different"
    p_num = parse_number(p)
    if g_num is not None and p_num is not None:
        return "equal" if p_num == g_num else "different"
    p_parts = [_exact(p_num)] if p_num is not None else to_sympy_syntax(p)
    if p_parts is None:
        return "different"
    return (tuple(p_parts), tuple(g_parts), len(g_parts) > 1)


def _exact(x: Fraction) -> str:
    """A parsed number as exact sympy syntax ("1e5", "50%" and "1,000" are not sympy syntax)."""
    return f"({x.numerator})/({x.denominator})"


def equivalence(
    preds: Sequence[str | None],
    golds: Sequence[str | None],
    timeout_s: float = 2.0,
    workers: int = 2,
) -> list[str]:
    """Status per pair: "equal", "different", "bad_gold", or "timeout" (sympy overran).

    Pairs that need sympy are deduplicated, cached, and checked in parallel in the worker pool.
    """
    plans = [_plan(p, g) for p, g in zip(preds, golds, strict=True)]
    todo = sorted({k for k in plans if isinstance(k, tuple) and k not in _CACHE})
    if todo:
        requests = [{"pred": list(k[0]), "gold": list(k[1]), "unordered": k[2]} for k in todo]
        STATS["sympy_checks"] += len(todo)
        statuses = sympy_worker.pool(workers).run(requests, timeout_s)
        if len(_CACHE) > 100_000:
            _CACHE.clear()
        for key, status in zip(todo, statuses):
            STATS[f"sympy_{status}"] += 1
            _CACHE[key] = {"bad_pred": "different", "error": "different"}.get(status, status)
    out = [_CACHE[k] if isinstance(k, tuple) else k for k in plans]
    for gold, status in zip(golds, out):
        if status == "bad_gold":
            _log_bad_gold(str(gold))
    return out


def math_equal(pred: str | None, gold: str, timeout_s: float = 2.0) -> bool | None:
    """True/False for an answer against a gold answer; None when the gold is unparseable."""
    status = equivalence([pred], [gold], timeout_s)[0]
    return None if status == "bad_gold" else status == "equal"


@register("math_accuracy")
def math_accuracy(timeout_s: float = 2.0, workers: int = 2) -> Reward:
    """1 if the extracted answer is equivalent to the gold answer, 0 if not, NaN for a bad gold.

    range: [0, 1]. Answer: last `<answer>` block (its `\\boxed{}` if it has one), else the last
    `\\boxed{}`. Gold: ground_truth["answer"], else example["answer"]. A sympy check that
    overruns `timeout_s` (seconds, wall clock) scores 0.
    """

    def fn(completions: Sequence[str], examples: Sequence[Mapping[str, Any]]) -> np.ndarray:
        preds = [extract_answer(c) for c in completions]
        golds = [gold_answer(ex) for ex in examples]
        statuses = equivalence(preds, golds, timeout_s, workers)
        values = {"equal": 1.0, "bad_gold": np.nan}
        return np.array([values.get(s, 0.0) for s in statuses], np.float32)

    return Reward("math_accuracy", fn, 0.0, 1.0)
