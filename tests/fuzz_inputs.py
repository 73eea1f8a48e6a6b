"""Hostile inputs and the verifier table shared by tests/test_verifier_fuzz.py (few examples) and
benchmarks/verifier_fuzz.py (many examples).

Every verifier is wrapped as `fn(text) -> object`; the fuzz checks that it returns, within its time
bound, without raising, and that no payload ran (the payloads create SENTINEL if evaluated).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable

from hypothesis import strategies as st

from r1jax.rewards import build, countdown, numeric
from r1jax.rewards import math_answer as ma
from r1jax.text import parsing as ae

SENTINEL = os.path.join(tempfile.gettempdir(), f"r1jax_fuzz_{os.getpid()}_executed")
MATH_TIMEOUT_S = 1.0
PURE_BOUND_S = 1.0  # per call, inputs up to ~1 MB, on a loaded 2-core machine
MATH_BOUND_S = MATH_TIMEOUT_S + 5.0  # sympy time limit + margin; imports done before (warm)

PAYLOADS = [
    f"__import__('os').system('touch {SENTINEL}')",
    f"open('{SENTINEL}', 'w').write('x')",
    f"exec(\"open('{SENTINEL}', 'w')\")",
    f"eval(\"__import__('os').system('touch {SENTINEL}')\")",
    f"\\boxed{{__import__('os').system('touch {SENTINEL}')}}",
    f"<answer>__import__('os').system('touch {SENTINEL}')</answer>",
    f"<answer>(lambda: open('{SENTINEL}', 'w'))()</answer>",
    f"().__class__.__base__.__subclasses__()[0]('{SENTINEL}')",
    f"Symbol('x').__init__.__globals__['os'].system('touch {SENTINEL}')",
    f"x + __import__('os').system('touch {SENTINEL}')",
    f"\\text{{{SENTINEL}}} + open('{SENTINEL}','w')",
]

FRAGMENTS = [
    "<answer>",
    "</answer>",
    "<think>",
    "</think>",
    "\\boxed{",
    "\\fbox{",
    "{",
    "}",
    "\\{",
    "\\}",
    "\\frac",
    "\\dfrac",
    "\\sqrt",
    "\\left(",
    "\\right)",
    "\\text{cm}",
    "^\\circ",
    "\\%",
    "\\pi",
    "(",
    ")",
    "+",
    "-",
    "*",
    "/",
    "^",
    "**",
    "=",
    ",",
    ".",
    " ",
    "\n",
    "$",
    "#### ",
    "x",
    "e",
    "i",
    "3",
    "5",
    "7",
    "9",
    "0",
    "12",
    "1/2",
    "0.5",
    "1,000",
    "1e999999",
    "9**9**9",
    "9^9^9",
    "9^{9^{9}}",
    "(2^{1000})^{1000}",
    "\u0663",
    "\u2460",
    "\U0001d7d7",
    "\uff19",
    "\x00",
    "\\",
    "__",
    "lambda",
    "import",
    "Integer",
    "sqrt(",
    "oo",
    "\\infty",
    "[",
    "]",
    "|",
    "!",
    "'",
    '"',
] + PAYLOADS

# fixed hostile inputs every verifier meets in the test and the benchmark
EXPLICIT = PAYLOADS + [
    "9**9**9",
    "9^9^9",
    "9^{9^{9}}",
    "10^{10^{10}}",
    "x^{x^{x^{x}}}",
    "((2^{1000})^{1000})^{1000}",
    "<answer>9*9*9*9*9*9*9*9*9*9*9*9*9*9*9*9*9*9*9*9</answer>",
    "\\frac{1}{0}",
    "0^{-1}",
    "\\sqrt{-1}",
    "\u0663\u0663",
    "\U0001d7d7",
    "(" * 100_000,
    "\\boxed{" * 100_000,
    "{" * 50_000 + "}" * 50_000,
    "<answer>" * 50_000 + "</answer>" * 50_000,
    "<think>" * 10_000 + "</think><answer>1</answer>",
    "9" * 1_000_000,
    "1e999999999",
    "\x00" * 1000,
]


def _repeat(fragment: str) -> st.SearchStrategy[str]:
    return st.integers(1, 20_000).map(lambda n: fragment * n)


def _nest(left: str, right: str) -> st.SearchStrategy[str]:
    return st.integers(1, 20_000).map(lambda n: left * n + "1" + right * n)


def latex_math() -> st.SearchStrategy[str]:
    """Well-formed LaTeX-ish expressions: these pass the converter and reach sympy."""
    leaf = st.one_of(st.integers(0, 10**12).map(str), st.sampled_from(["x", "y", "\\pi", "e", "i"]))
    return st.recursive(
        leaf,
        lambda c: st.one_of(
            st.tuples(c, c).map(lambda t: f"\\frac{{{t[0]}}}{{{t[1]}}}"),
            st.tuples(c, c).map(lambda t: f"{{{t[0]}}}^{{{t[1]}}}"),
            c.map(lambda a: f"\\sqrt{{{a}}}"),
            st.tuples(c, st.sampled_from("+-*"), c).map(lambda t: f"({t[0]}{t[1]}{t[2]})"),
        ),
        max_leaves=12,
    )


def hostile_text() -> st.SearchStrategy[str]:
    """Arbitrary Unicode, mixes of dangerous fragments, deep nesting, huge and long inputs."""
    mixed = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), max_size=80)
    return st.one_of(
        st.text(max_size=200),
        mixed.map("".join),
        st.sampled_from(PAYLOADS),
        _nest("(", ")"),
        _nest("\\boxed{", "}"),
        _nest("{", "}"),
        _nest("\\frac{", "}{2}"),
        _nest("\\sqrt{", "}"),
        _repeat("9"),
        _repeat("<answer>1</answer>"),
        _repeat("<think>"),
        _repeat("9*"),
        _repeat("2^"),
        _repeat("\\boxed{"),
        st.integers(1, 1_000_000).map(lambda n: "x" * n + "<answer>1</answer>"),
        latex_math(),
        latex_math().map(lambda s: f"<answer>{s}</answer>"),
    )


_REWARDS = {}


def _reward(spec: str):
    if spec not in _REWARDS:
        (_REWARDS[spec],) = build([spec])
    return _REWARDS[spec]


_CD = {"ground_truth": {"numbers": [3, 5, 7, 9], "target": 24}, "answer": ""}
_NUM = {"ground_truth": {"answer": 42}, "answer": "42"}
_GEN = {"ground_truth": {"kind": "reverse", "target": "number the try"}}
_MATH_GOLDS = ["\\frac{1}{2}", "x^2+2x+1", "3, 4", "(1,2)", "2\\sqrt{2}", "42"]


def _math_pred(text: str) -> object:
    return [ma.math_equal(text, gold, timeout_s=MATH_TIMEOUT_S) for gold in _MATH_GOLDS[:2]]


def _math_gold(text: str) -> object:  # gold answers come from user files: also untrusted
    return ma.math_equal("1", text, timeout_s=MATH_TIMEOUT_S)


def _math_reward(text: str) -> object:
    return _reward(f"math_accuracy(timeout_s={MATH_TIMEOUT_S})")([text], [{"answer": "x+1"}])


# built once here, so that importing every reward module is not timed as part of the first call
for _spec in (
    "countdown_accuracy",
    "numeric_accuracy(fallback_last_number=True)",
    "general_match(metric='exact')",
    "general_match(metric='edit')",
    f"math_accuracy(timeout_s={MATH_TIMEOUT_S})",
):
    _reward(_spec)

# name -> (fn(text), time bound in seconds, uses the sympy worker)
VERIFIERS: dict[str, tuple[Callable[[str], object], float, bool]] = {
    "answer_extraction": (
        lambda t: (ae.extract_answer(t), ae.last_boxed(t), ae.gsm8k_final(t)),
        PURE_BOUND_S,
        False,
    ),
    "countdown_score": (
        lambda t: countdown.countdown_score(t, [3, 5, 7, 9], 24),
        PURE_BOUND_S,
        False,
    ),
    "countdown_accuracy": (
        lambda t: _reward("countdown_accuracy")([t], [_CD]),
        PURE_BOUND_S,
        False,
    ),
    "numeric_equal": (
        lambda t: (numeric.numeric_equal(t, "42"), numeric.parse_number(t)),
        PURE_BOUND_S,
        False,
    ),
    "numeric_accuracy": (
        lambda t: _reward("numeric_accuracy(fallback_last_number=True)")([t], [_NUM]),
        PURE_BOUND_S,
        False,
    ),
    "math_plan": (
        lambda t: (ma.normalize(t), ma.plan(t, "x+1"), ma.plan("1", t)),
        PURE_BOUND_S,
        False,
    ),
    "strict_format_ok": (lambda t: ae.strict_format_ok(t), PURE_BOUND_S, False),
    "general_match": (
        lambda t: [_reward(f"general_match(metric='{m}')")([t], [_GEN]) for m in ("exact", "edit")],
        PURE_BOUND_S,
        False,
    ),
    "math_equal_pred": (_math_pred, 2 * MATH_BOUND_S, True),
    "math_equal_gold": (_math_gold, MATH_BOUND_S, True),
    "math_accuracy": (_math_reward, MATH_BOUND_S, True),
}
