"""Math answers (MATH, AIME, GSM8K imports): equivalence decided by Math-Verify, in a worker.

The answer is the project's extraction (text/parsing.py: the last `<answer>` block, its `\\boxed{}`
if it has one, else the last `\\boxed{}`). Order of checks, cheapest first:
(1) both sides are plain numbers (numeric.parse_number: integers, decimals, fractions, thousands
    separators, scientific notation, a trailing %) -> exact rational comparison in this process;
(2) a gold answer of the form h:mm (a time) -> the answer must be the same time, compared as text;
(3) everything else goes to Hugging Face's Math-Verify in an isolated worker process under a hard
    time limit (sympy_worker.py), with a plain-number side rewritten as its exact `\\frac{p}{q}`.
What (1)-(2) and the rewrite add, each because Math-Verify lacks it: exactness (Math-Verify rounds
decimals to 6 places, so 0.333333 == 1/3 there), scientific notation (it reads the `e` of `1e5`
as Euler's number), and times (it reads `10:05` as the ratio 10/5 = 2). Model text never reaches
sympy or the library in the trainer process.

A gold answer that Math-Verify cannot read is not a wrong answer: the reward is NaN for it (the
advantage code gives NaN rewards zero advantage), STATS["gold_unparseable"] counts it and it is
logged once. `normalize` is not used for verification: it is the cheap canonical string that
majority voting (eval/metrics.py, cons@k) groups answers by.
"""

from __future__ import annotations

import collections
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from r1jax.rewards import sympy_worker
from r1jax.rewards.numeric import gold_answer, parse_number
from r1jax.rewards.registry import Reward, register
from r1jax.text.parsing import extract_answer, last_boxed

MAX_CHARS = 1000  # longer answers are not normalised (a final answer is short)
STATS: collections.Counter = collections.Counter()
_LOG = logging.getLogger(__name__)
_LOGGED: set[str] = set()
_CACHE: dict[tuple, str] = {}
_TIME = re.compile(r"(\d{1,2}):([0-5]\d)(:[0-5]\d)?\s*((?:[aApP]\.?\s?[mM]\.?)?)")

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


def _balanced(text: str) -> bool:
    """True when the braces of `text` pair up (`\\{` and `\\}` are literal braces, not groups).

    The worker wraps an answer in `\\boxed{...}`; an answer such as `1} or \\boxed{2` must not
    close that box early and smuggle in a second answer.
    """
    depth, i = 0, 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth < 0:
            return False
        i += 1
    return depth == 0


def _answer_text(text: str | None) -> str | None:
    """The answer as sent on: stripped, a plain number as its exact fraction; None if unusable."""
    if not isinstance(text, str) or len(text) > MAX_CHARS:
        return None
    text = text.replace("\x00", "").strip()
    if not text or not _balanced(text):
        return None
    num = parse_number(text)
    if num is None:
        return text
    sign = "-" if num < 0 else ""
    num = abs(num)
    return (
        f"{sign}{num.numerator}"
        if num.denominator == 1
        else f"{sign}\\frac{{{num.numerator}}}{{{num.denominator}}}"
    )


def _time(text: str) -> str | None:
    """A time "h:mm" (optionally ":ss", "am"/"pm") in a canonical spelling, else None."""
    m = _TIME.fullmatch(text.replace("$", "").strip())
    if not m:
        return None
    suffix = (m.group(4) or "").replace(".", "").lower()
    return f"{int(m.group(1))}:{m.group(2)}{m.group(3) or ''}{suffix}"


def plan(pred: str | None, gold: str | None) -> str | tuple[str | None, str]:
    """Decides without the worker where possible: a status, or the (pred, gold) worker request."""
    if isinstance(gold, str) and len(gold) <= MAX_CHARS:
        gold = last_boxed(gold) or gold  # a gold written as a solution ending in \\boxed{}
    g = _answer_text(gold)
    if g is None:
        return "bad_gold"
    p = _answer_text(pred)
    g_num, p_num = parse_number(gold), parse_number(pred) if p is not None else None
    if g_num is not None:
        if p_num is not None:
            return "equal" if p_num == g_num else "different"
        if p is None:
            return "different"
    g_time = _time(g)
    if g_time is not None:
        return "equal" if p is not None and _time(p) == g_time else "different"
    return (p, g)


def equivalence(
    preds: Sequence[str | None],
    golds: Sequence[str | None],
    timeout_s: float = 2.0,
    workers: int = 2,
) -> list[str]:
    """Status per pair: "equal", "different", "bad_gold", or "timeout" (the worker overran).

    Pairs that need the worker are deduplicated, cached, and checked in parallel in the pool.
    """
    plans = [plan(p, g) for p, g in zip(preds, golds, strict=True)]
    todo = sorted({k for k in plans if isinstance(k, tuple) and k not in _CACHE}, key=str)
    if todo:
        requests = [{"pred": k[0], "gold": k[1]} for k in todo]
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
