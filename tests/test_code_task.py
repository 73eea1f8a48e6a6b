"""The generated code task and the JSONL import of MBPP / LiveCodeBench-shaped problem files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sandbox_checks as sc

from r1jax.data import code_task
from r1jax.data.code_jsonl import CodeJsonlTask, read_code_jsonl
from r1jax.data.tfds_base import check_example, load
from r1jax.rewards.code import score
from r1jax.rewards.sandbox.runner import Limits, Sandbox


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(Limits(wall_s=4.0, cpu_s=2), workers=2)


@pytest.fixture(autouse=True)
def clean():
    yield
    sc.assert_clean()


def test_generation_is_deterministic_prefix_stable_and_split_disjoint():
    a = list(code_task.examples("train", 40, seed=3))
    assert a == list(code_task.examples("train", 40, seed=3))
    assert a[:10] == list(code_task.examples("train", 10, seed=3))
    assert a != list(code_task.examples("train", 40, seed=4))
    train = {ex["id"] for seed in (0, 1) for ex in code_task.examples("train", 300, seed=seed)}
    test = {ex["id"] for ex in code_task.examples("test", 60, seed=5)}
    assert len(test) == 60 and not train & test
    for ex in a:
        check_example(ex)
        assert ex["task"] == "code" and 1 <= ex["difficulty"] <= 3
        assert len(ex["ground_truth"]["tests"]) == 6


def test_hidden_tests_are_not_all_the_same_answer():
    for ex in code_task.examples("train", 50, seed=0):
        outs = {t["output"] for t in ex["ground_truth"]["tests"]}
        assert len(outs) >= 2, ex["question"]


def test_expected_outputs_match_hand_computed_ones():
    spec = (("even",), ("lin", 3, -2), ("alt",))
    assert code_task.solve(spec, [1, 2, 4, 6]) == str((3 * 2 - 2) - (3 * 4 - 2) + (3 * 6 - 2))
    assert code_task.solve((("gt", 5), ("id",), ("max",)), [1, 2]) == "NONE"
    assert code_task.solve((("all",), ("mod", 7), ("sorted",)), [-1, 8, 3]) == "1 3 6"
    assert code_task.solve((("div", 3), ("sq",), ("distinct",)), [3, -3, 6, 1]) == "2"


def test_reference_programs_pass_their_hidden_tests_in_the_sandbox(sandbox):
    exs = list(code_task.examples("train", 12, seed=7)) + list(
        code_task.examples("test", 4, seed=7)
    )
    got = score(
        sandbox, [ex["answer"] for ex in exs], [ex["ground_truth"] for ex in exs], "fraction", 120
    )
    np.testing.assert_array_equal(got, np.ones(len(exs), np.float32))


def test_builder_round_trips_through_tfds(tmp_path):
    builder = code_task.CodeTask(data_dir=str(tmp_path), seed=1, train_size=20, test_size=5)
    train, test = load(builder, "train"), load(builder, "test")
    want = {ex["id"]: ex for ex in code_task.examples("train", 20, seed=1)}
    assert {ex["id"] for ex in train} == set(want)  # TFDS stores records in its own order
    assert all(ex == want[ex["id"]] for ex in train)
    assert len(test) == 5 and train[0]["ground_truth"]["type"] == "stdio"


MBPP = [
    {"task_id": 2, "text": "Write a function to add two numbers.", "code": "def add(a, b):\n    return a + b",
     "test_list": ["assert add(1, 2) == 3", "assert add(2, 2) == 4", "assert add(0, 0) == 0"], "test_setup_code": ""},
    {"task_id": 3, "text": "Write a function to compute the square root.", "code": "import math\ndef root(x):\n    return math.sqrt(x)",
     "test_list": ["assert root(4) == 2"], "test_setup_code": "import math", "challenge_test_list": []},
]  # fmt: skip
LCB = [
    {"question_id": "abc1", "question_content": "Read two integers and print their sum.", "difficulty": "easy",
     "public_test_cases": json.dumps([{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]),
     "private_test_cases": [{"input": "5 5\n", "output": "10\n", "testtype": "stdin"},
                            {"input": "x", "output": "y", "testtype": "functional"}]},
    {"question_id": "lc2", "question_content": "A LeetCode-style problem.", "difficulty": "hard",
     "public_test_cases": [{"input": "[1]", "output": "1", "testtype": "functional"}], "private_test_cases": []},
]  # fmt: skip


def _write(path, records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_mbpp_import_and_reference_solutions_pass(tmp_path, sandbox):
    exs = read_code_jsonl(_write(tmp_path / "mbpp.jsonl", MBPP), fmt="mbpp")
    assert [ex["ground_truth"]["type"] for ex in exs] == ["assert", "assert"]
    assert "assert add(1, 2) == 3" in exs[0]["question"] and "add(2, 2)" not in exs[0]["question"]
    assert exs[1]["ground_truth"]["setup"] == "import math"
    got = score(
        sandbox, [ex["answer"] for ex in exs], [ex["ground_truth"] for ex in exs], "fraction", 60
    )
    np.testing.assert_array_equal(got, [1.0, 1.0])
    wrong = score(
        sandbox,
        ["def add(a, b):\n    return a * b + 0 * 1 if a != 2 else 4"],
        [exs[0]["ground_truth"]],
        "fraction",
        60,
    )
    np.testing.assert_allclose(
        wrong, [2 / 3], rtol=1e-6
    )  # add(1,2)=2 fails; add(2,2)=4, add(0,0)=0 pass


def test_livecodebench_like_import(tmp_path, sandbox):
    exs = read_code_jsonl(
        _write(tmp_path / "lcb.jsonl", LCB), fmt="stdio", difficulty_field="difficulty"
    )
    assert len(exs) == 1  # the functional-only problem is skipped
    (ex,) = exs
    assert ex["difficulty"] == 1 and ex["id"].startswith("code-abc1-")
    assert ex["ground_truth"] == {
        "type": "stdio",
        "tests": [{"input": "1 2\n", "output": "3\n"}, {"input": "5 5\n", "output": "10\n"}],
    }
    got = score(
        sandbox, ["print(sum(map(int, input().split())))"], [ex["ground_truth"]], "fraction", 60
    )
    assert got[0] == 1.0


def test_configurable_field_names_and_clear_errors(tmp_path):
    recs = [{"prompt": "Echo the input.", "cases": [{"in": "a\n", "out": "a\n"}]}]
    path = _write(tmp_path / "custom.jsonl", recs)
    (ex,) = read_code_jsonl(
        path,
        fmt="stdio",
        question_field="prompt",
        tests_fields=("cases",),
        input_key="in",
        output_key="out",
        id_field=None,
    )
    assert ex["ground_truth"]["tests"] == [{"input": "a\n", "output": "a\n"}]
    pickled = _write(
        tmp_path / "pickled.jsonl", [{**LCB[0], "private_test_cases": "eJzLSM3JyQcABiwCFQ=="}]
    )
    with pytest.raises(
        ValueError,
        match=r"pickled.jsonl:1: field 'private_test_cases' is a string but not a JSON list",
    ):
        read_code_jsonl(pickled, fmt="stdio")
    with pytest.raises(ValueError, match=r"mbpp.jsonl:1: field 'text' is missing"):
        read_code_jsonl(_write(tmp_path / "mbpp.jsonl", [{"test_list": []}]), fmt="mbpp")


def test_jsonl_builder_splits_never_share_a_problem(tmp_path):
    records = [
        {**MBPP[0], "task_id": i, "text": f"Problem {i}: add two numbers."} for i in range(40)
    ]
    path = _write(tmp_path / "many.jsonl", records)
    builder = CodeJsonlTask(
        data_dir=str(tmp_path / "data"), path=path, fmt="mbpp", test_fraction=0.25
    )
    train, test = load(builder, "train"), load(builder, "test")
    assert len(train) + len(test) == 40 and test and train
    assert not {ex["question"] for ex in train} & {ex["question"] for ex in test}
    per_split = CodeJsonlTask(
        data_dir=str(tmp_path / "data2"),
        paths={"train": path, "test": _write(tmp_path / "t.jsonl", records[:5])},
        fmt="mbpp",
    )
    assert len(load(per_split, "train")) == 35
