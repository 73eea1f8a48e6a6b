"""Fuzzes every verifier with many hostile inputs; prints one JSON object.

    python benchmarks/verifier_fuzz.py [--examples 3000] [--sympy-examples 300] [--seed 0]

Inputs and verifiers are those of tests/test_verifier_fuzz.py (tests/fuzz_inputs.py): arbitrary
Unicode, mixes of tags, braces, operators, huge numbers (`9**9**9`, `9^{9^{9}}`, `1e999999`),
Unicode digits, code-execution payloads, nesting up to 20,000 deep, inputs up to 1 MB, and
well-formed LaTeX that reaches sympy. Each verifier also runs the fixed hostile list of the test.

Per verifier it reports the number of inputs, how many raised, how many exceeded the time bound,
the worst-case and 99th-percentile time per call, and the worst input (first 80 characters); and
whether any payload was executed (its sentinel file exists). Times are wall clock on whatever
machine runs it (the 2-core development machine is shared, so worst cases include noise).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
from hypothesis import HealthCheck, given, seed, settings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import fuzz_inputs as fi  # noqa: E402


def fuzz(name: str, examples: int, rng_seed: int) -> dict:
    fn, bound, _ = fi.VERIFIERS[name]
    times: list[float] = []
    errors: list[str] = []
    worst = ("", -1.0)

    def one(text: str) -> None:
        nonlocal worst
        t0 = time.perf_counter()
        try:
            fn(text)
        except Exception as e:  # noqa: BLE001 - counted and reported
            errors.append(f"{type(e).__name__}: {str(e)[:80]} on {text[:80]!r}")
        elapsed = time.perf_counter() - t0
        times.append(elapsed)
        if elapsed > worst[1]:
            worst = (text, elapsed)

    for text in fi.EXPLICIT:
        one(text)

    @seed(rng_seed)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(text=fi.hostile_text())
    def run(text: str) -> None:
        one(text)

    run()
    t = np.asarray(times)
    return {
        "inputs": len(times),
        "errors": len(errors),
        "first_errors": errors[:3],
        "over_bound": int((t >= bound).sum()),
        "bound_s": bound,
        "max_s": round(float(t.max()), 4),
        "p99_s": round(float(np.percentile(t, 99)), 4),
        "mean_s": round(float(t.mean()), 5),
        "worst_input": worst[0][:80],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=3000, help="per pure-Python verifier")
    parser.add_argument("--sympy-examples", type=int, default=300, help="per sympy verifier")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if os.path.exists(fi.SENTINEL):
        os.remove(fi.SENTINEL)
    t0 = time.perf_counter()
    results = {}
    for name, (_, _, uses_sympy) in fi.VERIFIERS.items():
        n = args.sympy_examples if uses_sympy else args.examples
        results[name] = fuzz(name, n, args.seed)
        print(f"{name}: {results[name]['inputs']} inputs", file=sys.stderr, flush=True)
    report = {
        "verifiers": results,
        "total_inputs": sum(r["inputs"] for r in results.values()),
        "total_errors": sum(r["errors"] for r in results.values()),
        "total_over_bound": sum(r["over_bound"] for r in results.values()),
        "payload_executed": os.path.exists(fi.SENTINEL),
        "math_timeout_s": fi.MATH_TIMEOUT_S,
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
