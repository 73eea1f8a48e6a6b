"""Generated programming problems with hidden stdin/stdout tests, small enough for toy-scale RL.

Every problem reads integers (first line n, second line n integers) and prints one function of
them, built from three parts: a filter (keep the even / odd / > k / divisible-by-d numbers), a
transform (a*x + b, x mod m, |x|, x squared) and an aggregate (sum, max, min, count, distinct
count, sorted list, alternating sum, range). That gives tens of thousands of distinct problems, from
"print the sum" (difficulty 1) to "keep the numbers divisible by 3, map x -> 4*x - 7, print the
alternating sum" (difficulty 3): a ladder a small model can climb under RL.

The expected outputs are computed here by plain Python functions (never by running generated text);
`answer` holds a reference program, and the tests check that it passes its own hidden tests in the
sandbox. A problem belongs to "test" when a hash of its definition falls below `test_fraction`,
independently of the seed, so no seed's train split ever holds a test problem. Generation is
deterministic for (seed, split) and prefix-stable in the size.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator

import numpy as np

from r1jax.data.jsonl_task import hash_fraction
from r1jax.data.tfds_base import TaskBuilder

Spec = tuple  # ("kind", *int params)
MAX_ABS_VALUE = 30  # input values are in [-30, 30]
MAX_N = 10

_AGGS: dict[str, tuple[str, str, Callable[[list[int]], object]]] = {
    # name: (what to print, reference expression over xs, function)
    "sum": ("the sum of {r} (0 if there are none)", "sum(xs)", sum),
    "max": ("the largest of {r} (NONE if there are none)", 'max(xs) if xs else "NONE"', lambda xs: max(xs) if xs else "NONE"),
    "min": ("the smallest of {r} (NONE if there are none)", 'min(xs) if xs else "NONE"', lambda xs: min(xs) if xs else "NONE"),
    "count": ("how many numbers are kept", "len(xs)", len),
    "distinct": ("how many distinct values there are among {r}", "len(set(xs))", lambda xs: len(set(xs))),
    "sorted": (
        "{r} in increasing order, separated by single spaces (an empty line if there are none)",
        '" ".join(map(str, sorted(xs)))',
        lambda xs: " ".join(map(str, sorted(xs))),
    ),
    "alt": (
        "the alternating sum of {r} in input order, r1 - r2 + r3 - ... (0 if there are none)",
        "sum(x if i % 2 == 0 else -x for i, x in enumerate(xs))",
        lambda xs: sum(x if i % 2 == 0 else -x for i, x in enumerate(xs)),
    ),
    "range": (
        "the largest of {r} minus the smallest (NONE if there are none)",
        'max(xs) - min(xs) if xs else "NONE"',
        lambda xs: max(xs) - min(xs) if xs else "NONE",
    ),
}  # fmt: skip


def _filter(spec: Spec) -> tuple[str, str, Callable[[int], bool]]:
    """(description, reference condition, predicate) of a filter."""
    kind, *p = spec
    if kind == "even":
        return "that are even", "x % 2 == 0", lambda x: x % 2 == 0
    if kind == "odd":
        return "that are odd", "x % 2 != 0", lambda x: x % 2 != 0
    if kind == "gt":
        return f"that are greater than {p[0]}", f"x > {p[0]}", lambda x: x > p[0]
    if kind == "div":
        return f"that are divisible by {p[0]}", f"x % {p[0]} == 0", lambda x: x % p[0] == 0
    raise ValueError(spec)


def _transform(spec: Spec) -> tuple[str, str, Callable[[int], int]]:
    """(description, reference expression, function) of a transform."""
    kind, *p = spec
    if kind == "lin":
        a, b = p
        tail = "" if b == 0 else f" + {b}" if b > 0 else f" - {-b}"
        return f"{a}*x{tail}", f"{a} * x{tail}", lambda x: a * x + b
    if kind == "mod":
        m = p[0]
        return f"x mod {m} (the remainder, between 0 and {m - 1})", f"x % {m}", lambda x: x % m
    if kind == "abs":
        return "|x| (its absolute value)", "abs(x)", abs
    if kind == "sq":
        return "x*x", "x * x", lambda x: x * x
    raise ValueError(spec)


def sample_spec(rng: np.random.Generator) -> tuple[Spec, Spec, Spec]:
    """A random (filter, transform, aggregate); "count" ignores the transform, so it has none."""
    f = ("all", "even", "odd", "gt", "div")[rng.integers(5)]
    filt = (
        (f, int(rng.integers(-10, 21)))
        if f == "gt"
        else (f, int(rng.integers(2, 10)))
        if f == "div"
        else (f,)
    )
    agg = (list(_AGGS)[rng.integers(len(_AGGS))],)
    t = "id" if agg[0] == "count" else ("id", "lin", "mod", "abs", "sq")[rng.integers(5)]
    if t == "lin":
        trans = (t, int(rng.integers(2, 10)), int(rng.integers(-9, 10)))
    elif t == "mod":
        trans = (t, int(rng.integers(2, 14)))
    else:
        trans = (t,)
    return filt, trans, agg  # fmt: skip


def solve(spec: tuple[Spec, Spec, Spec], xs: list[int]) -> str:
    """The expected output line for input numbers `xs` (plain Python, no generated code)."""
    filt, trans, agg = spec
    if filt[0] != "all":
        xs = [x for x in xs if _filter(filt)[2](x)]
    if trans[0] != "id":
        xs = [_transform(trans)[2](x) for x in xs]
    return str(_AGGS[agg[0]][2](xs))


def describe(spec: tuple[Spec, Spec, Spec]) -> tuple[str, str]:
    """(problem statement, reference program) for a spec."""
    filt, trans, agg = spec
    steps, code = [], ["import sys", "", "data = sys.stdin.read().split()", "n = int(data[0])"]
    code.append("xs = [int(v) for v in data[1 : 1 + n]]")
    what = "the numbers"
    if filt[0] != "all":
        text, cond, _ = _filter(filt)
        steps.append(f"keep only the numbers {text}")
        code.append(f"xs = [x for x in xs if {cond}]")
        what = "the kept numbers"
    if trans[0] != "id":
        text, expr, _ = _transform(trans)
        steps.append(f"replace each {'kept ' if filt[0] != 'all' else ''}number x by {text}")
        code.append(f"xs = [{expr} for x in xs]")
        what = "the results"
    text, expr, _ = _AGGS[agg[0]]
    steps.append("print " + text.format(r=what))
    code.append(f"print({expr})")
    body = "; ".join(steps)
    statement = (
        "Write a Python program that reads integers from standard input: the first line holds n, "
        f"the second line holds n integers separated by spaces (n may be 0). {body[0].upper()}{body[1:]}."
    )
    return statement, "\n".join(code) + "\n"


def _random_input(rng: np.random.Generator, min_n: int = 0) -> tuple[str, list[int]]:
    xs = [
        int(v)
        for v in rng.integers(
            -MAX_ABS_VALUE, MAX_ABS_VALUE + 1, size=int(rng.integers(min_n, MAX_N + 1))
        )
    ]
    return f"{len(xs)}\n{' '.join(map(str, xs))}\n", xs  # fmt: skip


def example(spec: tuple[Spec, Spec, Spec], rng: np.random.Generator, num_tests: int) -> dict:
    """One problem in the common schema: one shown example, `num_tests` hidden tests."""
    statement, program = describe(spec)
    shown_in, shown_xs = _random_input(rng, min_n=3)
    pool = [_random_input(rng) for _ in range(4 * num_tests)]
    outs = [solve(spec, xs) + "\n" for _, xs in pool]
    firsts = [i for i, o in enumerate(outs) if o not in outs[:i]]  # distinct outputs first, so a
    rest = [i for i in range(len(pool)) if i not in firsts]  # constant answer cannot pass them all
    tests = [{"input": pool[i][0], "output": outs[i]} for i in (firsts + rest)[:num_tests]]
    question = f"{statement}\nExample input:\n{shown_in}Example output:\n{solve(spec, shown_xs)}"
    key = json.dumps(spec)
    return {
        "id": "code-" + hashlib.sha1(key.encode()).hexdigest()[:12],
        "task": "code",
        "question": question,
        "answer": program,
        "ground_truth": {"type": "stdio", "tests": tests},
        "difficulty": 1 + (spec[0][0] != "all") + (spec[1][0] != "id"),
    }


def split_of(spec: tuple[Spec, Spec, Spec], test_fraction: float) -> str:
    """'test' for a stable hash bucket of the problem definition (seed-independent), else 'train'."""
    return "test" if hash_fraction(json.dumps(spec)) < test_fraction else "train"


def examples(
    split: str, n: int, seed: int = 0, num_tests: int = 6, test_fraction: float = 0.1
) -> Iterator[dict]:
    """n distinct problems of one split, deterministic for the arguments."""
    if split not in ("train", "test"):
        raise ValueError(f"code task split must be 'train' or 'test', got {split!r}")
    rng = np.random.default_rng([seed, int(split == "test")])
    seen: set[str] = set()
    tries = 0
    while len(seen) < n:
        tries += 1
        if tries > 200 * n + 10_000:
            raise ValueError(f"code task: only {len(seen)} distinct {split} problems for n={n}")
        spec = sample_spec(rng)
        key = json.dumps(spec)
        if key in seen or split_of(spec, test_fraction) != split:
            continue
        seen.add(key)
        yield example(spec, rng, num_tests)


class CodeTask(TaskBuilder, skip_registration=True):
    """TFDS builder of the generated problems: `CodeTask(data_dir=d, seed=0, train_size=2000)`."""

    TASK = "code"

    def __init__(
        self,
        *,
        data_dir: str,
        seed: int = 0,
        train_size: int = 2000,
        test_size: int = 200,
        num_tests: int = 6,
        test_fraction: float = 0.1,
    ):
        super().__init__(data_dir=data_dir, seed=seed, train_size=train_size, test_size=test_size, num_tests=num_tests, test_fraction=test_fraction)  # fmt: skip

    def generate(self, split: str) -> Iterator[dict]:
        o = self.options
        size = o["train_size"] if split == "train" else o["test_size"]
        yield from examples(split, size, o["seed"], o["num_tests"], o["test_fraction"])
