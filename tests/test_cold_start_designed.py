"""The cold-start data stage's hand-designed Countdown searches: the give-up share (issue 16).

A sharper designed intuition (designed.intuition) makes searches hit sooner but leaves few that
give up, and a model that never saw a search stop keeps searching until its tokens run out
(README, "Why the model repeats"); designed.give_up_share picks problems so that a set share of
the searches are ones that gave up, without altering any search.
"""

from __future__ import annotations

import pytest

from r1jax import config_base
from r1jax.config_check import ConfigError
from r1jax.data import cold_start
from r1jax.stages import cold_start_data, sft_config
from r1jax.text import parsing


def _config(**designed) -> object:
    c = sft_config.cold_start_data()
    c.task = config_base.task("countdown", n_numbers=3, max_number=9, max_target=99)
    c.designed.arithmetic = 0
    c.designed.update(designed)
    return c


def _give_ups(records: list[dict]) -> int:
    return sum(cold_start.gives_up(r["completion"]) for r in records)


def test_give_up_share_keeps_that_share_of_unaltered_searches():
    natural, stats = cold_start_data.designed(_config(countdown=200, intuition=0.45))
    near = sum(cold_start.near_misses(r["completion"]) > 0 for r in natural)
    assert stats == {
        "countdown": 200,
        "countdown_give_up": _give_ups(natural),
        "countdown_near_miss": near,
        "arithmetic": 0,
    }
    assert _give_ups(natural) < 24  # left alone, this intuition gives up less than 12 %
    shared, stats = cold_start_data.designed(
        _config(countdown=200, intuition=0.45, give_up_share=0.12)
    )
    assert stats["countdown"] == 200 and stats["countdown_give_up"] == 24 == _give_ups(shared)
    for r in shared:  # every search as the generator wrote it: readable, one answer
        assert parsing.readable_format_ok(r["completion"]), r["completion"]
    # the same draws in the same order: the share only chooses which searches are kept, so the
    # hits kept are the first hits written without a share, and its give-ups begin the same way
    kind = lambda recs, gave: [  # noqa: E731
        (r["prompt"], r["completion"]) for r in recs if cold_start.gives_up(r["completion"]) == gave
    ]
    assert kind(shared, False) == kind(natural, False)[:176]
    assert kind(shared, True)[: _give_ups(natural)] == kind(natural, True)


@pytest.mark.parametrize(
    "designed, message",
    [
        (dict(give_up_share=1.0), "share in \\[0, 1\\)"),
        (dict(give_up_share=-0.1), "share in \\[0, 1\\)"),
        (dict(give_up_share=0.1, give_up=False), "needs designed.give_up=True"),
        (dict(near_miss_share=0.2), "needs designed.give_up_share > 0"),
        (dict(near_miss_share=1.2, give_up_share=0.1), "share in \\[0, 1\\)"),
        (dict(near_miss_share=0.6, give_up_share=0.5), "is over 1"),
    ],
)
def test_impossible_shares_are_one_line_errors(designed, message):
    with pytest.raises(ConfigError, match=message):
        cold_start_data.validate(_config(**designed))


def test_a_share_the_problems_cannot_give_is_refused_not_shrunk():
    with pytest.raises(ConfigError, match="short of the share"):
        cold_start_data.designed(_config(intuition=0.2, give_up_share=0.15))


def test_more_passes_fill_a_share_one_pass_cannot_and_keep_the_first_pass():
    """designed.passes searches the pool again (new order, new draws) while give-ups are short:
    the share is then met exactly, every search readable, and the first pass is what one pass
    writes (passes=1 is the old stream, byte for byte)."""
    one = _config(countdown=200, intuition=0.2, give_up_share=0.15)
    with pytest.raises(ConfigError, match="designed.passes"):
        cold_start_data.designed(one)
    natural, _ = cold_start_data.designed(_config(countdown=200, intuition=0.2))
    more, stats = cold_start_data.designed(
        _config(countdown=200, intuition=0.2, give_up_share=0.15, passes=4)
    )
    assert stats["countdown"] == 200 and stats["countdown_give_up"] == 30 == _give_ups(more)
    assert all(parsing.readable_format_ok(r["completion"]) for r in more)
    hits = [r for r in more if not cold_start.gives_up(r["completion"])]
    assert hits == [r for r in natural if not cold_start.gives_up(r["completion"])][:170]
    prompts = [r["prompt"] for r in more if cold_start.gives_up(r["completion"])]
    assert len(set(prompts)) > 15  # give-ups from many problems, not one problem redrawn
    with pytest.raises(ConfigError, match="designed.passes=0 must be positive"):
        cold_start_data.validate(_config(passes=0))


def test_near_miss_share_picks_hits_after_a_no_to_the_targets_last_digit():
    """near_miss_share: that share of the searches hit after saying `no` to a value that ends in
    the target's last digit (the check the toy models fail); counted exactly, searches unaltered."""
    assert cold_start.near_misses(" <think>\n8+3=11,11*8=88 vs 48 no\n</think>\nso 8 = 48\n") == 1
    assert cold_start.near_misses(" <think>\n8+3=11,11*8=88 vs 48 yes\n</think>\n") == 0
    assert cold_start.near_misses(" <think>\n8+3=11,11*8=88 vs 47 no\n</think>\n") == 0
    recs, stats = cold_start_data.designed(
        _config(countdown=200, intuition=0.45, give_up_share=0.12, near_miss_share=0.25, passes=3)
    )
    near = [r for r in recs if not cold_start.gives_up(r["completion"])]
    near = [r for r in near if cold_start.near_misses(r["completion"])]
    assert len(near) == 50 and stats["countdown_give_up"] == 24 == _give_ups(recs)
    assert stats["countdown_near_miss"] >= 50  # give-ups may hold near misses too
    for r in near:  # each such search says no to a value ending in the target's digit, then hits
        assert parsing.readable_format_ok(r["completion"])
        lines = parsing.reasoning_text(r["completion"]).splitlines()
        assert lines[-1].endswith("yes")


def test_prefix_check_writes_the_same_searches_with_the_matching_digits():
    """designed.check='prefix': the same problems, draws and verdicts as the whole-number check,
    each line's `vs <target>` cut to the target digits that equal the value's; readable."""
    whole, stats_w = cold_start_data.designed(_config(countdown=60, intuition=0.45))
    prefix, stats_p = cold_start_data.designed(
        _config(countdown=60, intuition=0.45, check="prefix")
    )
    assert stats_p == stats_w  # near misses counted against the record's target, not the line's
    assert [r["prompt"] for r in prefix] == [r["prompt"] for r in whole]
    for w, p in zip(whole, prefix):
        assert parsing.readable_format_ok(p["completion"]), p["completion"]
        target = int(w["ground_truth"]["target"])
        w_lines = parsing.reasoning_text(w["completion"]).splitlines()
        p_lines = parsing.reasoning_text(p["completion"]).splitlines()
        assert len(w_lines) == len(p_lines)
        for wl, pl in zip(w_lines, p_lines):
            c = cold_start.checked(wl)
            if c is None:
                assert pl == wl  # `give up`
                continue
            head = wl[: wl.rindex(" vs ")]
            assert pl == f"{head} {cold_start.check_text(int(c[0]), target, c[2], 'prefix')}"
            assert (c[2] == "yes") == (c[0] == str(target)) and (
                pl.endswith(f"vs {target} yes")
            ) == (c[2] == "yes")
    with pytest.raises(ConfigError, match="designed.check='digits'"):
        cold_start_data.validate(_config(check="digits"))
    with pytest.raises(ConfigError, match="other than grouped"):
        cold_start_data.validate(_config(check="prefix", order="grouped"))
