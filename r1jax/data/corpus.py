"""The toy base-model corpus: prompts in the R1 template followed by reasoning traces.

What the corpus must teach (see DESIGN.md, "What a quick feasibility probe showed"):
- Countdown traces search honestly: every sum is right and every verdict true; the errors are in the
  choices (which attempt, and giving up too early, with hazard `give_up` after each miss). Each
  attempt ends with "vs <target> yes|no", so the verdict compares two adjacent numbers. The
  context leaves room for more attempts than most traces show, so RL can lengthen the search.
- Arithmetic traces either work digit by digit (reliable) or answer in one shot (usually wrong):
  RL has a better, longer strategy to find.
- A share of traces switch mid-trace from English to the second toy language, as R1-Zero's traces
  mixed languages; the language-consistency reward has something to fix.
- Optionally (`general_weight`, 0 by default), general sentence transformations (translate, reverse,
  uppercase, sort; data/general_task.py) answered directly, so that the base model, like a real
  pretrained model, has seen the general tasks the later stages train (multi-domain SFT,
  preference data, all-scenario RL). Only questions on the train side of `general_task.split_of`
  appear, and never the harm-inviting prompts.
Every document is a pure function of (seed, index), so data is reproducible and resumable.
"""

from __future__ import annotations

import dataclasses
import random

import numpy as np

from r1jax.data import arithmetic, countdown, general_task
from r1jax.text import templates
from r1jax.text import toy_language as tl


@dataclasses.dataclass(frozen=True)
class CorpusConfig:
    """Knobs of the generated corpus; defaults give a base model at roughly 25-40 % pass@1."""

    template: str = "r1_zero"
    # Share of documents with the whole template; the rest keep only its last line
    # ("User: <question> Assistant:"), which is the same local context at a fifth of the tokens.
    full_template_share: float = 0.25
    countdown_weight: float = 0.6
    arithmetic_weight: float = 0.4
    general_weight: float = 0.0  # direct answers to general tasks (see the module docstring)
    general_words: tuple[int, int] = (3, 8)  # as general_task's defaults
    # Countdown
    n_numbers: int = 3
    max_number: int = 9
    max_target: int = 99
    intuition: float = 1.5  # search order bias towards values near the target (0 = uniform)
    give_up: float = 0.3  # probability of giving up after each failed attempt
    max_attempts: int = 8  # the corpus never shows more attempts than this
    # Arithmetic
    ops: tuple[str, ...] = arithmetic.OPS
    digits: tuple[int, int] = (2, 3)
    scratchpad: float = 0.2  # share of arithmetic traces that work digit by digit
    direct_correct: float = 0.2  # share of one-shot answers that happen to be right
    # Language mixing
    switch_language: float = 0.3  # share of traces that switch en -> zl mid-trace
    test_percent: int = 10


def _w(word: str, lang: str) -> str:
    return " ".join(tl.word(w, lang) for w in word.split())


def countdown_trace(
    numbers, target, rng: np.random.Generator, cfg: CorpusConfig
) -> tuple[str, bool]:
    """(completion text, solved) for one Countdown problem."""
    order = countdown.search_order(numbers, target, rng, cfg.intuition)
    switch_at = (
        int(rng.integers(1, cfg.max_attempts + 1)) if rng.random() < cfg.switch_language else -1
    )
    lines, solved, last = [], False, order[0]
    for i, att in enumerate(order[: cfg.max_attempts]):
        lang = "zl" if 0 <= switch_at <= i else "en"
        last = att
        hit = countdown.value(att) == target
        # the trace restates the target before its verdict: the comparison is then between two
        # adjacent numbers, which a small model learns; comparing with a number far back in the
        # prompt it did not (1000 steps: "yes" on 9 of 107 real hits)
        verdict = _w("yes" if hit else "no", lang)
        lines.append(f"{countdown.render_attempt(att)} vs {target} {verdict}")
        if hit:
            solved = True
            break
        if rng.random() < cfg.give_up:
            break
    if not solved:
        lang = "zl" if 0 <= switch_at <= len(lines) else "en"
        lines.append(_w("give up", lang))
    body = "\n".join(lines)
    return f" <think>\n{body}\n</think>\n<answer>{countdown.strip_outer(last[1])}</answer>", solved


def _scratch_line(kind: str, f: dict, lang: str) -> str:
    w = lambda s: _w(s, lang)  # noqa: E731
    if kind == "add":
        plus = f"+{f['c_in']}" if f["c_in"] else ""
        tail = f" {w('carry')} {f['c']}" if f["c"] else ""
        return f"{f['x']}+{f['y']}{plus}={f['s']} {w('write')} {f['d']}{tail}"
    if kind == "sub":
        minus = f"-{f['c_in']}" if f["c_in"] else ""
        if f["borrow"]:
            return f"{f['x']}-{f['y']}{minus} {w('borrow')} 1{f['x']}-{f['y']}{minus}={f['d']} {w('write')} {f['d']}"
        return f"{f['x']}-{f['y']}{minus}={f['d']} {w('write')} {f['d']}"
    if kind == "mul":
        plus = f"+{f['c_in']}" if f["c_in"] else ""
        tail = f" {w('carry')} {f['c']}" if f["c"] else ""
        return f"{f['x']}*{f['y']}{plus}={f['p']} {w('write')} {f['d']}{tail}"
    return f"{w('write')} {f['d']}"


def _near_miss(value: int, rng: np.random.Generator) -> int:
    """A plausible wrong one-shot answer: one digit off by one, or off by ten."""
    s = list(str(value))
    i = int(rng.integers(len(s)))
    d = (int(s[i]) + (1 if rng.random() < 0.5 else -1)) % 10
    if i == 0 and d == 0 and len(s) > 1:
        d = 1 if int(s[0]) != 1 else 2
    s[i] = str(d)
    wrong = int("".join(s))
    return wrong if wrong != value else value + 10


def arithmetic_trace(
    a: int, op: str, b: int, rng: np.random.Generator, cfg: CorpusConfig
) -> tuple[str, bool]:
    """(completion text, correct) for one arithmetic problem."""
    truth = arithmetic.answer(a, op, b)
    if rng.random() < cfg.scratchpad and not (op == "*" and b >= 10):
        steps = arithmetic.scratchpad_steps(a, op, b)
        switch_at = (
            int(rng.integers(0, len(steps) + 1)) if rng.random() < cfg.switch_language else -1
        )
        lines = [
            _scratch_line(kind, f, "zl" if 0 <= switch_at <= i else "en")
            for i, (kind, f) in enumerate(steps)
        ]
        lang = "zl" if 0 <= switch_at <= len(steps) else "en"
        lines.append(f"{_w('so', lang)} {truth}")
        return " <think>\n" + "\n".join(lines) + f"\n</think>\n<answer>{truth}</answer>", True
    guess = truth if rng.random() < cfg.direct_correct else _near_miss(truth, rng)
    lang = "zl" if rng.random() < cfg.switch_language * 0.5 else "en"
    return _direct_answer(str(guess), lang), guess == truth


def _direct_answer(answer: str, lang: str) -> str:
    """A one-line answer: "so <answer>" as the whole reasoning, then the answer tag."""
    return f" <think>\n{_w('so', lang)} {answer}\n</think>\n<answer>{answer}</answer>"


def general_document(rng: np.random.Generator, cfg: CorpusConfig) -> tuple[str, str]:
    """(question, completion) of a general task answered directly, as a short arithmetic one is."""
    kind = general_task.KINDS[int(rng.integers(len(general_task.KINDS)))]
    p = general_task.make_problem(random.Random(int(rng.integers(2**31))), kind, *cfg.general_words)
    return p["question"], _direct_answer(p["target"], "en")


def document(seed: int, index: int, cfg: CorpusConfig) -> tuple[str, str, bool]:
    """(prompt, completion, correct) of corpus document `index`; train-split problems only."""
    rng = np.random.default_rng([seed, index])
    total = cfg.countdown_weight + cfg.arithmetic_weight + cfg.general_weight
    while True:
        draw = rng.random() * total
        if draw >= cfg.countdown_weight + cfg.arithmetic_weight:
            q, completion = general_document(rng, cfg)
            if general_task.split_of(q) != "train":  # the general task's own, fixed split
                continue
            ok = True
        elif draw < cfg.countdown_weight:
            numbers, target, _ = countdown.sample_problem(
                rng, cfg.n_numbers, cfg.max_number, cfg.max_target
            )
            if countdown.split_of(numbers, target, cfg.test_percent) != "train":
                continue
            q = countdown.question(numbers, target)
            completion, ok = countdown_trace(numbers, target, rng, cfg)
        else:
            a, op, b = arithmetic.sample_problem(rng, cfg.ops, cfg.digits)
            if arithmetic.split_of(a, op, b, cfg.test_percent) != "train":
                continue
            q = arithmetic.question(a, op, b)
            completion, ok = arithmetic_trace(a, op, b, rng, cfg)
        if cfg.template == "r1_zero" and rng.random() >= cfg.full_template_share:
            return f"User: {q} Assistant:", completion, ok
        return templates.render(cfg.template, q), completion, ok


def texts(seed: int, start: int, count: int, cfg: CorpusConfig) -> list[str]:
    """`count` whole documents (prompt + completion) starting at `start` (for tokenizer training)."""
    out = []
    for i in range(start, start + count):
        p, c, _ = document(seed, i, cfg)
        out.append(p + c)
    return out
