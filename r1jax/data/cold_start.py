"""Cold-start data in the readable pattern: R1-Zero traces rewritten, and hand-designed examples.

R1's cold start collects long chains of thought, "partly R1-Zero outputs in a readable format,
post-processed by human annotators", and defines a readable pattern: the reasoning, then a summary.
At toy scale (the pattern itself: `text.parsing.READABLE_RULES`):
- `rewrite` post-processes a correct R1-Zero completion: the reasoning translated into one language
  (English), repeated attempts dropped (the first of each kept), the search cut after the attempt
  that hits, the trace's own closing "so ..." line moved into a summary that restates the solution
  and the answer, e.g. `so 7*3+2 = 23`, then the answer.
- `designed_countdown` / `designed_arithmetic` generate examples in the same pattern with the
  corpus's pieces (data/corpus.py, whose own settings are untouched): an honest Countdown search
  that tries close values first and, when nothing hits within `max_attempts`, says `give up` and
  summarises its last attempt with that attempt's value; the digit-by-digit arithmetic
  scratchpad.
- `general_completion` is the reference response of a general (non-reasoning) task: no reasoning
  (R1 gives simple queries no chain of thought), the summary and the answer.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from r1jax.data import arithmetic, corpus, countdown
from r1jax.text import toy_language
from r1jax.text.parsing import attempt_key, extract_answer, reasoning_text

_SO = {toy_language.word("so", lang) for lang in toy_language.LANGS}
_YES = {toy_language.word("yes", lang) for lang in toy_language.LANGS}
_NO = {toy_language.word("no", lang) for lang in toy_language.LANGS}


def summary_line(example: Mapping[str, Any], answer: str, lang: str = "en") -> str:
    """One line that restates the solution and the answer (contains `answer` verbatim)."""
    gt = example.get("ground_truth") or {}
    so = toy_language.word("so", lang)
    if example.get("task") == "countdown" and "target" in gt:
        return f"{so} {answer} = {gt['target']}"
    if example.get("task") == "arithmetic" and {"a", "op", "b"} <= set(gt):
        return f"{so} {gt['a']} {gt['op']} {gt['b']} = {answer}"
    return f"{so} {answer}"


_VERDICT_LINE = re.compile(r"=(\d{1,7}) vs (?:(\d{1,7}) )?(\S+)$")

# DesignConfig.check: how an attempt line compares its value with the target before its verdict
CHECKS = ("whole", "prefix")


def check_text(value: int, target: int, verdict: str, check: str = "whole") -> str:
    """The end of an attempt line: `vs 48 no` (whole: the target, then the verdict), or (prefix)
    the target's digits only as far as they equal the value's, then the verdict: `=43 vs 4 no`,
    `=88 vs no`, `=48 vs 48 yes`. Under `prefix` each next token compares one digit of the value
    with the target's, one at a time, where `whole` asks the verdict to compare every digit at
    once (the toy models compare the last: README, "False yes")."""
    if check not in CHECKS:
        raise ValueError(f"designed.check={check!r}: use one of {list(CHECKS)}.")
    t, v = str(target), str(value)
    if check == "whole":
        return f"vs {t} {verdict}"
    k = 0
    while k < min(len(t), len(v)) and t[k] == v[k]:
        k += 1
    return f"vs {t[:k]} {verdict}" if k else f"vs {verdict}"


def checked(line: str) -> tuple[str, str, str] | None:
    """(value, target as written, verdict) of a Countdown attempt line (`11*8=88 vs 48 no` ->
    ("88", "48", "no"); a prefix check `=88 vs no` -> ("88", "", "no")), or None for any other
    line; the verdict is the toy word as written."""
    m = _VERDICT_LINE.search(line.strip())
    return (m[1], m[2] or "", m[3]) if m else None


def near_misses(completion: str, target: int | None = None) -> int:
    """How many attempt lines say `no` to a final value that ends in the target's last digit but
    is not the target (`11*8=88 vs 48 no`): the check the toy models fail (README, "False yes").
    The target is the one each line writes unless given (a prefix check writes part of it)."""
    n = 0
    for c in filter(None, map(checked, reasoning_text(completion).splitlines())):
        t = c[1] if target is None else str(target)
        if t and c[2] in _NO and c[0] != t and c[0][-1] == t[-1]:
            n += 1
    return n


def give_up_line(lang: str = "en") -> str:
    """The line that ends a search without a hit ("give up" in English)."""
    return " ".join(toy_language.word(w, lang) for w in ("give", "up"))


def gives_up(completion: str, lang: str = "en") -> bool:
    """Whether the completion's reasoning ends a search without a hit (a `give_up_line`)."""
    return give_up_line(lang) in (" ".join(ln.split()) for ln in completion.splitlines())


def render(lines: list[str], summary: str, answer: str) -> str:
    """The readable completion (leading space, as the corpus's completions after "Assistant:")."""
    body = "".join(f"{ln}\n" for ln in lines)
    return f" <think>\n{body}</think>\n{summary}\n<answer>{answer}</answer>"


def rewrite(
    completion: str, example: Mapping[str, Any], lang: str = "en", check: str = "whole"
) -> str | None:
    """A correct R1-Zero completion in the readable pattern, or None when it has no answer; its
    attempt lines end in the given check (`check_text`) with their verdicts as written."""
    answer = extract_answer(completion)
    if not answer or "\n" in answer:
        return None
    other = [x for x in toy_language.LANGS if x != lang]
    lines, seen = [], set()
    for raw in reasoning_text(completion).splitlines():
        line = " ".join(raw.split())
        for src in other:
            line = toy_language.translate(line, src, lang)
        if not line or line.split()[0] in _SO:  # the trace's own conclusion becomes the summary
            continue
        if line == give_up_line(lang):
            continue
        c = checked(line)
        if c and c[1] and check != "whole":  # against the problem's target, as a designed line
            target = int((example.get("ground_truth") or {}).get("target", c[1]))
            head = line[: line.rindex(" vs ")]
            line = f"{head} {check_text(int(c[0]), target, c[2], check)}"
        key = attempt_key(line)
        if key is not None:
            if key in seen:
                continue
            seen.add(key)
        lines.append(line)
        if key is not None and _YES.intersection(line.split()):
            break  # the search ends at the attempt that hits
    return render(lines, summary_line(example, answer, lang), answer)


@dataclasses.dataclass(frozen=True)
class DesignConfig:
    """How the hand-designed examples search: closer values first, at most max_attempts."""

    intuition: float = 0.7  # the corpus uses 1.5 (wider search); smaller = closer values first
    max_attempts: int = 8
    # a search with no hit within max_attempts ends "give up" + a summary of the last attempt
    # (True), or the problem is skipped (False: the model then never sees a search end without a
    # hit, and at evaluation keeps trying until the token budget runs out, which is not readable)
    give_up: bool = True
    # "intuition": each attempt drawn closer values first (countdown.search_order); "tree": first
    # steps drawn so, each followed by its completions in a fixed operation order
    # (countdown.tree_order), so that the next line follows from the line above; "grouped": the
    # tree's order with each first step and all its completions on one line (one attempt line per
    # first step, `max_attempts` then counts lines), so a search holds fewer lines to keep apart
    order: str = "intuition"
    # how a line compares its value with the target before the verdict (`check_text`):
    # "whole" (`vs 48 no`, the corpus's) or "prefix" (`vs 4 no`: the digits that match)
    check: str = "whole"

    def __post_init__(self) -> None:
        """Refuses an unknown order or check, or a combination that cannot be written, at
        construction: the data stage builds one in `validate`, before R1-Zero is sampled."""
        if self.order not in SEARCH_ORDERS:
            raise ValueError(f"designed.order={self.order!r}: use one of {sorted(SEARCH_ORDERS)}.")
        if self.check not in CHECKS:
            raise ValueError(f"designed.check={self.check!r}: use one of {list(CHECKS)}.")
        if self.check != "whole" and self.order == "grouped":
            raise ValueError(
                f"designed.check={self.check!r} checks one value a line: use designed.order "
                "other than grouped (whose lines hold several) or designed.check='whole'."
            )


# DesignConfig.order -> how a designed search orders its attempts
SEARCH_ORDERS = {
    "intuition": countdown.search_order,
    "tree": countdown.tree_order,
    "grouped": countdown.tree_order,
}


def _lines(order: list[countdown.Attempt], grouped: bool) -> list[list[countdown.Attempt]]:
    """The attempts of each reasoning line: one each, or (grouped) the run sharing a first step."""
    if not grouped:
        return [[a] for a in order]
    out: list[list[countdown.Attempt]] = []
    for a in order:
        if out and out[-1][0][0][0] == a[0][0]:
            out[-1].append(a)
        else:
            out.append([a])
    return out


def _render_line(
    group: list[countdown.Attempt], target: int, verdict: str, check: str = "whole"
) -> str:
    """`7+5=12,12+3=15 vs 14 no` for one attempt; for a group the first step once, then each
    completion (`7+5=12,12+3=15,12*3=36 vs 14 no`): every value of the line is checked."""
    steps = [countdown.render_attempt(group[0])] + [
        countdown.render_attempt(((a[0][-1],), a[1])) for a in group[1:]
    ]
    return f"{','.join(steps)} {check_text(countdown.value(group[-1]), target, verdict, check)}"


def designed_countdown(
    example: Mapping[str, Any], rng: np.random.Generator, cfg: DesignConfig
) -> str | None:
    """An honest search in the readable pattern: the attempts up to the first hit, then the
    summary; without a hit, `give up` and the last attempt (or None when cfg.give_up is off)."""
    gt = example["ground_truth"]
    target = int(gt["target"])
    order = SEARCH_ORDERS[cfg.order](list(gt["numbers"]), target, rng, cfg.intuition)
    lines = []
    for group in _lines(order, cfg.order == "grouped")[: cfg.max_attempts]:
        hits = [i for i, a in enumerate(group) if countdown.value(a) == target]
        group = group[: hits[0] + 1] if hits else group  # a line stops at the value that hits
        att = group[-1]
        verdict = toy_language.word("yes" if hits else "no", "en")
        lines.append(_render_line(group, target, verdict, cfg.check))
        if hits:
            answer = countdown.strip_outer(att[1])
            return render(lines, summary_line(example, answer), answer)
    if not cfg.give_up:
        return None
    # the last attempt, as the corpus's own give-ups answer: the summary restates the line above
    # it (summarising the closest attempt asks the 0.9M model for an argmin over 8 lines: when the
    # data did that, a third of its give-ups wrote a summary without the answer)
    answer = countdown.strip_outer(att[1])  # att: the last attempt
    so = toy_language.word("so", "en")
    return render(lines + [give_up_line()], f"{so} {answer} = {countdown.value(att)}", answer)


def designed_arithmetic(example: Mapping[str, Any]) -> str:
    """The digit-by-digit scratchpad in the readable pattern (always correct)."""
    gt = example["ground_truth"]
    a, op, b = int(gt["a"]), gt["op"], int(gt["b"])
    ccfg = corpus.CorpusConfig(scratchpad=1.0, switch_language=0.0)
    if op == "*" and b >= 10:
        raise ValueError(f"no scratchpad for {a} * {b} (the corpus multiplies by one digit)")
    text, _ = corpus.arithmetic_trace(a, op, b, np.random.default_rng(0), ccfg)
    assert extract_answer(text) == str(arithmetic.answer(a, op, b))
    return rewrite(text, example)


def general_completion(example: Mapping[str, Any]) -> str:
    """The reference response of a general task: empty reasoning, summary, answer."""
    target = " ".join(str(example["answer"]).split())
    return render([], summary_line(example, target), target)
