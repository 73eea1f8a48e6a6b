"""The full-size experiment configs ask only for data their generators can make.

The `:tiny` runs in CI never draw the full-size splits, so a full-size config could ask for more
distinct problems than a generator has (the harm-inviting prompts: 288 distinct questions) and fail
only an hour into a pipeline. This draws every general-task split the full-size all-scenario RL
mixture and the pipeline's report suites name, with their own options (no model, a few seconds).
"""

from __future__ import annotations

import inspect

import pytest

from r1jax import config_base
from r1jax.data import general_task, harm_prompts

EXPERIMENTS = config_base.sibling(__file__, "../experiments/r1_pipeline")


def _general_options() -> list[tuple[str, dict]]:
    pipeline = EXPERIMENTS.get_config()
    out = [
        (f"report.suites.{label}", dict(s["options"]))
        for label, s in pipeline.stages.report.suites.to_dict().items()
        if s["task"] == "general"
    ]
    mixture = pipeline.stages.all_scenario_rl.task.mixture
    out += [(f"all_scenario_rl.{m['source']}", dict(m["options"])) for m in mixture if m["name"] == "general"]  # fmt: skip
    return out


@pytest.mark.parametrize(
    "where,options", _general_options(), ids=lambda x: x if isinstance(x, str) else ""
)
def test_full_size_general_splits_can_be_drawn(where, options):
    params = inspect.signature(general_task.GeneralTask.__init__).parameters
    defaults = {k: p.default for k, p in params.items() if k not in ("self", "data_dir", "seed")}
    options = dict(defaults, **options)  # what the task builder draws for these options
    splits = general_task.generate_splits(0, **options)
    want = (options.get("train_size"), options.get("test_size"))
    assert (len(splits["train"]), len(splits["test"])) == want, where


def test_harm_only_sizes_fit_the_distinct_questions():
    sizes = harm_prompts.HARM_ONLY_SIZES
    assert harm_prompts.DISTINCT_QUESTIONS == 288
    every = [
        harm_prompts.PROMPT + " ".join(f"{v} the {o} {m}".split())
        for v in harm_prompts.VERBS
        for o in harm_prompts.OBJECTS
        for m in harm_prompts.MODIFIERS
    ]
    sides = [general_task.split_of(q) for q in every]
    assert (sides.count("train"), sides.count("test")) == (218, 70)
    assert sizes["train_size"] < 218 and sizes["test_size"] < 70
    with pytest.raises(ValueError, match="cannot draw"):  # asking for all of them is refused
        general_task.generate_splits(0, 2000, 200, kinds=("harm",))
