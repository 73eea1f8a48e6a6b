"""Countdown (as in TinyZero): combine the given numbers with + - * / to reach the target.

An *attempt* combines two numbers of the pool into one, step by step, until one number is left:
`7*3=21,21+2=23`. Subtraction and division are written bigger-first and only when the result is a
positive integer, so every intermediate is a positive integer and the reasoning never needs
fractions. Every expression tree over the numbers is reachable this way.

The toy corpus's traces search over attempts honestly: each attempt's arithmetic and verdict are
right, and the errors are only in *which* attempt is tried and *when to stop* (giving up early),
which is what RL can fix by searching longer. Attempts are tried without repeats, in an order biased
towards values close to the target (an "intuition" the model can learn and RL can sharpen).
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Iterator, Sequence

import numpy as np

from r1jax.data import hash_split

Step = tuple[int, str, int, int]  # (left, op, right, result), left >= right for - and /
Attempt = tuple[tuple[Step, ...], str]  # steps, final expression


def _combine(x: int, y: int, op: str) -> tuple[int, int, int] | None:
    """(left, right, result) of x op y in the written order, or None if not a positive integer."""
    a, b = (x, y) if x >= y else (y, x)
    if op == "+":
        return a, b, a + b
    if op == "*":
        return a, b, a * b
    if op == "-":
        return (a, b, a - b) if a > b else None
    if op == "/":
        return (a, b, a // b) if b > 1 and a % b == 0 else None
    raise ValueError(op)


def _wrap(e: str) -> str:
    return e if e.isdigit() else f"({e})"


def attempts(numbers: Sequence[int]) -> list[Attempt]:
    """Every distinct attempt over the numbers (up to commutation of + and *), in a fixed order."""
    out: dict[tuple, Attempt] = {}

    def rec(pool: list[tuple[int, str]], steps: tuple[Step, ...]):
        if len(pool) == 1:
            key = tuple(sorted(steps[:-1])) + (steps[-1],) if steps else ()
            out.setdefault(key, (steps, pool[0][1]))
            return
        for i, j in itertools.combinations(range(len(pool)), 2):
            (x, ex), (y, ey) = pool[i], pool[j]
            rest = [p for k, p in enumerate(pool) if k not in (i, j)]
            for op in "+*-/":
                got = _combine(x, y, op)
                if got is None:
                    continue
                left, right, res = got
                e_left, e_right = (ex, ey) if left == x and (x != y or i < j) else (ey, ex)
                expr = f"{_wrap(e_left)}{op}{_wrap(e_right)}"
                rec(rest + [(res, expr)], steps + ((left, op, right, res),))

    rec([(n, str(n)) for n in numbers], ())
    return list(out.values())


def value(attempt: Attempt) -> int:
    return attempt[0][-1][3]


def strip_outer(expr: str) -> str:
    """The final expression as written in the answer: without the outermost parentheses."""
    return expr[1:-1] if expr.startswith("(") and _balanced_outer(expr) else expr


def _balanced_outer(expr: str) -> bool:
    depth = 0
    for i, ch in enumerate(expr):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and i < len(expr) - 1:
            return False
    return True


def render_attempt(attempt: Attempt) -> str:
    return ",".join(f"{a}{op}{b}={r}" for a, op, b, r in attempt[0])


def split_of(numbers: Sequence[int], target: int, test_percent: int = 10) -> str:
    """'test' for a stable hash bucket of the problem, else 'train': splits never share a problem."""
    return hash_split.side(",".join(map(str, sorted(numbers))) + f"->{target}", test_percent)


def question(numbers: Sequence[int], target: int) -> str:
    nums = ", ".join(map(str, numbers))
    return (
        f"Using the numbers [{nums}], create an equation that equals {target}. "
        "Use + - * / and each number once."
    )


def sample_problem(
    rng: np.random.Generator, n_numbers: int = 3, max_number: int = 9, max_target: int = 99
) -> tuple[list[int], int, str]:
    """Random numbers and a target reachable from them (so every problem is solvable)."""
    while True:
        numbers = [int(x) for x in rng.integers(1, max_number + 1, size=n_numbers)]
        reachable = [a for a in attempts(numbers) if 1 <= value(a) <= max_target]
        if reachable:
            pick = reachable[int(rng.integers(len(reachable)))]
            return numbers, value(pick), strip_outer(pick[1])


def example(numbers: Sequence[int], target: int, solution: str) -> dict:
    """One example in the common task schema (see tfds_base.py)."""
    key = ",".join(map(str, numbers)) + f"->{target}"
    return {
        "id": "countdown-" + hashlib.sha1(key.encode()).hexdigest()[:12],
        "task": "countdown",
        "question": question(numbers, target),
        "answer": solution,
        "ground_truth": {"numbers": list(numbers), "target": int(target)},
        "difficulty": len(numbers),
    }


def all_problems(n_numbers: int = 3, max_number: int = 9, max_target: int = 99) -> list[tuple]:
    """Every solvable (sorted numbers, target, first solution) with 1 <= target <= max_target."""
    out = []
    for numbers in itertools.combinations_with_replacement(range(1, max_number + 1), n_numbers):
        found: dict[int, str] = {}
        for att in attempts(numbers):
            v = value(att)
            if 1 <= v <= max_target and v not in found:
                found[v] = strip_outer(att[1])
        out.extend((numbers, t, found[t]) for t in sorted(found))
    return out


def examples(
    split: str,
    n: int,
    seed: int = 0,
    n_numbers: int = 3,
    max_number: int = 9,
    max_target: int = 99,
    test_percent: int = 10,
) -> Iterator[dict]:
    """n distinct solvable problems of one split (all of them for n=0): a seeded shuffle."""
    pool = [
        p
        for p in all_problems(n_numbers, max_number, max_target)
        if split_of(p[0], p[1], test_percent) == split
    ]
    n = n or len(pool)
    if n > len(pool):
        raise ValueError(
            f"countdown: asked for {n} {split} problems but only {len(pool)} exist for "
            f"n_numbers={n_numbers}, max_number={max_number}, max_target={max_target}; "
            "ask for fewer or widen the ranges."
        )
    rng = np.random.default_rng([seed, n_numbers, max_number, max_target])
    for i in rng.permutation(len(pool))[:n]:
        numbers, target, solution = pool[i]
        shown = [int(x) for x in rng.permutation(numbers)]  # the order the question lists them
        yield example(shown, target, solution)


def _distance(attempt: Attempt, target: int) -> float:
    """|log(value / target)|: how far an attempt lands from the target, as intuition sees it."""
    return abs(math.log(value(attempt) / target))


def _intuition_draw(
    distances: Sequence[float], rng: np.random.Generator, intuition: float
) -> np.ndarray:
    """A permutation of range(len(distances)) drawn with weight exp(-distance / intuition)
    (uniform for intuition = 0)."""
    if intuition > 0:
        w = np.array([math.exp(-d / intuition) for d in distances])
    else:
        w = np.ones(len(distances))
    return rng.choice(len(distances), size=len(distances), replace=False, p=w / w.sum())


def search_order(
    numbers: Sequence[int], target: int, rng: np.random.Generator, intuition: float
) -> list[Attempt]:
    """All attempts without repeats, drawn with weight exp(-|log(value/target)| / intuition).

    intuition = 0 gives a uniformly random order; smaller positive values try close values first.
    """
    pool = attempts(numbers)
    order = _intuition_draw([_distance(a, target) for a in pool], rng, intuition)
    return [pool[i] for i in order]


def tree_order(
    numbers: Sequence[int], target: int, rng: np.random.Generator, intuition: float
) -> list[Attempt]:
    """All attempts without repeats, grouped by their first step: the first steps drawn as
    `search_order` draws attempts (each weighted by its closest completion), and the attempts of
    one first step in `attempts`' fixed operation order (+ * - /).

    Why: a search whose next line depends only on the line above (the same first step, the next
    operation) can be continued without remembering every earlier line; `search_order`'s lines are
    independent draws, which a small model reproduces as independent draws, repeats included.
    """
    blocks: dict[Step, list[Attempt]] = {}
    for a in attempts(numbers):
        blocks.setdefault(a[0][0], []).append(a)
    firsts = list(blocks)
    closest = [min(_distance(a, target) for a in blocks[f]) for f in firsts]
    order = _intuition_draw(closest, rng, intuition)
    return [a for i in order for a in blocks[firsts[i]]]
