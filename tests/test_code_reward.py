"""The code_tests reward: extraction, exact pass fractions, reward hacks that must not pay, hostile
programs in one batch (all scored 0, nothing left behind), the batch budget, and that no model text
is ever evaluated in the trainer's process.
"""

from __future__ import annotations

import builtins
import math
import time

import numpy as np
import pytest
import sandbox_checks as sc
from hypothesis import given, settings
from hypothesis import strategies as st

from r1jax.rewards import build
from r1jax.rewards.code import MAX_CODE_CHARS, extract_code, score
from r1jax.rewards.sandbox.runner import Limits, Sandbox

ADD_STDIO = {
    "type": "stdio",
    "tests": [
        {"input": "2\n1 2\n", "output": "3\n"},
        {"input": "3\n5 5 -1\n", "output": "9"},
        {"input": "1\n7\n", "output": "7\n"},
        {"input": "0\n\n", "output": "0\n"},
    ],
}
ADD_ASSERT = {
    "type": "assert",
    "setup": "import math",
    "tests": [
        "assert add(1, 2) == 3",
        "assert add(-1, 1) == 0",
        "assert math.isclose(add(0.5, 0.25), 0.75)",
    ],
}
SUM_PROGRAM = "import sys\nd = sys.stdin.read().split()\nprint(sum(map(int, d[1:1 + int(d[0])])))"


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(Limits(wall_s=2.0, cpu_s=1, memory_bytes=256 << 20, processes=8), workers=2)


@pytest.fixture(autouse=True)
def clean():
    yield
    sc.assert_clean()


@pytest.mark.parametrize(
    "completion, code",
    [
        (
            "<think>hm</think> <answer>```python\nprint(1)\n```\n```text\n1\n```</answer>",
            "print(1)",
        ),
        ("<answer>\nprint(2)\n</answer>", "print(2)"),
        ("a ```py\nprint(3)\n``` then ```\nprint(4)\n``` done", "print(4)"),
        ("```python\nprint(5)\n```\n```output\n5\n```", "print(5)"),
        ("```print(6)```", "print(6)"),
        ("<answer>x</answer> ```\nprint(7)\n```", "x"),  # the answer block wins
        ("<answer></answer>", None),
        ("no code at all", None),
        ("```python\nprint(8)\n", None),  # unclosed fence
    ],
)
def test_extract_code(completion, code):
    assert extract_code(completion) == code


TOKENS = ["`", "``", "```", "\n", "python", "<answer>", "</answer>", "x", " ", "\u0660"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=100).map("".join))
def test_extract_code_never_raises(text):
    out = extract_code(text)
    assert out is None or isinstance(out, str)


@pytest.mark.parametrize(
    "text", ["```" * 100_000, "<answer>" * 50_000 + "</answer>" * 50_000, "`" * 10**6]
)
def test_extract_code_is_linear_on_long_inputs(text):
    t0 = time.perf_counter()
    extract_code(text)
    assert time.perf_counter() - t0 < 1.0


def test_pass_fractions_stdio(sandbox):
    wrong_on_empty = "import sys\nd = sys.stdin.read().split()\nxs = list(map(int, d[1:]))\nprint(sum(xs) // len(xs) * len(xs))"
    off_by_one = SUM_PROGRAM.replace("print(sum(", "print(1 + sum(")
    codes = [SUM_PROGRAM, wrong_on_empty, off_by_one, "syntax error here"]
    frac = score(sandbox, codes, [ADD_STDIO] * 4, "fraction", budget_s=60)
    # wrong_on_empty: 3 -> 2 (floor division), 9 -> 9, 7 -> 7, n=0 -> ZeroDivisionError
    np.testing.assert_array_equal(frac, np.array([1.0, 0.5, 0.0, 0.0], np.float32))
    binary = score(sandbox, codes, [ADD_STDIO] * 4, "binary", budget_s=60)
    np.testing.assert_array_equal(binary, np.array([1.0, 0.0, 0.0, 0.0], np.float32))


def test_pass_fractions_and_hacks_with_asserts(sandbox):
    codes = [
        "def add(a, b):\n    return a + b",
        "def add(a, b):\n    return int(a + b)",  # fails the float test only
        "import sys\nsys.exit(0)",  # exits before the assert
        "import os\nos._exit(0)",
        "def add(a, b):\n    return 0\nprint('PASS')\nraise SystemExit(0)",
        "import sys\nprint(sys.stdin.read())\nsys.exit(0)",  # echo stdin: the nonce is not there
        "add = lambda a, b: a + b\nimport builtins\nbuiltins.AssertionError = None",
    ]
    got = score(sandbox, codes, [ADD_ASSERT] * len(codes), "fraction", budget_s=60)
    np.testing.assert_allclose(got, [1.0, 2 / 3, 0, 0, 0, 0, 1.0], rtol=1e-6)


def test_no_tests_is_nan_and_no_or_huge_code_is_zero(sandbox):
    codes = [SUM_PROGRAM, None, "print(1)\n" * (MAX_CODE_CHARS // 9 + 1)]
    truths = [{"type": "stdio", "tests": []}, ADD_STDIO, ADD_STDIO]
    got = score(sandbox, codes, truths, "fraction", budget_s=60)
    assert math.isnan(got[0]) and got[1] == 0.0 and got[2] == 0.0


def test_identical_candidates_run_once(sandbox, monkeypatch):
    seen = []
    real = sandbox.run_many
    monkeypatch.setattr(
        sandbox, "run_many", lambda jobs, *a, **k: seen.append(len(jobs)) or real(jobs, *a, **k)
    )
    got = score(sandbox, [SUM_PROGRAM] * 8, [ADD_STDIO] * 8, "fraction", budget_s=60)
    assert seen == [len(ADD_STDIO["tests"])] and (got == 1.0).all()


def test_hostile_batch_through_the_registered_reward(tmp_path):
    """Every hostile program would print the expected "42" if unconstrained; all must score 0."""
    (reward,) = build(
        ["code_tests(mode='fraction', wall_s=2.0, cpu_s=1, memory_mb=256, budget_s=30)"]
    )
    secret = tmp_path / "secret"
    secret.write_text("42")
    hostile = {
        "cpu": "import time\nwhile time.process_time() < 3: pass\nprint(42)",
        "sleep": "import time\ntime.sleep(30)\nprint(42)",
        "memory": "b = b'x' * (400 << 20)\nprint(42)",
        "output": "import sys\nwhile True: sys.stdout.write('42\\n' * 10000)",
        "fork": f"import os, time\nfor _ in range(40):\n    if os.fork() == 0:\n        os.setsid(); time.sleep(60)  # {sc.MARKER}\nprint(42)",
        "read": f"print(open({str(secret)!r}).read())",
        "net": "import socket\nsocket.create_connection(('127.0.0.1', 1), timeout=1)\nprint(42)",
        "file": "open('big', 'wb').write(b'x' * (4 << 20))\nprint(42)",
    }
    completions = ["<answer>print(42)</answer>"] + [
        f"<answer>{p}</answer>" for p in hostile.values()
    ]
    truth = {"type": "stdio", "tests": [{"input": "", "output": "42\n"}]}
    examples = [{"task": "code", "ground_truth": truth}] * len(completions)
    got = reward(completions, examples)
    assert got[0] == 1.0
    assert dict(zip(hostile, got[1:].tolist())) == dict.fromkeys(hostile, 0.0)


def test_budget_cuts_the_batch_and_scores_unfinished_as_zero():
    (reward,) = build(["code_tests(wall_s=10.0, budget_s=1.5, workers=2)"])
    truth = {"type": "stdio", "tests": [{"input": "", "output": "42\n"}]}
    completions = [
        f"<answer>import time\ntime.sleep(30)\nprint(42) # {i}</answer>" for i in range(5)
    ]
    t0 = time.monotonic()
    got = reward(completions, [{"ground_truth": truth}] * 5)
    assert time.monotonic() - t0 < 1.5 + 1.5
    assert (got == 0.0).all()


def test_model_text_is_never_evaluated_in_the_trainer(sandbox, monkeypatch):
    marker = f"MODEL_TEXT_{sc.MARKER}"
    calls = []
    for name in ("eval", "exec", "compile"):
        real = getattr(builtins, name)

        def spy(src, *a, _real=real, **k):
            if marker in str(src if not isinstance(src, bytes) else src.decode("latin-1")):
                calls.append(src)
            return _real(src, *a, **k)

        monkeypatch.setattr(builtins, name, spy)
    stdio_code = f"# {marker}\n{SUM_PROGRAM}"
    assert_code = f"# {marker}\ndef add(a, b):\n    return a + b"
    assert_truth = {**ADD_ASSERT, "tests": [f"assert add(1, 1) == 2  # {marker}"]}
    for code, truth in ((stdio_code, ADD_STDIO), (assert_code, assert_truth)):
        assert score(sandbox, [code], [truth], "fraction", budget_s=60)[0] == 1.0
    assert calls == []
