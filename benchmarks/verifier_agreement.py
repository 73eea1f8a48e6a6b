"""Agreement of r1jax's math_accuracy with Math-Verify's own decisions; prints one JSON object.

    python benchmarks/verifier_agreement.py [--seed 0] [--out benchmarks/results/verifier_agreement.json]

The cases (a few hundred (pred, gold) pairs) are written here or generated from a seed: rationals in
six spellings (integer, a/b, \\frac, \\dfrac, decimal, mixed number) against the same value, a value
off by a random rational, and the negation; a + b sqrt(k) against itself with the terms swapped and
off by a rational; factored against expanded quadratics and one coefficient off; and a hand-written
table of the forms of issue 12 (sets, intervals, unions, \\pm, equations, tuples, times, units,
percent words, thousands separators, text answers, infinity, matrices).

"Math-Verify's decision" is the library used as documented, in this process with its defaults:
`verify(parse("\\boxed{gold}"), parse("\\boxed{pred}"))`. r1jax's is `math_answer.math_equal`
(extraction contract, exact numbers, times, 50-digit numerics, the worker with its time limit). A
case counts as decided by Math-Verify when it parses the gold; the agreement is over those. Each
disagreement is listed with its category so that every one can be judged by hand.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import time
from collections import Counter
from fractions import Fraction

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from r1jax.rewards import math_answer as ma  # noqa: E402

TABLE = [  # (category, pred, gold)
    *[("mixed", p, g) for p, g in [("2\\frac{1}{2}", "1"), ("2\\frac{1}{2}", "5/2"), ("3 \\frac{1}{2}", "3/2"), ("3 \\frac{1}{2}", "7/2"), ("-1\\frac{3}{4}", "-\\frac{7}{4}")]],
    *[("set", p, g) for p, g in [("\\{3,1,2\\}", "\\{1,2,3\\}"), ("\\{1,2\\}", "\\{1,2,3\\}"), ("1, 2, 3", "\\{1,2,3\\}"), ("\\{1,2,4\\}", "\\{1,2,3\\}"), ("\\emptyset", "\\{\\}"), ("\\{2\\}", "2")]],
    *[("interval", p, g) for p, g in [("[1,2)\\cup(3,4]", "[1,2)\\cup(3,4]"), ("(3,4]\\cup[1,2)", "[1,2)\\cup(3,4]"), ("[1,2]\\cup(3,4]", "[1,2)\\cup(3,4]"), ("(-\\infty,2]", "(-\\infty, 2]"), ("(-\\infty,2)", "(-\\infty, 2]"), ("[0,\\infty)", "[0, \\infty)"), ("x \\in [1,2)", "[1,2)"), ("(1,2)", "(1, 2)")]],
    *[("pm", p, g) for p, g in [("2,-2", "\\pm 2"), ("2", "\\pm 2"), ("1+\\sqrt{2}, 1-\\sqrt{2}", "1\\pm\\sqrt{2}"), ("1+\\sqrt{2}", "1\\pm\\sqrt{2}"), ("\\pm\\sqrt{3}", "\\sqrt{3}, -\\sqrt{3}")]],
    *[("equation", p, g) for p, g in [("1", "f(x)=1"), ("2", "f(x)=1"), ("(3,2)", "(p,q)=(3,2)"), ("(2,3)", "(p,q)=(3,2)"), ("(p,q)=(3,2)", "(3,2)"), ("x=5", "5"), ("5", "x=5"), ("y=2x+1", "y=2x+1"), ("y=1+2x", "y=2x+1"), ("y=2x-1", "y=2x+1"), ("x=2, y=3", "(2,3)")]],
    *[("time", p, g) for p, g in [("7:32", "7:32"), ("07:32", "7:32"), ("7:33", "7:32"), ("2", "10:05"), ("14:64", "7:32"), ("10:05", "10:05")]],
    *[("units", p, g) for p, g in [("28 percentage", "28"), ("29 percentage", "28"), ("3s", "3"), ("4s", "3"), ("5\\text{ cm}^2", "5"), ("12 inches", "12"), ("90^\\circ", "90"), ("50\\%", "50"), ("\\$5", "5"), ("4 \\text{ days}", "4"), ("12 percent", "12"), ("7 \\text{ meters}", "8")]],
    *[("thousands", p, g) for p, g in [("1,000", "1000"), ("1,000", "1"), ("1{,}234{,}567", "1234567"), ("1,234,567", "1,234,568"), ("10,000", "10000"), ("1\\,000", "1000")]],
    *[("exact", p, g) for p, g in [("0.333333", "\\frac{1}{3}"), ("0.5", "\\frac{1}{2}"), ("1e5", "10^5"), ("3.14", "\\pi"), ("1.414214", "\\sqrt{2}"), ("\\sqrt{2}+10^{-30}", "\\sqrt{2}"), ("0.1", "\\frac{1}{10}")]],
    *[("text", p, g) for p, g in [("\\text{(A)}", "A"), ("B", "A"), ("\\text{Monday}", "\\text{Monday}"), ("\\text{Tuesday}", "\\text{Monday}"), ("\\infty", "\\infty"), ("-\\infty", "\\infty")]],
    *[("matrix", p, g) for p, g in [("\\begin{pmatrix}1\\\\2\\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}"), ("\\begin{pmatrix}1\\\\3\\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}")]],
    *[("expr", p, g) for p, g in [("(x+1)^2", "x^2+2x+1"), ("\\pi r^2", "r^2\\pi"), ("\\frac{\\sqrt{3}}{2}", "\\sin(\\pi/3)"), ("\\sqrt{3+2\\sqrt{2}}", "1+\\sqrt{2}"), ("e^{i\\pi}", "-1"), ("\\binom{5}{2}", "10"), ("3!", "6"), ("\\log_2 8", "3"), ("2^{10}", "1024"), ("9^{9^{9}}", "1")]],
]  # fmt: skip


def _spellings(x: Fraction) -> list[str]:
    sign, a = ("-" if x < 0 else ""), abs(x)
    out = [f"{x.numerator}/{x.denominator}", f"{sign}\\frac{{{a.numerator}}}{{{a.denominator}}}"]
    out.append(f"{sign}\\dfrac{{{a.numerator}}}{{{a.denominator}}}")
    whole, rest = divmod(a.numerator, a.denominator)
    if whole and rest:
        out.append(f"{sign}{whole}\\frac{{{rest}}}{{{a.denominator}}}")
    if x.denominator == 1:
        out.append(str(x.numerator))
    d = x.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    if d == 1:
        digits = next(k for k in range(40) if (x * 10**k).denominator == 1)
        out.append(f"{float(x):.{digits}f}")
    return out


def generated(rng: random.Random) -> list[tuple[str, str, str]]:
    cases = []
    for _ in range(40):
        x = Fraction(rng.randint(-200, 200), rng.choice([1, 2, 3, 4, 5, 8, 10, 16, 25, 7]))
        delta = Fraction(rng.choice([-1, 1]) * rng.randint(1, 50), rng.randint(1, 100))
        s = _spellings(x)
        cases.append(("rational_same", rng.choice(s), rng.choice(s)))
        cases.append(("rational_off", rng.choice(_spellings(x + delta)), rng.choice(s)))
        if x:
            cases.append(("rational_neg", rng.choice(_spellings(-x)), rng.choice(s)))
    for _ in range(25):
        a, b = rng.randint(-9, 9), rng.choice([-3, -2, -1, 1, 2, 3, 5])
        k = rng.choice([2, 3, 5, 6, 7])
        gold = f"{a}+{b}\\sqrt{{{k}}}"
        cases.append(("surd_same", f"{b}\\sqrt{{{k}}}+{a}", gold))
        cases.append(("surd_off", f"{a + rng.choice([-1, 1])}+{b}\\sqrt{{{k}}}", gold))
    for _ in range(20):
        a, b = rng.randint(-9, 9), rng.randint(-9, 9)
        expanded = f"x^2+{a + b}x+{a * b}".replace("+-", "-")
        cases.append(("poly_same", f"(x+{a})(x+{b})".replace("+-", "-"), expanded))
        off = f"x^2+{a + b + 1}x+{a * b}".replace("+-", "-")
        cases.append(("poly_off", f"(x+{a})(x+{b})".replace("+-", "-"), off))
    return cases


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    logging.disable(logging.CRITICAL)
    from math_verify import parse, verify

    cases = TABLE + generated(random.Random(args.seed))
    rows, t_ours, t_lib = [], 0.0, 0.0
    ma.math_equal("1", "x+1", timeout_s=30.0)  # start the worker pool outside the timing
    for category, pred, gold in cases:
        t0 = time.perf_counter()
        gold_parsed = parse("\\boxed{" + gold + "}")
        lib = bool(gold_parsed) and verify(gold_parsed, parse("\\boxed{" + pred + "}"))
        t1 = time.perf_counter()
        ours = ma.math_equal(pred, gold, timeout_s=5.0)
        t_lib, t_ours = t_lib + t1 - t0, t_ours + time.perf_counter() - t1
        decided = any(not isinstance(x, str) for x in gold_parsed)
        rows.append(
            dict(category=category, pred=pred, gold=gold, lib=lib, ours=ours, decided=decided)
        )
    decided = [r for r in rows if r["decided"]]
    agree = [r for r in decided if r["ours"] is not None and r["ours"] == r["lib"]]
    per_cat = Counter(r["category"].split("_")[0] for r in decided)
    per_cat_agree = Counter(r["category"].split("_")[0] for r in agree)
    result = {
        "benchmark": "verifier_agreement",
        "seed": args.seed,
        "cases": len(rows),
        "decided_by_math_verify": len(decided),
        "agree": len(agree),
        "agreement": round(len(agree) / max(len(decided), 1), 4),
        "per_category": {c: f"{per_cat_agree[c]}/{n}" for c, n in sorted(per_cat.items())},
        "ours_nan_where_math_verify_decides": sum(r["ours"] is None for r in decided),
        "mean_ms_per_case": {
            "r1jax_math_equal_with_worker": round(1000 * t_ours / len(rows), 2),
            "math_verify_in_process": round(1000 * t_lib / len(rows), 2),
        },
        "disagreements": [r for r in decided if r not in agree],
        "undecided_by_math_verify": [r for r in rows if not r["decided"]],
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
