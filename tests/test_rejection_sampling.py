"""Rejection sampling keeps exactly the verified samples that pass every filter, at most m per
prompt, and counts what each filter removed (hand-made samples of one Countdown prompt)."""

from __future__ import annotations

import os

import pytest

from r1jax import rewards
from r1jax.data import rejection_filters as rf

EX = {"task": "countdown", "ground_truth": {"numbers": [2, 4, 5], "target": 18}}


def _text(lines, summary="so 4*5-2 = 18", answer="4*5-2"):
    body = "".join(f"{ln}\n" for ln in lines)
    return f" <think>\n{body}</think>\n{summary}\n<answer>{answer}</answer>"


HIT = "4*5=20,20-2=18 vs 18 yes"
MISS = "2*4=8,8+5=13 vs 18 no"
SAMPLES = [
    (_text([MISS, HIT]), "kept"),
    (_text([MISS], "so 2*4+5 = 13", "2*4+5"), "correct"),  # wrong answer
    (_text([MISS, HIT]) + "", "length"),  # marked truncated below
    (_text(["2*4=8,8+5=13 vs 18 nu", HIT]), "language"),  # zl verdict in an en trace
    (_text([MISS, MISS.replace("no", "nu"), HIT]), "language"),  # mixed first, then repeated
    (_text([MISS, "5+4=9,9*2=18 vs 18 yes", "2*4=8,8+5=13 vs 18 no", HIT]), "repeated"),
    (_text([MISS, HIT]).replace("so 4*5-2 = 18\n", ""), "format"),  # the R1-Zero format
    (_text([MISS, HIT]), "dedup"),
    (_text([HIT]), "kept"),
    (_text(["5+4=9,9*2=18 vs 18 yes"], "so (5+4)*2 = 18", "(5+4)*2"), "per_prompt"),
    (_text(["x" * 200, HIT]), "length"),  # an overlong line
]


def test_select_keeps_exactly_the_verified_samples_that_pass():
    texts = [t for t, _ in SAMPLES]
    correct = rewards.build(["countdown_accuracy"])[0](texts, [EX] * len(texts)) >= 1.0
    assert correct.tolist() == [True] * 1 + [False] + [True] * 9
    lengths = [60] * len(texts)
    truncated = [i == 2 for i in range(len(texts))]
    cfg = rf.FilterConfig(keep_per_prompt=2)
    kept, removed, verdicts = rf.select(texts, lengths, truncated, list(correct), cfg)
    assert kept == [0, 8]
    assert verdicts == [None if want == "kept" else want for _, want in SAMPLES]
    assert removed == {
        "correct": 1,
        "length": 2,
        "language": 2,
        "repeated": 1,
        "format": 1,
        "dedup": 1,
        "per_prompt": 1,
    }
    assert sum(removed.values()) + len(kept) == len(texts)


def test_filters_can_be_switched_off_and_capped_by_tokens():
    text = _text([MISS, MISS.replace("no", "nu"), HIT])
    off = rf.FilterConfig(language_mixing=False, repeated_attempts=False, format="none")
    assert rf.first_failure(text, 50, False, True, off) is None
    assert rf.first_failure(text, 50, False, True, rf.FilterConfig(max_tokens=40)) == "length"
    r1_zero = _text([HIT]).replace("so 4*5-2 = 18\n", "")
    assert rf.first_failure(r1_zero, 20, False, True, rf.FilterConfig(format="r1_zero")) is None
    with pytest.raises(ValueError, match="filters.format"):
        rf.FilterConfig(format="strict")


def test_give_ups_from_a_cold_start_data_set(tmp_path):
    """`give_ups_from` adds exactly the cold start's hand-designed searches that end `give up`."""
    import json

    import numpy as np

    from r1jax.config_check import ConfigError
    from r1jax.data import cold_start
    from r1jax.stages import rejection_sampling, sft_config

    ex = dict(EX, question="Using 2 4 5 make 18", id="x")
    hit = cold_start.designed_countdown(ex, np.random.default_rng(0), cold_start.DesignConfig())
    lost = {"task": "countdown", "ground_truth": {"numbers": [1, 1, 1], "target": 90}}
    gave_up = cold_start.designed_countdown(
        lost, np.random.default_rng(0), cold_start.DesignConfig(max_attempts=3)
    )
    assert not cold_start.gives_up(hit) and cold_start.gives_up(gave_up)
    rows = [
        ("hand_designed", hit),
        ("hand_designed", gave_up),
        ("r1_zero_rewritten", gave_up),  # only hand-designed searches are taken
    ]
    os.makedirs(tmp_path / "cold")
    with open(tmp_path / "cold" / "sft_data.jsonl", "w") as f:
        for source, text in rows:
            rec = dict(prompt="p", completion=text, source=source, task="countdown")
            f.write(json.dumps(dict(rec, provenance={"seed": 0})) + "\n")
    config = sft_config.rejection_sampling()
    workdir = str(tmp_path / "rs")
    assert rejection_sampling.give_up_records(config, workdir) == []  # "" = the paper's data
    config.give_ups_from = "cold"  # a sibling stage, by name
    got = rejection_sampling.give_up_records(config, workdir)
    path = str(tmp_path / "cold" / "sft_data.jsonl")
    want = dict(prompt="p", completion=gave_up, source="cold_start_give_up", task="countdown")
    assert got == [dict(want, ground_truth={}, provenance={"seed": 0, "data": path})]
    config.give_ups_from = "missing"
    with pytest.raises(ConfigError, match="give_ups_from: .*missing does not exist"):
        rejection_sampling.give_up_records(config, workdir)


def test_per_task_overrides_one_tasks_prompts_and_sampling():
    """`per_task` gives one task its own prompt count and sampling; the others keep the stage's,
    and an empty `per_task` (its neutral value) plans every task exactly as before it existed."""
    from r1jax.config_check import ConfigError
    from r1jax.stages import rejection_sampling, sft_config

    config = sft_config.rejection_sampling()
    config.tasks = ("countdown", "arithmetic")
    config.num_prompts, config.sampling.samples = 100, 8
    assert rejection_sampling.task_plan(config, "arithmetic") == (100, config.sampling)
    config.per_task = {"arithmetic": {"num_prompts": 300, "samples": 2, "batch_prompts": 64}}
    rejection_sampling.validate(config)
    n, s = rejection_sampling.task_plan(config, "arithmetic")
    assert (n, s.samples, s.batch_prompts, s.temperature) == (300, 2, 64, 0.6)
    assert rejection_sampling.task_plan(config, "countdown") == (100, config.sampling)
    assert config.sampling.samples == 8 and config.per_task.arithmetic.num_prompts == 300
    config.per_task = {"arithmetic": {"sample": 2}}
    with pytest.raises(ConfigError, match=r"per_task.arithmetic: unknown key\(s\) \['sample'\]"):
        rejection_sampling.validate(config)
    config.per_task = {"code": {"samples": 2}}
    with pytest.raises(ConfigError, match="per_task: 'code' is not one of config.tasks"):
        rejection_sampling.validate(config)
    config.per_task = {"arithmetic": {"num_prompts": 0}}
    with pytest.raises(ConfigError, match="per_task.arithmetic: num_prompts, samples"):
        rejection_sampling.validate(config)
