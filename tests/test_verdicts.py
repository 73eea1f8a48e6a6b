"""eval/verdicts.py: outcome shares and the last-digit check, against hand-counted samples."""

from __future__ import annotations

import json
import math

import pytest

from r1jax.data import cold_start
from r1jax.eval import verdicts

HIT = " <think>\n8+3=11,11*8=88 vs 48 no\n8*3=24,24*2=48 vs 48 yes\n</think>\nso 8*3*2 = 48\n<answer>8*3*2</answer>"
FALSE_YES = " <think>\n7+6=13,13+2=15 vs 44 no\n8+3=11,11*8=88 vs 48 yes\n</think>\nso (8+3)*8 = 48\n<answer>(8+3)*8</answer>"
GAVE_UP = (
    " <think>\n7+6=13,13+2=15 vs 44 no\ngive up\n</think>\nso 7+6+2 = 15\n<answer>7+6+2</answer>"
)
CUT = " <think>\n7+6=13,13+2=15 vs 44 no\n7*6=42,42+2=44 vs"
OTHER = " <think>\n7*6=42,42+2=44 vs 44 yes\n</think>\nso 7*6+3 = 44\n<answer>7*6+3</answer>"


def test_outcomes_and_verdict_lines_are_counted_by_hand():
    samples = [HIT, FALSE_YES, GAVE_UP, CUT, OTHER, FALSE_YES]
    got = verdicts.breakdown(samples, [True, False, False, False, False, False])
    assert got["samples"] == 6
    assert got["outcomes"] == {
        "correct": 1 / 6,
        "gave_up": 1 / 6,
        "false_yes": 2 / 6,
        "truncated": 1 / 6,
        "other": 1 / 6,
    }
    lines = got["verdict_lines"]
    # value != target: HIT's 88 vs 48 (no, same digit); FALSE_YES x2: 15 vs 44 (no), 88 vs 48
    # (yes, same digit); GAVE_UP's and CUT's 15 vs 44 (no); CUT's last line has no verdict
    assert lines["lines_value_not_target"] == 7
    assert lines["false_yes_lines"] == 2
    assert lines["false_yes_same_last_digit"] == 1.0
    assert lines["yes_given_same_last_digit"] == 2 / 3
    assert lines["yes_given_other_last_digit"] == 0.0


def test_checked_and_near_misses_read_only_verdict_lines():
    assert cold_start.checked("8+3=11,11*8=88 vs 48 no") == ("88", "48", "no")
    assert cold_start.checked("3+4=7 write 7") is None
    assert cold_start.near_misses(HIT) == 1 and cold_start.near_misses(FALSE_YES) == 0


def test_files_without_countdown_records_are_refused(tmp_path):
    with pytest.raises(ValueError, match="samples against"):
        verdicts.breakdown([HIT], [])
    with pytest.raises(ValueError, match="no Countdown"):
        verdicts.countdown_records({"records": {"arithmetic": []}})
    got = verdicts.breakdown([GAVE_UP], [False])["verdict_lines"]
    assert math.isnan(got["false_yes_same_last_digit"])  # no yes line: no share to report
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"records": {"countdown": [{"samples": [HIT], "correct": [True]}]}}))
    assert len(verdicts.countdown_records(json.loads(path.read_text()))) == 1


def test_prefix_check_writes_the_target_digits_that_match():
    # the digits of the target as far as they equal the value's, then the verdict
    check = lambda v, t: cold_start.check_text(v, t, "yes" if v == t else "no", "prefix")  # noqa: E731
    assert check(88, 48) == "vs no"  # the first digits differ
    assert check(43, 48) == "vs 4 no"
    assert check(48, 48) == "vs 48 yes"
    assert check(480, 48) == "vs 48 no"  # every target digit matches; the value is longer
    assert check(8, 18) == "vs no"
    assert cold_start.check_text(88, 48, "no") == "vs 48 no"  # "whole", the corpus's
    with pytest.raises(ValueError, match="designed.check='digits'"):
        cold_start.check_text(1, 1, "yes", "digits")
    assert cold_start.checked("8+3=11,11*8=88 vs no") == ("88", "", "no")
    assert cold_start.checked("8+3=11,11*8=43 vs 4 no") == ("43", "4", "no")


def test_prefix_check_lines_are_counted_against_the_record_target():
    # the same two searches as HIT and FALSE_YES with prefix checks: the lines' own targets are
    # partial, so the breakdown takes each sample's target
    hit = HIT.replace("88 vs 48 no", "88 vs no")
    false_yes = FALSE_YES.replace("15 vs 44 no", "15 vs no")
    got = verdicts.breakdown([hit, false_yes], [True, False], [48, 48])
    assert got["outcomes"]["correct"] == 0.5 and got["outcomes"]["false_yes"] == 0.5
    # 88 vs 48 (no, same digit), 15 vs 48 (no, other digit), 88 vs 48 (yes, same digit)
    assert got["verdict_lines"]["lines_value_not_target"] == 3
    assert got["verdict_lines"]["yes_given_same_last_digit"] == 0.5
    assert cold_start.near_misses(hit) == 0 and cold_start.near_misses(hit, 48) == 1
    record = {"question": "Using the numbers [2, 8, 9], create an equation that equals 15. Use"}
    assert verdicts.record_target(record) == 15 and verdicts.record_target({}) is None
    with pytest.raises(ValueError, match="1 targets against 2 samples"):
        verdicts.breakdown([hit, false_yes], [True, False], [48])
