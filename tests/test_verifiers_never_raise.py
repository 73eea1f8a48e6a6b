"""Verifiers never raise (issue 12): every registered reward and every public function of every
reward module, on hostile completions and hostile examples, returns (NaN or 0 is fine) instead.

Which functions are covered is checked against the modules themselves: a new public function in a
reward module fails `test_every_public_function_is_covered` until it is added here. Jittable token
forms take arrays the trainer builds (not text) and are covered by tests/test_rewards_jax.py.
"""

import importlib
import inspect
import math
import pkgutil

import fuzz_inputs as fi
import numpy as np
import pytest
import rm_dirs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import r1jax.rewards as pkg
from r1jax.rewards import (
    arithmetic,
    code,
    countdown,
    countdown_trace,
    general_match,
    math_answer,
    numeric,
    oracle,
    registry,
)
from r1jax.rewards.sandbox.runner import Result

_SETTINGS = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck))
NOT_VERIFIERS = {"registry", "token_tables", "sympy_worker"}  # machinery, not scoring of output
# token forms (arrays -> arrays, inside jit) and the sandboxed runner's batch driver
ARRAY_FORMS = {"arithmetic.token_score", "format.strict_format_tokens", "length.overlong_value"}
ARRAY_FORMS |= {  # the reward model's jittable form (tests/test_rm_reward.py compares it to the host)
    f"reward_model_jax.{n}"
    for n in ("completion_keep", "normalise", "rm_inputs", "score_rollouts", "stats_init")
    + ("stats_update", "update_and_normalise", "view_ids")
}
# loading a reward model and comparing tokenizers read no model output
MACHINERY = {"reward_model.load", "reward_model.tokenizer_mismatch"}

_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([5000, 40, 63]).map(lambda e: 10**e),  # 10**5000 has no str() in 3.11+
    st.sampled_from([float("nan"), float("inf"), -0.0, 22.5, -(2**63)]),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(fi.PAYLOADS + ["", "42", "-1", "\\frac{1}{2}", "[1, 2", "7:32", "stdio"]),
)
_JUNK = st.recursive(
    _LEAF,
    lambda c: st.one_of(st.lists(c, max_size=20), st.dictionaries(st.text(max_size=8), c)),
    max_leaves=40,
)
_KEYS = ["ground_truth", "answer", "task", "question", "_completion_tokens"]
_GT_KEYS = ["numbers", "target", "answer", "tests", "type", "kind", "setup"]
_NUMBERS = st.lists(st.one_of(st.integers(-(10**13), 10**13), _LEAF), max_size=40)
_TESTS = st.lists(st.one_of(st.fixed_dictionaries({"input": _LEAF, "output": _LEAF}), _JUNK))


def hostile_example() -> st.SearchStrategy[dict]:
    """Examples as a dataset could hold them: missing keys, wrong types, huge or NaN values."""
    gt = st.one_of(
        _JUNK,
        st.fixed_dictionaries({}, optional={k: _JUNK for k in _GT_KEYS}),
        st.fixed_dictionaries({"numbers": _NUMBERS, "target": _LEAF}),
        st.fixed_dictionaries({"type": st.sampled_from(["stdio", "assert", "x"]), "tests": _TESTS}),
    )
    return st.fixed_dictionaries({}, optional={k: _JUNK for k in _KEYS} | {"ground_truth": gt})


def hostile_completion() -> st.SearchStrategy[str]:
    """fuzz_inputs' hostile text, capped in size (the pure bounds are fuzzed there)."""
    return fi.hostile_text().map(lambda t: t[:5000])


@pytest.fixture(scope="module")
def rewards(tmp_path_factory, tiny_model_cfg):
    """Every registered reward with its default arguments (code_tests with a small budget), and
    the reward model on a tiny randomly initialised one with a 64-token window (hostile text is
    longer: those rows must score NaN, not raise)."""
    specs = {name: name for name in registry.names()}
    specs["code_tests"] = "code_tests(budget_s=5.0, wall_s=1.0)"
    rm = rm_dirs.tiny_rm_dir(str(tmp_path_factory.mktemp("rm")), tiny_model_cfg, max_len=64)
    specs["reward_model"] = f"reward_model(path='{rm}', on='all', batch=4)"
    return {name: registry.build([spec])[0] for name, spec in specs.items()}


def _first_number(ex: dict):
    gt = ex.get("ground_truth")
    return gt.get("numbers") if isinstance(gt, dict) else ex.get("answer")


# module.function -> call(text, example); every call must return without raising
CALLS = {
    "arithmetic.host_score": lambda t, ex: arithmetic.host_score(t, ex.get("answer")),
    "arithmetic.targets": lambda t, ex: arithmetic.targets([ex]),
    "code.extract_code": lambda t, ex: code.extract_code(t),
    "code.normalize_output": lambda t, ex: code.normalize_output(t),
    "code.passed": lambda t, ex: [
        code.passed(Result("ok", 0, t), t),
        code.passed(Result("ok", 0, t), ("nonce", t)),
    ],
    "countdown.countdown_score": lambda t, ex: countdown.countdown_score(
        t, _first_number(ex), ex.get("answer"), 0.1
    ),
    "countdown_trace.trace_stats": lambda t, ex: countdown_trace.trace_stats(t, ex.get("answer")),
    "general_match.token_f1": lambda t, ex: general_match.token_f1(t, t[::-1]),
    "general_match.edit_similarity": lambda t, ex: general_match.edit_similarity(t[:300], "a b"),
    "general_match.general_output": lambda t, ex: general_match.general_output(t),
    "math_answer.normalize": lambda t, ex: math_answer.normalize(t),
    "math_answer.plan": lambda t, ex: (math_answer.plan(t, "1"), math_answer.plan("1", t)),
    "numeric.parse_number": lambda t, ex: numeric.parse_number(t),
    "numeric.numeric_equal": lambda t, ex: numeric.numeric_equal(t, numeric.gold_answer(ex)),
    "numeric.last_number": lambda t, ex: numeric.last_number(t),
    "numeric.gold_answer": lambda t, ex: numeric.gold_answer(ex),
    "oracle.final_answer": lambda t, ex: oracle.final_answer(t),
    "oracle.harmlessness": lambda t, ex: oracle.harmlessness(t),
}
# raise by contract (documented), with the only exception type they may raise
RAISES = {
    # the oracle judges dataset examples: one without a reference output is a data error
    "oracle.ideal_output": (ValueError, lambda t, ex: oracle.ideal_output(ex)),
    "oracle.helpfulness": (ValueError, lambda t, ex: oracle.helpfulness(t, ex)),
    "oracle.score": (ValueError, lambda t, ex: oracle.score([t, ""], ex)),
    "countdown.parse_countdown": (
        countdown.CountdownError,
        lambda t, ex: countdown.parse_countdown(t, _first_number(ex)),
    ),
    "code.jobs_for": (  # score() turns this into NaN for the example: tested through code_tests
        (ValueError, TypeError, KeyError, AttributeError),
        lambda t, ex: code.jobs_for(t, ex.get("ground_truth")),
    ),
}
# need the worker: fewer examples (tests/test_verifier_fuzz.py fuzzes their text more)
WORKER = {
    "math_answer.equivalence": lambda t, ex: math_answer.equivalence(
        [t, t], [numeric.gold_answer(ex), t], timeout_s=1.0
    ),
    "math_answer.math_equal": lambda t, ex: math_answer.math_equal(
        t, numeric.gold_answer(ex), timeout_s=1.0
    ),
}


def _public_functions() -> set[str]:
    out = set()
    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.ispkg or mod.name in NOT_VERIFIERS:
            continue
        m = importlib.import_module(f"r1jax.rewards.{mod.name}")
        for name, obj in vars(m).items():
            if name.startswith("_") or not inspect.isfunction(obj) or obj.__module__ != m.__name__:
                continue
            if name not in registry._REGISTRY and obj not in registry._REGISTRY.values():
                out.add(f"{mod.name}.{name}")
    return out


def test_every_public_function_is_covered():
    covered = set(CALLS) | set(RAISES) | set(WORKER) | ARRAY_FORMS | MACHINERY | {"code.score"}
    assert _public_functions() == covered, "add the new public function to a table here"


@settings(max_examples=60, **_SETTINGS)
@given(text=hostile_completion(), ex=hostile_example())
def test_public_functions_never_raise(text, ex):
    for call in CALLS.values():
        call(text, ex)
    for allowed, call in RAISES.values():
        try:
            call(text, ex)
        except allowed:
            pass


@settings(max_examples=8, **_SETTINGS)
@given(text=hostile_completion(), ex=hostile_example())
def test_worker_functions_never_raise(text, ex):
    for call in WORKER.values():
        call(text, ex)


def _check_reward(reward, texts: list[str], examples: list[dict]) -> None:
    got = reward(texts, examples)
    assert got.shape == (len(texts),) and got.dtype == np.float32
    ok = np.isnan(got) | ((got >= reward.low) & (got <= reward.high))
    assert ok.all(), f"{reward.name} returned {got} outside [{reward.low}, {reward.high}]"


@settings(max_examples=30, **_SETTINGS)
@given(text=hostile_completion(), ex=hostile_example())
def test_rewards_never_raise(rewards, text, ex):
    """Every registered reward (code_tests included: its code runs in the sandbox)."""
    for name, reward in rewards.items():
        if name != "math_accuracy":  # a worker round trip per call: below, with fewer examples
            _check_reward(reward, [text, text], [ex, {}])


@settings(max_examples=8, **_SETTINGS)
@given(text=hostile_completion(), ex=hostile_example())
def test_math_reward_never_raises(rewards, text, ex):
    _check_reward(rewards["math_accuracy"], [text], [ex])


@pytest.mark.parametrize("n", [1, 16, 17, 40])
def test_countdown_score_with_many_numbers(n):
    """The issue's bug: more than MAX_NUMBERS numbers raised ValueError; now it scores 0."""
    numbers = list(range(1, n + 1))
    expr = "+".join(map(str, numbers))
    want = 1.0 if n <= countdown.MAX_NUMBERS else 0.0
    assert countdown.countdown_score(expr, numbers, sum(numbers)) == want
    assert countdown.countdown_score(expr, numbers, sum(numbers) + 0.5) == 0.0
    (reward,) = registry.build(["countdown_accuracy"])
    ex = {"ground_truth": {"numbers": numbers, "target": sum(numbers)}}
    got = reward([f"<answer>{expr}</answer>"], [ex])[0]
    assert got == want if n <= countdown.MAX_NUMBERS else math.isnan(got)
