"""eval/readability.py: the rule shares and the repeat statistics, against hand-counted samples."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from r1jax.eval import readability


def _completion(lines: list[str], answer: str = "(1+2)*4", summary: str | None = None) -> str:
    body = "".join(f"{ln}\n" for ln in lines)
    summary = summary if summary is not None else f"so {answer} = 12"
    return f" <think>\n{body}</think>\n{summary}\n<answer>{answer}</answer>"


HIT = "1+2=3,3*4=12 vs 12 yes"
A, B, C = "1*2=2,2+4=6 vs 12 no", "4-2=2,2*1=2 vs 12 no", "1+4=5,5+2=7 vs 12 no"
SAMPLES = [
    _completion([HIT]),  # readable, 1 attempt
    _completion([A, A, HIT]),  # repeated, gap 1, 3 attempts
    _completion([A, B, A, HIT]),  # repeated, gap 2, 4 attempts
    _completion([A, B, C, HIT]),  # readable, 4 attempts
    "just some words",  # tags, 0 attempts
    _completion([HIT], summary="so it is done"),  # summary_answer, 1 attempt
]


def test_breakdown_counts_rules_repeats_and_gaps():
    got = readability.breakdown(SAMPLES)
    assert got["samples"] == 6
    share = got["rule_share"]
    assert share["readable"] == pytest.approx(2 / 6)
    assert share["repeated"] == pytest.approx(2 / 6)
    assert share["tags"] == pytest.approx(1 / 6)
    assert share["summary_answer"] == pytest.approx(1 / 6)
    assert share["summary"] == share["language"] == 0.0
    assert sum(share.values()) == pytest.approx(1.0)
    assert got["samples_by_attempts"] == {"0": 1, "1": 2, "3": 1, "4": 2}
    assert got["repeated_share_by_attempts"] == {"0": 0.0, "1": 0.0, "3": 1.0, "4": 0.5}
    assert got["first_repeat_gap"] == {"1": 1, "2": 1}


def test_long_searches_share_one_bucket():
    lines = [f"{i}+1={i + 1},{i + 1}*1={i + 1} vs 99 no" for i in range(readability.LONG + 2)]
    got = readability.breakdown([_completion(lines + [lines[0]])])
    assert got["samples_by_attempts"] == {f"{readability.LONG}+": 1}
    assert got["first_repeat_gap"] == {str(readability.LONG + 2): 1}


def test_empty_and_wrong_files_say_so():
    with pytest.raises(ValueError, match="no completions"):
        readability.breakdown([])
    with pytest.raises(ValueError, match="records"):
        readability.samples_by_task({"summary": {}})


def test_cli_reads_both_evaluation_layouts(tmp_path):
    record = {"samples": SAMPLES}
    stage = tmp_path / "eval_after.json"  # a stage's own evaluation: records per task
    stage.write_text(json.dumps({"records": {"countdown": [record], "arithmetic": [record]}}))
    single = tmp_path / "eval_countdown.json"  # the evaluation stage: one task's list
    single.write_text(json.dumps({"records": [record]}))
    cmd = [sys.executable, "-m", "r1jax.eval.readability", f"--evals={stage},{single}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["task"], r["samples"]) for r in rows] == [("countdown", 6), ("all", 6)]
    assert all(r["rule_share"]["repeated"] == pytest.approx(2 / 6) for r in rows)
    want = readability.independent_repeat_share([SAMPLES])
    assert all(r["independent_repeat_share_by_attempts"] == pytest.approx(want) for r in rows)


def test_independent_repeat_share_against_hand_computed_values():
    assert readability.distinct_probability([0.25] * 4, 2) == pytest.approx(12 / 16)
    assert readability.distinct_probability([0.25] * 4, 3) == pytest.approx(24 / 64)
    assert readability.distinct_probability([0.5, 0.5], 3) == 0.0
    assert readability.distinct_probability([0.7, 0.3], 1) == pytest.approx(1.0)
    # one problem: A A HIT and A B HIT pool to A 3/6, B 1/6, HIT 2/6; three distinct draws
    # in any order: 3! * (1/2 * 1/6 * 1/3) = 1/6, so a repeat 5/6 of the time
    group = [_completion([A, A, HIT]), _completion([A, B, HIT])]
    assert readability.independent_repeat_share([group]) == {"3": pytest.approx(5 / 6)}
    two = readability.independent_repeat_share([group, [_completion([HIT])]])
    assert two == {"1": 0.0, "3": pytest.approx(5 / 6)}
