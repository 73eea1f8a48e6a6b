"""Property-based fuzzing of every verifier with hostile text (issue 7): never raises, stays within
its time bound, never executes anything. Few examples here; benchmarks/verifier_fuzz.py runs many.
"""

import os
import time

import fuzz_inputs as fi
import pytest
from hypothesis import HealthCheck, given, settings

from r1jax.rewards import sympy_worker

PURE = [name for name, (_, _, uses_sympy) in fi.VERIFIERS.items() if not uses_sympy]
SYMPY = [name for name, (_, _, uses_sympy) in fi.VERIFIERS.items() if uses_sympy]
_SETTINGS = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(autouse=True)
def _no_sentinel():
    assert not os.path.exists(fi.SENTINEL)
    yield
    assert not os.path.exists(fi.SENTINEL), "a payload was executed"


def _check(name: str, text: str) -> None:
    fn, bound, uses_sympy = fi.VERIFIERS[name]
    if uses_sympy:  # the workers' library import (seconds on a loaded machine) is not the bound's
        assert sympy_worker.pool(2).warm() == 2
    t0 = time.perf_counter()
    fn(text)
    elapsed = time.perf_counter() - t0
    assert elapsed < bound, f"{name} took {elapsed:.2f}s > {bound}s on {text[:80]!r}"
    assert not os.path.exists(fi.SENTINEL), f"{name} executed {text[:80]!r}"


@pytest.mark.parametrize("name", PURE)
@settings(max_examples=40, **_SETTINGS)
@given(text=fi.hostile_text())
def test_pure_verifiers_fuzz(name, text):
    _check(name, text)


@pytest.mark.parametrize("name", SYMPY)
@settings(max_examples=10, **_SETTINGS)
@given(text=fi.hostile_text())
def test_sympy_verifiers_fuzz(name, text):
    _check(name, text)


@settings(max_examples=10, **_SETTINGS)
@given(text=fi.latex_math())
def test_sympy_on_wellformed_math(text):
    """Expressions that pass the converter and reach sympy (powers, radicals, fractions)."""
    _check("math_equal_pred", text)


@pytest.mark.parametrize("text", fi.EXPLICIT, ids=range(len(fi.EXPLICIT)))
@pytest.mark.parametrize("name", list(fi.VERIFIERS))
def test_explicit_hostile_inputs(name, text):
    _check(name, text)


def test_worker_refuses_raw_payloads():
    """Defence in depth: raw payloads sent straight to the worker (skipping the trainer's checks)
    run no code there, and Math-Verify reads none of them as an answer."""
    requests = [{"pred": p, "gold": "1"} for p in fi.PAYLOADS]
    requests += [{"pred": "1", "gold": p} for p in fi.PAYLOADS]
    statuses = sympy_worker.pool(1).run(requests, timeout_s=fi.MATH_TIMEOUT_S)
    assert statuses == ["bad_pred"] * len(fi.PAYLOADS) + ["bad_gold"] * len(fi.PAYLOADS)
