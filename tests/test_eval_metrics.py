"""Evaluation metrics: pass@k against closed form and brute force, cons@k ties, strict format."""

import itertools
from math import comb

import numpy as np
import pytest

from r1jax.eval import metrics as em
from r1jax.text import parsing


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_pass_at_k_closed_form_and_brute_force(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            closed = 1 - comb(n - c, k) / comb(n, k)
            # brute force: the share of k-subsets of the n samples that contain a correct one
            samples = [True] * c + [False] * (n - c)
            subsets = list(itertools.combinations(samples, k))
            brute = sum(any(s) for s in subsets) / len(subsets)
            assert em.pass_at_k(n, c, k) == pytest.approx(closed, abs=1e-12)
            assert em.pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12)


def test_pass_at_k_large_n_stable_and_checked():
    # C(1000, 100) overflows float64; the product form does not
    want = 1 - np.prod([(1000 - 10 - i) / (1000 - i) for i in range(100)])
    assert em.pass_at_k(1000, 10, 100) == pytest.approx(want, rel=1e-9)
    assert em.pass_at_k(16, 0, 4) == 0.0 and em.pass_at_k(16, 13, 4) == 1.0
    assert em.pass_at_k(4, 1, 1) == pytest.approx(0.25)
    for bad in [(4, 5, 1), (4, 1, 0), (4, 1, 5), (4, -1, 1)]:
        with pytest.raises(ValueError):
            em.pass_at_k(*bad)


def test_pass1_and_mean_pass_at_k():
    correct = [[1, 0, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1]]
    assert em.pass1_over_samples(correct) == pytest.approx((0.5 + 0 + 1) / 3)
    assert em.mean_pass_at_k(correct, 1) == pytest.approx(em.pass1_over_samples(correct))
    want = (1 - comb(2, 2) / comb(4, 2) + 0 + 1) / 3
    assert em.mean_pass_at_k(correct, 2) == pytest.approx(want)


def test_majority_vote_normalised_and_deterministic_ties():
    # "1/2" and "0.50" are different strings; "\\frac12" and "\\frac{1}{2}" normalise alike
    assert em.majority_vote(["3", "\\frac12", "\\frac{1}{2}", "3 "]) == 0  # 2-2 tie: "3" first
    assert em.majority_vote(["\\frac12", "3", "\\frac{1}{2}"]) == 0
    assert em.majority_vote(["7", "8", "9"]) == 0
    assert em.majority_vote(["7", "8", "8"]) == 1
    assert em.majority_vote([None, "", "5"]) == 2
    assert em.majority_vote([None, None]) is None
    assert em.majority_vote(["a", "b", "b", "a"], normalize=str.strip) == 0
    assert em.majority_vote(["b", "a", "a", "b"], normalize=str.strip) == 0


def test_cons_at_k():
    answers = [["1", "2", "2"], ["5", "6", "5", "6"], [None, None], ["x"]]
    correct = [[True, False, False], [False, True, False, True], [False, False], [True]]
    # majority "2" wrong; tie 5/6 -> "5" (first) wrong; no answer -> 0; "x" right
    assert em.cons_at_k(answers, correct) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        em.cons_at_k([["1"]], [[True, False]])


@pytest.mark.parametrize(
    "text, ok",
    [
        ("<think>3+4=7</think> <answer>7</answer>", True),
        ("  <think>\nreason\n</think>\n<answer> 7 </answer>\n", True),
        ("<think></think><answer>7</answer>", True),  # empty reasoning is allowed
        ("<think>a</think> <answer></answer>", False),  # empty answer
        ("<think>a</think> <answer>  </answer>", False),
        ("<think>a</think> <answer>7</answer> bye", False),  # text after the answer
        ("<think>a</think> <answer>7</answer><answer>7</answer>", False),
        ("<think>a</think><think>b</think><answer>7</answer>", False),
        ("<think>a</think> so <answer>7</answer>", False),
        ("hi <think>a</think><answer>7</answer>", False),
        ("<answer>7</answer><think>a</think>", False),
        ("<think>a <answer>7</answer></think>", False),
        ("<think>a</think>", False),
        ("<answer>7</answer>", False),
        ("", False),
    ],
)
def test_strict_format_ok(text, ok):
    assert parsing.strict_format_ok(text) is ok


def test_strict_format_think_opened_and_rates():
    assert parsing.strict_format_ok("reason</think> <answer>7</answer>", think_opened=True)
    assert not parsing.strict_format_ok("<think>r</think> <answer>7</answer>", think_opened=True)
    texts = ["<think>a</think><answer>1</answer>", "<answer>1</answer>"]
    assert em.format_rate(texts) == 0.5


def test_language_mixing_and_lengths():
    texts = [
        "<think>try the number so check</think><answer>1</answer>",
        "<think>try la nom then check</think><answer>1</answer>",  # en + zl
        "<think>vek la nom</think><answer>try the</answer>",  # the answer does not count
        "try vek",  # no think block: the text before <answer> counts
    ]
    assert parsing.reasoning_text(texts[0]) == "try the number so check"
    assert em.language_mixing_rate(texts) == pytest.approx(0.5)
    stats = em.length_stats([10, 20, 30, 40])
    assert stats["mean"] == 25 and stats["max"] == 40 and stats["min"] == 10
    assert stats["p50"] == 25 and stats["std"] == pytest.approx(np.std([10, 20, 30, 40]))


def test_markdown_table():
    table = em.markdown_table(
        {"countdown": {"pass@1": 0.25, "cons@8": 0.5}, "arith": {"pass@1": 1 / 3, "n": 7}}
    )
    assert table.splitlines() == [
        "| | pass@1 | cons@8 | n |",
        "|---|---|---|---|",
        "| countdown | 0.250 | 0.500 |  |",
        "| arith | 0.333 |  | 7 |",
    ]
    flat = em.markdown_table({"pass@1": 0.5, "a|b": float("nan")}, digits=2)
    assert flat.splitlines() == [
        "| metric | value |",
        "|---|---|",
        "| pass@1 | 0.50 |",
        "| a\\|b | nan |",
    ]
