"""Multi-digit arithmetic (addition, subtraction, multiplication by a short number).

A digit-by-digit scratchpad makes these reliable for a small model; answering in one shot does not.
The toy corpus mixes both styles, so RL has a better strategy to find (and longer thinking to pay off),
as in R1-Zero. Digit counts are configurable per operand.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from r1jax.data import hash_split

OPS = ("+", "-", "*")


def split_of(a: int, op: str, b: int, test_percent: int = 10) -> str:
    """'test' for a stable hash bucket of the problem, else 'train'."""
    return hash_split.side(f"{a}{op}{b}", test_percent)


def question(a: int, op: str, b: int) -> str:
    return f"What is {a} {op} {b}?"


def _rand_digits(rng: np.random.Generator, digits: int) -> int:
    return int(rng.integers(10 ** (digits - 1) if digits > 1 else 0, 10**digits))


def sample_problem(
    rng: np.random.Generator,
    ops: Sequence[str] = OPS,
    digits: tuple[int, int] = (2, 3),
    mul_digits: tuple[int, int] = (1, 1),
) -> tuple[int, str, int]:
    """a op b with a's and b's digit counts drawn from `digits` (b from `mul_digits` for *)."""
    op = ops[int(rng.integers(len(ops)))]
    lo, hi = digits
    a = _rand_digits(rng, int(rng.integers(lo, hi + 1)))
    blo, bhi = mul_digits if op == "*" else digits
    b = _rand_digits(rng, int(rng.integers(blo, bhi + 1)))
    if op == "*" and b < 2:  # x0 and x1 teach nothing
        b = int(rng.integers(2, 10))
    if op == "-" and b > a:
        a, b = b, a
    return a, op, b


def answer(a: int, op: str, b: int) -> int:
    return {"+": a + b, "-": a - b, "*": a * b}[op]


def example(a: int, op: str, b: int) -> dict:
    return {
        "id": f"arith-{a}{ {'+': 'p', '-': 'm', '*': 't'}[op] }{b}",
        "task": "arithmetic",
        "question": question(a, op, b),
        "answer": str(answer(a, op, b)),
        "ground_truth": {"a": a, "op": op, "b": b, "answer": answer(a, op, b)},
        "difficulty": max(len(str(a)), len(str(b))),
    }


def examples(
    split: str,
    n: int,
    seed: int = 0,
    ops: Sequence[str] = OPS,
    digits: tuple[int, int] = (2, 3),
    mul_digits: tuple[int, int] = (1, 1),
    test_percent: int = 10,
) -> Iterator[dict]:
    """n distinct problems of one split, deterministic for the arguments."""
    rng = np.random.default_rng([seed, len(ops), *digits, *mul_digits])
    seen: set[tuple] = set()
    tries = 0
    while len(seen) < n:
        tries += 1
        if tries > 200 * n + 10_000:
            raise ValueError(f"arithmetic: only {len(seen)} distinct {split} problems for n={n}.")
        a, op, b = sample_problem(rng, ops, digits, mul_digits)
        if (a, op, b) in seen or split_of(a, op, b, test_percent) != split:
            continue
        seen.add((a, op, b))
        yield example(a, op, b)


def scratchpad_steps(a: int, op: str, b: int) -> list[tuple[str, dict]]:
    """The digit-by-digit steps as (kind, fields) pairs, right to left; rendered by corpus.py.

    kinds: "add" (x + y + carry = s, write d, carry c), "sub" (x - y - borrow, maybe borrowing 10),
    "mul" (x * b + carry = p, write d, carry c), and a final "lead" for a remaining carry.
    """
    steps = []
    if op == "*":
        carry = 0
        for x in map(int, reversed(str(a))):
            p = x * b + carry
            steps.append(("mul", dict(x=x, y=b, c_in=carry, p=p, d=p % 10, c=p // 10)))
            carry = p // 10
        if carry:
            steps.append(("lead", dict(d=carry)))
        return steps
    da, db = str(a)[::-1], str(b)[::-1]
    carry = 0
    for i in range(len(da)):
        x, y = int(da[i]), int(db[i]) if i < len(db) else 0
        if op == "+":
            s = x + y + carry
            steps.append(("add", dict(x=x, y=y, c_in=carry, s=s, d=s % 10, c=s // 10)))
            carry = s // 10
        else:
            d = x - y - carry
            borrow = d < 0
            steps.append(("sub", dict(x=x, y=y, c_in=carry, borrow=borrow, d=d + 10 * borrow)))
            carry = int(borrow)
    if op == "+" and carry:
        steps.append(("lead", dict(d=carry)))
    return steps
