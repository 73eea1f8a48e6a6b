"""math_accuracy on Math-Verify (issue 12): the answer forms the old converter got wrong or could not
read, and a property test that a wrong value is never accepted (each case checked once by hand).

Pairs that reach Math-Verify run in the worker pool (rewards/sympy_worker.py), as in training.
"""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from r1jax.rewards import build
from r1jax.rewards import math_answer as ma

TIMEOUT_S = 10.0  # generous: a fresh worker on a loaded 2-core machine; no case here is slow


@pytest.mark.parametrize(
    "pred, gold, want",
    [
        # mixed numbers: 2 1/2 is 5/2, never 2 x 1/2
        ("2\\frac{1}{2}", "1", False),
        ("2\\frac{1}{2}", "5/2", True),
        ("3 \\frac{1}{2}", "3/2", False),
        ("3 \\frac{1}{2}", "\\frac{7}{2}", True),
        ("2\\frac{1}{2}", "2.5", True),
        # sets in braces
        ("\\{3,1,2\\}", "\\{1,2,3\\}", True),
        ("\\{1,2\\}", "\\{1,2,3\\}", False),
        ("\\{1,2,4\\}", "\\{1,2,3\\}", False),
        # intervals and unions
        ("[1,2)\\cup(3,4]", "[1,2)\\cup(3,4]", True),
        ("[1,2]\\cup(3,4]", "[1,2)\\cup(3,4]", False),
        ("(-\\infty,2]", "(-\\infty, 2]", True),
        ("(-\\infty,2)", "(-\\infty, 2]", False),
        # plus-minus
        ("2,-2", "\\pm 2", True),
        ("2", "\\pm 2", False),
        ("1+\\sqrt{2}, 1-\\sqrt{2}", "1\\pm\\sqrt{2}", True),
        ("1+\\sqrt{2}", "1\\pm\\sqrt{2}", False),
        # tuples and equations whose left side is not a variable
        ("1", "f(x)=1", True),
        ("2", "f(x)=1", False),
        ("(3,2)", "(p,q)=(3,2)", True),
        ("(2,3)", "(p,q)=(3,2)", False),
        ("(p,q)=(3,2)", "(3,2)", True),
        # times
        ("7:32", "7:32", True),
        ("07:32", "7:32", True),
        ("7:33", "7:32", False),
        ("2", "10:05", False),  # Math-Verify alone reads 10:05 as the ratio 10/5
        ("14:64", "7:32", False),
        # units and percent words
        ("28 percentage", "28", True),
        ("29 percentage", "28", False),
        ("3s", "3", True),
        ("4s", "3", False),
        ("5\\text{ cm}^2", "5", True),
        # thousands separators
        ("1,000", "1000", True),
        ("1,000", "1", False),
        ("1{,}234{,}567", "1234567", True),
        ("1,234,567", "1,234,568", False),
        # exact numbers (Math-Verify alone rounds decimals to 6 places)
        ("0.333333", "\\frac{1}{3}", False),
        ("0.5", "\\frac{1}{2}", True),
        # numeric comparison at 50 digits (at Math-Verify's default 15, these two were equal)
        ("\\sqrt{2}+10^{-30}", "\\sqrt{2}", False),
        ("\\sqrt{3+2\\sqrt{2}}", "1+\\sqrt{2}", True),
        # an answer that would close the worker's box early and add a second one
        ("1} or \\boxed{2", "2", False),
    ],
)
def test_answer_forms(pred, gold, want):
    assert ma.math_equal(pred, gold, timeout_s=TIMEOUT_S) is want


def test_reward_uses_the_projects_extraction():
    (reward,) = build([f"math_accuracy(timeout_s={TIMEOUT_S})"])
    ex = [{"answer": "\\{1,2,3\\}"}]
    completions = [
        "<think>so</think><answer>\\{3,2,1\\}</answer>",
        "<answer>The set is \\boxed{\\{1,2,3\\}}</answer>",
        "\\boxed{\\{1,2,3\\}} and then \\boxed{\\{1,2\\}}",  # the last box counts
        "The answer is \\{1,2,3\\}",  # neither an answer block nor a box: no answer
    ]
    got = reward(completions, ex * len(completions))
    np.testing.assert_array_equal(got, [1.0, 1.0, 0.0, 0.0])
    bad = reward(["<answer>1</answer>"], [{"answer": "[1, 2"}])
    assert np.isnan(bad[0])


# ---------------------------------------------------------------- property: wrong values rejected

_INT = st.integers(-(10**6), 10**6)
_RATIONAL = st.builds(Fraction, _INT, st.integers(1, 10**6))
_NONZERO = _RATIONAL.filter(lambda x: x != 0)
_SURD = st.sampled_from([2, 3, 5, 6, 7, 10, 11])


def _frac(x: Fraction) -> str:
    if x.denominator == 1:
        return str(x.numerator)
    sign = "-" if x < 0 else ""
    return f"{sign}\\frac{{{abs(x.numerator)}}}{{{x.denominator}}}"


def _mixed(x: Fraction) -> str:
    """`2\\frac{1}{2}`; a value without a whole part, or an integer, as a plain fraction."""
    whole = abs(x.numerator) // x.denominator
    rest = abs(x) - whole
    if whole == 0 or rest == 0:
        return _frac(x)
    return f"{'-' if x < 0 else ''}{whole}\\frac{{{rest.numerator}}}{{{rest.denominator}}}"


def _renders(x: Fraction) -> list[str]:
    """Spellings of x: a/b, \\frac, mixed number, and a terminating decimal where there is one."""
    out = [f"{x.numerator}/{x.denominator}", _frac(x), _mixed(x)]
    d = x.denominator
    while d % 2 == 0:
        d //= 2
    while d % 5 == 0:
        d //= 5
    if d == 1:
        digits = 0
        while (x * 10**digits).denominator != 1:
            digits += 1
        out.append(f"{float(x):.{digits}f}" if digits <= 12 else _frac(x))
    return out


_SETTINGS = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck))


@settings(max_examples=40, **_SETTINGS)
@given(gold=_RATIONAL, delta=_NONZERO, i=st.integers(0, 3), j=st.integers(0, 3))
def test_rational_off_by_a_rational_or_sign_is_rejected(gold, delta, i, j):
    """gold + delta (delta != 0) and -gold (gold != 0) are never accepted, in any two spellings;
    the same value in two spellings is (the control that shows the check can say yes)."""
    g, p = _renders(gold), _renders(gold + delta)
    assert ma.math_equal(p[j % len(p)], g[i % len(g)], timeout_s=TIMEOUT_S) is False
    if gold != 0:
        neg = _renders(-gold)
        assert ma.math_equal(neg[j % len(neg)], g[i % len(g)], timeout_s=TIMEOUT_S) is False
    assert ma.math_equal(g[j % len(g)], g[i % len(g)], timeout_s=TIMEOUT_S) is True


@settings(max_examples=25, **_SETTINGS)
@given(a=_RATIONAL, b=_NONZERO, k=_SURD, delta=_NONZERO)
def test_surd_off_by_a_rational_or_sign_is_rejected(a, b, k, delta):
    """a + b sqrt(k) against itself + delta, against its negation, and against a tuple with one
    component off: all rejected by Math-Verify in the worker; the same value written with the
    terms swapped, and the tuple itself, accepted."""
    gold = f"{_frac(a)}+{_frac(b)}\\sqrt{{{k}}}"
    swapped = f"{_frac(b)}\\sqrt{{{k}}}+{_frac(a)}"
    off = f"{_frac(a + delta)}+{_frac(b)}\\sqrt{{{k}}}"
    neg = f"{_frac(-a)}+{_frac(-b)}\\sqrt{{{k}}}"
    assert ma.math_equal(swapped, gold, timeout_s=TIMEOUT_S) is True
    assert ma.math_equal(off, gold, timeout_s=TIMEOUT_S) is False
    assert ma.math_equal(neg, gold, timeout_s=TIMEOUT_S) is False
    pair = f"({_frac(a)}, {gold})"
    assert ma.math_equal(pair, pair, timeout_s=TIMEOUT_S) is True
    assert ma.math_equal(f"({_frac(a + delta)}, {gold})", pair, timeout_s=TIMEOUT_S) is False
