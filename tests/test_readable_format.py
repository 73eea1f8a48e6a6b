"""The readable pattern (text/parsing.py), its reward, and the cold-start rewrite and generators.

Every rule of READABLE_RULES is broken once by a hand-written completion and named as the violation;
R1-Zero-style traces with mixed languages and repeated attempts are rewritten into completions that
follow every rule and keep their (verified) answer.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from r1jax import rewards
from r1jax.data import arithmetic, cold_start, countdown, general_task
from r1jax.rewards import countdown as countdown_rules
from r1jax.text import parsing

GOOD = " <think>\n3*4=12,12+5=17 vs 18 no\n4*5=20,20-2=18 vs 18 yes\n</think>\nso 4*5-2 = 18\n<answer>4*5-2</answer>"
CD = {"task": "countdown", "ground_truth": {"numbers": [2, 4, 5], "target": 18}}


@pytest.mark.parametrize(
    "text,rule",
    [
        (GOOD, None),
        ("<think>\n</think>\nso vek la\n<answer>vek la</answer>", None),  # general: no reasoning
        (GOOD.replace("<answer>", "<answer><answer>"), "tags"),
        ("x" + GOOD, "tags"),  # text before <think>
        (GOOD + " more", "tags"),  # text after </answer>
        (GOOD.replace("4*5-2</answer>", "</answer>"), "tags"),  # empty answer
        (GOOD.replace("so 4*5-2 = 18\n", ""), "summary"),  # R1-Zero format: no summary
        (GOOD.replace("so 4*5-2 = 18", "so 4*5-2\n= 18"), "summary"),  # two lines
        (GOOD.replace("so 4*5-2 = 18", "so 18"), "summary_answer"),
        (GOOD.replace("vs 18 no", "vs 18 nu"), "language"),  # zl verdict in an en trace
        (GOOD.replace("so 4*5-2", "tam 4*5-2"), "language"),  # zl summary after en reasoning
        (GOOD.replace("vs 18 yes", "vs 18 no\n3*4=12,12+5=17 vs 18 no"), "repeated"),
    ],
)
def test_each_rule_is_named(text, rule):
    assert parsing.readable_violation(text) == rule
    assert parsing.readable_format_ok(text) == (rule is None)
    reward = rewards.build(["readable_format"])[0]
    assert reward([text], [{}])[0] == float(rule is None)


def test_readable_is_not_the_r1_zero_format():
    """The summary sits where R1-Zero's strict format allows nothing."""
    assert parsing.strict_format_ok(GOOD.replace("so 4*5-2 = 18\n", ""))
    assert not parsing.strict_format_ok(GOOD)


def test_summary_text_and_attempt_key():
    assert parsing.summary_text(GOOD) == "so 4*5-2 = 18"
    assert parsing.summary_text("<think>\n</think>\n<answer>x</answer>") is None
    assert parsing.summary_text(None) is None
    # the same attempt in the other language has the same key; a scratchpad step has none
    assert parsing.attempt_key("3*4=12 vs 18 no") == parsing.attempt_key("3*4=12 vs 18 nu")
    assert parsing.attempt_key("3+4=7 write 7") is None
    # scratchpad steps may repeat (33 + 44)
    ok = " <think>\n3+4=7 write 7\n3+4=7 write 7\n</think>\nso 33 + 44 = 77\n<answer>77</answer>"
    assert parsing.readable_violation(ok) is None


def test_rewrite_makes_r1_zero_traces_readable_and_keeps_the_answer():
    zero = (
        " <think>\n3*4=12,12+5=17 vs 18 no\n3*4=12,12+5=17 vs 18 nu\n"
        "4*5=20,20-2=18 vs 18 sa\n5*4=20 vs 18 no\ntam\n</think>\n<answer>4*5-2</answer>"
    )
    new = cold_start.rewrite(zero, CD)
    assert new == GOOD
    score = rewards.build(["countdown_accuracy"])[0]
    assert score([zero, new], [CD, CD]).tolist() == [1.0, 1.0]
    # designed.check="prefix" rewrites the checks too: 17 against 18 shares the digit 1
    prefix = cold_start.rewrite(zero, CD, check="prefix")
    assert prefix == GOOD.replace("17 vs 18 no", "17 vs 1 no")
    assert parsing.readable_format_ok(prefix)


def test_designed_examples_are_readable_and_correct():
    rng = np.random.default_rng(0)
    score = rewards.build(["countdown_accuracy"])[0]
    exs = list(countdown.examples("train", 30))
    cfg = cold_start.DesignConfig(give_up=False)
    texts = [cold_start.designed_countdown(ex, rng, cfg) for ex in exs]
    kept = [(t, ex) for t, ex in zip(texts, exs) if t is not None]
    assert len(kept) >= 25  # most searches hit within 8 attempts
    assert all(parsing.readable_format_ok(t) for t, _ in kept)
    assert score([t for t, _ in kept], [ex for _, ex in kept]).tolist() == [1.0] * len(kept)
    arith = rewards.build(["arithmetic_accuracy"])[0]
    exs = list(arithmetic.examples("train", 20))
    texts = [cold_start.designed_arithmetic(ex) for ex in exs]
    assert all(parsing.readable_format_ok(t) for t in texts)
    assert arith(texts, exs).tolist() == [1.0] * 20


def test_designed_search_without_a_hit_gives_up_readably():
    """A search with no hit in max_attempts ends `give up`, then a summary of the last attempt
    with its true value: readable, so a model taught on it stops instead of running out of tokens.
    The same draws with give_up=False skip the problem; searches that hit are the same text."""
    exs = list(countdown.examples("train", 200))
    on = cold_start.DesignConfig(max_attempts=2)
    off = cold_start.DesignConfig(max_attempts=2, give_up=False)
    pairs = [
        (
            cold_start.designed_countdown(ex, np.random.default_rng(i), on),
            cold_start.designed_countdown(ex, np.random.default_rng(i), off),
        )
        for i, ex in enumerate(exs)
    ]
    gave_up = [(a, ex) for (a, b), ex in zip(pairs, exs) if b is None]
    assert all(a == b for a, b in pairs if b is not None) and 10 <= len(gave_up) < 200
    for text, ex in gave_up:
        assert parsing.readable_format_ok(text)
        lines = parsing.reasoning_text(text).strip().splitlines()
        assert len(lines) == 3 and lines[-1] == "give up" and " yes" not in text
        target = ex["ground_truth"]["target"]
        values = [int(ln.split(" vs ")[0].split("=")[-1]) for ln in lines[:-1]]
        answer = parsing.extract_answer(text)
        assert target not in values
        assert parsing.summary_text(text) == f"so {answer} = {values[-1]}"
        parsed = countdown_rules.parse_countdown(answer, ex["ground_truth"]["numbers"])
        assert parsed.value == values[-1]


def test_general_reference_responses_are_readable_and_exact():
    exs = general_task.generate_splits(0, 40, 5)["train"]
    texts = [cold_start.general_completion(ex) for ex in exs]
    match = rewards.build(["general_match"])[0]
    assert match(texts, exs).tolist() == [1.0] * 40
    assert all(parsing.readable_format_ok(t) for t in texts)
    assert all(parsing.summary_text(t) == "so " + ex["answer"] for t, ex in zip(texts, exs))


def _designed_searches(cfg: cold_start.DesignConfig, n: int) -> tuple[list, list, list]:
    """n train problems' designed searches (problem i drawn with seed i): every one readable and
    every hit's answer correct; returns (examples, texts, [(text, example) of the hits])."""
    score = rewards.build(["countdown_accuracy"])[0]
    exs = list(countdown.examples("train", n))
    texts = [
        cold_start.designed_countdown(ex, np.random.default_rng(i), cfg) for i, ex in enumerate(exs)
    ]
    assert all(parsing.readable_format_ok(t) for t in texts)
    hits = [(t, ex) for t, ex in zip(texts, exs) if not cold_start.gives_up(t)]
    assert score([t for t, _ in hits], [ex for _, ex in hits]).tolist() == [1.0] * len(hits)
    return exs, texts, hits


def test_tree_order_groups_each_first_step_in_a_fixed_operation_order():
    """tree_order visits every attempt once; the attempts of one first step are adjacent, in
    `attempts`' + * - / order, so a designed "tree" search's next line follows from the line above
    it; its searches are readable and the hits correct."""
    for numbers, target in [([2, 8, 9], 15), ([3, 3, 6], 12), ([4, 7, 9], 99)]:
        pool = countdown.attempts(numbers)
        order = countdown.tree_order(numbers, target, np.random.default_rng(1), 0.7)
        assert sorted(map(repr, order)) == sorted(map(repr, pool))
        firsts = [a[0][0] for a in order]
        runs = [f for i, f in enumerate(firsts) if i == 0 or f != firsts[i - 1]]
        assert len(runs) == len(set(runs))  # each first step one contiguous block
        for f in runs:
            block = [a for a in order if a[0][0] == f]
            assert block == [a for a in pool if a[0][0] == f]
            assert ["+*-/".index(a[0][1][1]) for a in block] == sorted(
                "+*-/".index(a[0][1][1]) for a in block
            )
    cfg = cold_start.DesignConfig(order="tree")
    exs, _, hits = _designed_searches(cfg, 30)
    assert len(hits) >= 15
    with pytest.raises(ValueError, match="designed.order"):
        cold_start.designed_countdown(
            exs[0], np.random.default_rng(0), dataclasses.replace(cfg, order="bfs")
        )


def test_grouped_order_writes_each_first_step_once_with_every_completion_on_its_line():
    """order="grouped": one line per first step (its completions in tree order, the line cut at the
    value that hits), every step's arithmetic true, at most max_attempts lines, a hit's answer
    correct, and the lines are the tree search's attempts, none repeated."""
    cfg = cold_start.DesignConfig(intuition=0.45, max_attempts=4, order="grouped")
    exs, texts, hits = _designed_searches(cfg, 40)
    assert 20 <= len(hits) < len(exs)  # both kinds of search occur
    ops = {"+": int.__add__, "-": int.__sub__, "*": int.__mul__, "/": int.__floordiv__}
    for text, ex in zip(texts, exs):
        target = ex["ground_truth"]["target"]
        lines = [ln for ln in parsing.reasoning_text(text).splitlines() if "vs" in ln]
        assert 1 <= len(lines) <= 4
        firsts = [ln.split(",")[0] for ln in lines]
        assert len(set(firsts)) == len(firsts)  # a first step is never written twice
        for j, ln in enumerate(lines):
            steps, verdict = ln.split(" vs ")
            values = []
            for step in steps.split(","):
                lhs, res = step.split("=")
                a, op, b = next((lhs.split(o)[0], o, lhs.split(o)[1]) for o in ops if o in lhs)
                assert ops[op](int(a), int(b)) == int(res) and int(a) >= int(b)
                values.append(int(res))
            completions = values[1:]
            assert len(completions) >= 1 and target not in completions[:-1]
            assert verdict == f"{target} {'yes' if completions[-1] == target else 'no'}"
            assert (verdict.endswith("yes")) == (j == len(lines) - 1 and text in dict(hits))
    # the example of the docstring: 6*5=30 then 30 with 8 by + * - (30/8 is not an integer)
    line = cold_start._render_line(
        [
            a
            for a in countdown.tree_order([5, 6, 8], 7, np.random.default_rng(0), 0.45)
            if a[0][0] == (6, "*", 5, 30)
        ],
        7,
        "no",
    )
    assert line == "6*5=30,30+8=38,30*8=240,30-8=22 vs 7 no"
