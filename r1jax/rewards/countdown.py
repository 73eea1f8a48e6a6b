"""Countdown verifier: a recursive-descent parser with exact rational arithmetic (no eval).

Grammar (whitespace ignored):

    line   := expr [ '=' INT ]          # an optional "= target" claim, which must be true
    expr   := term (('+' | '-') term)*
    term   := factor (('*' | '/') factor)*
    factor := INT | '(' expr ')' | '-' factor     # unary minus only with allow_unary_minus

Decisions, each closing a loophole a policy would find:
- Unary minus is rejected by default: the game has only binary operations on the given numbers,
  and "-3" would be ambiguous between "the number 3, negated" and "the number -3". `-(a-b)` can
  always be written `b-a`, so nothing solvable is lost. Unary plus is never accepted.
- Only ASCII digits; no decimals, no `**` or `^` (so `9**9**9` is a syntax error, and a power
  written as repeated multiplication uses a number more than once and is rejected).
- Every given number is used exactly once (as a multiset); a literal that is not one of the
  remaining given numbers is rejected while tokenizing, before any arithmetic.
- Division is exact (fractions.Fraction); intermediate fractions are allowed, division by zero
  makes the expression illegal.
- Bounded: MAX_CHARS characters, MAX_DEPTH nested parentheses, MAX_NUMBERS given numbers of at
  most MAX_DIGITS digits, so the worst case is a few microseconds per character.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from r1jax.rewards.registry import Reward, register
from r1jax.text.parsing import extract_answer

MAX_CHARS = 400
MAX_DEPTH = 32
MAX_NUMBERS = 16
MAX_DIGITS = 12
_OPS = "+-*/()="


class CountdownError(ValueError):
    """The expression is not a legal Countdown answer for the given numbers."""


@dataclasses.dataclass(frozen=True)
class Parsed:
    """A legal expression: its exact value and the right-hand side it claims (if any)."""

    value: Fraction
    claim: int | None


def _tokenize(expr: str) -> list[str | int]:
    tokens: list[str | int] = []
    i, n = 0, len(expr)
    while i < n:
        ch = expr[i]
        if ch in " \t\n\r":
            i += 1
        elif ch in _OPS:
            tokens.append(ch)
            i += 1
        elif "0" <= ch <= "9":
            j = i
            while j < n and "0" <= expr[j] <= "9":
                j += 1
            if j - i > MAX_DIGITS:
                raise CountdownError("number too long")
            tokens.append(int(expr[i:j]))
            i = j
        else:
            raise CountdownError(f"illegal character {ch!r}")
    return tokens


class _Parser:
    def __init__(self, tokens: list[str | int], numbers: Counter, allow_unary_minus: bool):
        self.tokens, self.pos, self.unused = tokens, 0, numbers
        self.allow_unary_minus = allow_unary_minus

    def peek(self) -> str | int | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str | int | None:
        tok = self.peek()
        self.pos += 1
        return tok

    def expr(self, depth: int) -> Fraction:
        value = self.term(depth)
        while self.peek() in ("+", "-"):
            op = self.take()
            rhs = self.term(depth)
            value = value + rhs if op == "+" else value - rhs
        return value

    def term(self, depth: int) -> Fraction:
        value = self.factor(depth)
        while self.peek() in ("*", "/"):
            op = self.take()
            rhs = self.factor(depth)
            if op == "*":
                value = value * rhs
            elif rhs == 0:
                raise CountdownError("division by zero")
            else:
                value = value / rhs
        return value

    def factor(self, depth: int) -> Fraction:
        tok = self.take()
        if isinstance(tok, int):
            if self.unused[tok] <= 0:
                raise CountdownError(f"number {tok} not available")
            self.unused[tok] -= 1
            return Fraction(tok)
        if tok == "(":
            if depth >= MAX_DEPTH:
                raise CountdownError("too deeply nested")
            value = self.expr(depth + 1)
            if self.take() != ")":
                raise CountdownError("missing ')'")
            return value
        if tok == "-" and self.allow_unary_minus:
            if depth >= MAX_DEPTH:
                raise CountdownError("too deeply nested")
            return -self.factor(depth + 1)
        raise CountdownError(f"unexpected {tok!r}")


def _check_numbers(numbers: Sequence[Any]) -> list[int]:
    """The given numbers as ints; ValueError unless 1..MAX_NUMBERS integers of <= MAX_DIGITS."""
    try:
        nums = [int(x) for x in numbers]
    except (TypeError, ValueError, OverflowError) as e:  # "a", None, inf, a non-sequence
        raise ValueError(f"bad Countdown numbers {str(numbers)[:80]}: {e}") from None
    if not 0 < len(nums) <= MAX_NUMBERS or any(abs(x) >= 10**MAX_DIGITS for x in nums):
        raise ValueError(f"bad Countdown numbers {str(numbers)[:80]}")
    return nums


def parse_countdown(expr: str, numbers: Sequence[int], allow_unary_minus: bool = False) -> Parsed:
    """Parses and evaluates `expr`; raises CountdownError unless it is a legal answer.

    Legal: well-formed, only the given numbers, each exactly once, no division by zero, and a
    trailing "= N" claim (if present) that is an integer. Bad `numbers` (see `_check_numbers`)
    raise CountdownError too.
    """
    if not isinstance(expr, str) or len(expr) > MAX_CHARS:
        raise CountdownError("expression missing or too long")
    try:
        nums = _check_numbers(numbers)
    except ValueError as e:
        raise CountdownError(str(e)) from None
    tokens = _tokenize(expr)
    claim = None
    if "=" in tokens:
        eq = tokens.index("=")
        rhs = tokens[eq + 1 :]
        if len(rhs) != 1 or not isinstance(rhs[0], int):
            raise CountdownError("right of '=' must be one integer")
        claim, tokens = rhs[0], tokens[:eq]
    parser = _Parser(tokens, Counter(nums), allow_unary_minus)
    value = parser.expr(0)
    if parser.pos != len(tokens):
        raise CountdownError(f"unexpected {parser.peek()!r}")
    if any(count != 0 for count in parser.unused.values()):
        raise CountdownError("not every number used")
    return Parsed(value, claim)


def countdown_score(
    expr: str | None,
    numbers: Sequence[int],
    target: int,
    partial: float = 0.0,
    allow_unary_minus: bool = False,
) -> float:
    """1.0 for a legal expression equal to `target`, `partial` for a legal wrong one, else 0.0.

    A legal expression with a false "= N" claim, or a claim different from the target, scores 0:
    the claim is part of the answer. Never raises: bad `numbers` (more than MAX_NUMBERS, not
    integers) or a non-integer `target` also score 0.
    """
    if expr is None:
        return 0.0
    try:
        parsed = parse_countdown(expr, numbers, allow_unary_minus)
        if int(target) != target:  # 22.5 is no Countdown target
            return 0.0
    except (CountdownError, RecursionError, ValueError, TypeError, OverflowError):  # int(target)
        return 0.0
    if parsed.claim is not None and parsed.claim != parsed.value:
        return 0.0
    return 1.0 if parsed.value == target else float(partial)


@register("countdown_accuracy")
def countdown_accuracy(partial: float = 0.0, allow_unary_minus: bool = False) -> Reward:
    """Countdown accuracy from the completion's answer; NaN when the example has no numbers/target.

    range: [0, 1]. 1 for a correct expression in the answer (last `<answer>` block, else last
    `\\boxed{}`), `partial` (default 0.0; the toy probe used 0.1) for a legal expression with the
    wrong value, 0 otherwise.
    """
    if not 0.0 <= partial <= 1.0:
        raise ValueError(f"partial must be in [0, 1], got {partial}")

    def fn(completions: Sequence[str], examples: Sequence[Mapping[str, Any]]) -> np.ndarray:
        out = np.zeros(len(completions), np.float32)
        for i, (text, ex) in enumerate(zip(completions, examples, strict=True)):
            gt = ex.get("ground_truth")
            try:
                numbers = _check_numbers(gt["numbers"])
                target = int(gt["target"])
            except (TypeError, KeyError, ValueError, OverflowError):
                out[i] = np.nan
                continue
            out[i] = countdown_score(
                extract_answer(text), numbers, target, partial, allow_unary_minus
            )
        return out

    return Reward("countdown_accuracy", fn, 0.0, 1.0)
