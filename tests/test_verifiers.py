"""Truth tables for the verifiers: answer extraction, Countdown, numeric and math equivalence."""

import math
import os
import signal
import time

import numpy as np
import pytest

from r1jax.rewards import build, sympy_worker
from r1jax.rewards import math_answer as ma
from r1jax.rewards.countdown import countdown_score
from r1jax.rewards.numeric import numeric_equal, parse_number
from r1jax.text.parsing import answer_block, extract_answer, gsm8k_final, last_boxed


@pytest.mark.parametrize(
    "text, want",
    [
        ("<answer>1</answer> <answer>2</answer>", "2"),
        ("<answer>1</answer> <answer>2", "1"),  # the last *complete* block
        ("<answer>a<answer> b </answer>", "b"),
        ("</answer><answer>", None),
        ("no tags", None),
        ("<answer>The answer is \\boxed{5}.</answer>", "5"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("\\boxed{a} then \\boxed{b}", "b"),
        ("\\boxed{\\boxed{1}+1}", "\\boxed{1}+1"),  # nested: the outer box closes last
        ("\\boxed{x^{2}} and \\boxed{1", "x^{2}"),  # an unclosed box is ignored
        ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"),  # escaped braces do not close the box
        ("\\boxed {3} \\fbox{4}", "4"),
        ("\\boxed{", None),
    ],
)
def test_extract_answer(text, want):
    assert extract_answer(text) == want


def test_extraction_helpers_and_long_input():
    assert answer_block("<answer> 7 </answer>") == "7"
    assert last_boxed("}}}}\\boxed{{{}}}") == "{{}}"
    assert gsm8k_final("so 6*7 = 42\n#### 42") == "42"
    assert gsm8k_final("no marker") is None
    t0 = time.perf_counter()
    assert extract_answer("{" * 500_000 + "<answer>7</answer>") == "7"
    assert extract_answer("\\boxed{" * 200_000) is None
    assert time.perf_counter() - t0 < 2.0


NUMS, TARGET = [3, 5, 7], 22


@pytest.mark.parametrize(
    "expr, numbers, target, want",
    [
        ("3*5+7", NUMS, TARGET, 1.0),
        ("7 + 5*3", NUMS, TARGET, 1.0),
        ("(((3*5)+7))", NUMS, TARGET, 1.0),
        ("3*5+7 = 22", NUMS, TARGET, 1.0),
        ("3*5+7 = 23", NUMS, TARGET, 0.0),  # false claim
        ("3*5+7=22=22", NUMS, TARGET, 0.0),
        ("3*5+3", NUMS, TARGET, 0.0),  # 3 reused, 7 missing
        ("3*5+7+7", NUMS, TARGET, 0.0),  # 7 reused
        ("3*5", NUMS, 15, 0.0),  # 7 missing
        ("3*5+7", [3, 5, 7, 7], TARGET, 0.0),  # second 7 missing
        ("2*2*3", [2, 2, 3], 12, 1.0),  # multiset
        ("2*3*3", [2, 2, 3], 18, 0.0),
        ("8/3*3", [8, 3, 3], 8, 1.0),  # exact rationals
        ("3/(5-5)", [3, 5, 5], 0, 0.0),  # division by zero
        ("9*9*9", [9, 9, 9], 729, 1.0),
        ("9*9*9*9*9*9*9*9*9*9*9*9", [9, 9, 9], 729, 0.0),  # a power as repeated products
        ("9**9**9", [9, 9, 9], 729, 0.0),
        ("9^9^9", [9, 9, 9], 729, 0.0),
        ("-3+5*7", NUMS, 32, 0.0),  # unary minus rejected by default
        ("+3+5*7", NUMS, 38, 0.0),
        ("3.0*5+7", NUMS, TARGET, 0.0),
        ("\u0663*5+7", NUMS, TARGET, 0.0),  # Arabic-Indic digit three
        ("3 5 + 7", NUMS, TARGET, 0.0),
        ("(3*5+7", NUMS, TARGET, 0.0),
        ("3*5+7)", NUMS, TARGET, 0.0),
        ("()", NUMS, TARGET, 0.0),
        ("", NUMS, TARGET, 0.0),
        (None, NUMS, TARGET, 0.0),
        ("__import__('os')", NUMS, TARGET, 0.0),
        ("(" * 40 + "3*5+7" + ")" * 40, NUMS, TARGET, 0.0),  # deeper than MAX_DEPTH
        ("(" * 30 + "3*5+7" + ")" * 30, NUMS, TARGET, 1.0),
        ("3*5+7" + " " * 1000, NUMS, TARGET, 0.0),  # longer than MAX_CHARS
    ],
)
def test_countdown_truth_table(expr, numbers, target, want):
    assert countdown_score(expr, numbers, target) == want


def test_countdown_options():
    assert countdown_score("-3+5*7", NUMS, 32, allow_unary_minus=True) == 1.0
    assert countdown_score("-(3-5)*7", NUMS, 14, allow_unary_minus=True) == 1.0
    assert countdown_score("3+5+7", NUMS, TARGET, partial=0.1) == pytest.approx(0.1)
    assert countdown_score("3+5+3", NUMS, TARGET, partial=0.1) == 0.0  # illegal: no partial


def test_countdown_reward():
    (reward,) = build(["countdown_accuracy(partial=0.1)"])
    ex = {"ground_truth": {"numbers": NUMS, "target": TARGET}}
    completions = [
        "<think>3*5=15, 15+7=22</think> <answer>3*5+7</answer>",
        "<answer>3+5+7</answer>",
        "<answer>3*5+3</answer>",
        "\\boxed{(3*5)+7}",
        "3*5+7",  # no answer block
    ]
    got = reward(completions, [ex] * len(completions))
    np.testing.assert_allclose(got, [1.0, 0.1, 0.0, 1.0, 0.0], rtol=1e-6)
    bad = reward(["<answer>1</answer>"], [{"ground_truth": {"target": 3}}])
    assert np.isnan(bad[0])
    assert (reward.low, reward.high) == (0.0, 1.0)


@pytest.mark.parametrize(
    "pred, gold, want",
    [
        ("0.5", "1/2", True),
        (".50", "\\frac{1}{2}", True),
        ("-0.5", "-1/2", True),
        ("1,000", "1000", True),
        ("1,000,000.0", "1000000", True),
        ("5.0", "5", True),
        ("5.", "5", True),
        ("$1/2$", "0.5", True),
        ("1e3", "1000", True),
        ("50%", "50", True),
        ("42.", "42", True),
        ("1,00", "100", False),  # not a thousands grouping
        ("0.333", "1/3", False),  # exact, no tolerance
        ("1/0", "0", False),
        ("\u0663", "3", False),  # Unicode digit
        ("1e999999", "1", False),
        ("2", "3", False),
        ("abc", "1", False),
        (None, "1", False),
    ],
)
def test_numeric_truth_table(pred, gold, want):
    assert numeric_equal(pred, gold) is want


def test_numeric_reward():
    assert parse_number("1/2") == parse_number("0.5")
    (reward,) = build(["numeric_accuracy"])
    ex_gt = {"ground_truth": {"a": 2, "b": 3, "op": "*", "answer": 6}, "answer": "6"}
    ex_answer = {"ground_truth": {}, "answer": "1,234"}
    got = reward(
        [
            "<answer>6</answer>",
            "<answer>6.0</answer>",
            "<answer>7</answer>",
            "<answer>1234</answer>",
        ],
        [ex_gt, ex_gt, ex_gt, ex_answer],
    )
    np.testing.assert_array_equal(got, [1.0, 1.0, 0.0, 1.0])
    assert np.isnan(reward(["<answer>6</answer>"], [{"ground_truth": {}, "answer": "x+1"}])[0])
    (fallback,) = build(["numeric_accuracy(fallback_last_number=True)"])
    np.testing.assert_array_equal(fallback(["so it is 6"], [ex_gt]), [1.0])


@pytest.mark.parametrize(
    "text, want",
    [
        ("\\frac12", "\\frac{1}{2}"),
        ("\\dfrac{1}{2}", "\\frac{1}{2}"),
        ("\\tfrac 12", "\\frac{1}{2}"),
        ("\\left( 1, 2 \\right)", "(1,2)"),
        ("10\\text{ cm}", "10"),
        ("12 inches", "12"),
        ("90^\\circ", "90"),
        ("50\\%", "50"),
        ("x = 5", "5"),
        ("1{,}000", "1000"),
        ("5.00", "5"),
        (".5", "0.5"),
        ("\\$ 5", "5"),
        ("\\text{(A)}", "(A)"),
        ("3\\!000", "3000"),
        ("\\boxed{7}.", "7"),
    ],
)
def test_math_normalize(text, want):
    assert ma.normalize(text) == want


@pytest.mark.parametrize(
    "pred, gold, want",
    [
        ("\\frac12", "0.5", True),
        ("0.5", "1/2", True),
        ("\\dfrac{1}{2}", "\\frac{1}{2}", True),
        ("2\\sqrt{2}", "\\sqrt{8}", True),
        ("(x+1)^2", "x^2+2x+1", True),
        ("\\pi r^2", "r^2\\pi", True),
        ("\\frac{\\sqrt{3}}{2}", "\\frac{1}{2}\\sqrt{3}", True),
        ("3, 4", "4,3", True),  # a set of answers
        ("(1,2)", "(2,1)", False),  # an ordered pair
        ("\\text{(A)}", "A", True),
        ("10^5", "1e5", True),  # a number sympy syntax cannot spell, against an expression
        ("\\sqrt{4}", "2", True),
        ("e^{i\\pi}", "-1", False),  # Math-Verify keeps this i a symbol (the old converter did not)
        ("5", "6", False),
        ("x", "y", False),
        ("9^{9^{9}}", "1", False),  # rejected before evaluation
        ("", "1", False),
        (None, "1", False),
    ],
)
def test_math_equal(pred, gold, want):
    assert ma.math_equal(pred, gold) is want


def test_math_unparseable_gold_is_nan_and_counted():
    before = ma.STATS["gold_unparseable"]
    assert ma.math_equal("1", "[1, 2") is None  # an interval missing its end
    (reward,) = build(["math_accuracy"])
    got = reward(["<answer>1</answer>", "<answer>2</answer>"], [{"answer": "\\frac{1}{"}] * 2)
    assert np.isnan(got).all()
    assert ma.STATS["gold_unparseable"] == before + 3
    ok = reward(["<answer>\\frac{1}{2}</answer>"], [{"ground_truth": {"answer": "0.5"}}])
    np.testing.assert_array_equal(ok, [1.0])


def test_sympy_pool_recovers_from_a_killed_worker_and_cleans_up():
    pool = sympy_worker.SympyPool(1)
    request = [{"pred": "x+1", "gold": "1+x"}]
    assert pool.run(request, 5.0) == ["equal"]
    victim = pool._idle[0].proc.pid
    os.kill(victim, signal.SIGKILL)
    assert pool.run(request, 5.0) == ["equal"]  # retried on a fresh worker
    pids = [victim] + [w.proc.pid for w in pool._idle]
    pool.close()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_sympy_pool_warm_and_prefers_ready_workers():
    """warm() leaves `size` imported workers; a request goes to a ready worker, not to one that
    is still importing (a replacement started after a kill)."""
    pool = sympy_worker.SympyPool(2)
    assert pool.warm() == 2 and all(w.ready for w in pool._idle)
    fresh = sympy_worker._Worker()
    pool._idle.append(fresh)
    assert pool.run([{"pred": "2x", "gold": "x+x"}], 5.0) == ["equal"]
    assert fresh in pool._idle and not fresh.ready
    pool.close()


def test_math_hard_time_limit():
    """A sympy computation that would run for minutes is cut off at the time limit, scored 0."""
    slow = "((2^{1000})^{1000})^{1000}-((2^{1000})^{1000})^{999}"
    ma.equivalence(["1"], ["x+1"], timeout_s=0.5)  # start the worker outside the timed region
    t0 = time.perf_counter()
    assert ma.equivalence([slow], ["1"], timeout_s=0.5) == ["timeout"]
    assert time.perf_counter() - t0 < 0.5 + 1.0
    # the pool recovered (a generous limit: this checks recovery, not speed on a loaded machine)
    assert ma.equivalence(["x+x"], ["2x"], timeout_s=5.0) == ["equal"]
    assert math.isfinite(ma.STATS["sympy_timeout"])
