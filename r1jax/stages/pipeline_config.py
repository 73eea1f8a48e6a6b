"""Defaults (the schema) of the pipeline stage and of its report stage.

The pipeline's `stages` holds one full stage config per named stage; `needs` names, per stage, the
stages whose artifacts it reads. Both are open dicts here: each stage's own config is checked
against that stage's defaults when the plan is made (stages/pipeline.py).
"""

from __future__ import annotations

import ml_collections

from r1jax import config_base as cb


def pipeline() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.stage = "pipeline"
    c.seed = 0
    c.order = ()  # the stage names, in the order they run
    c.stages = ml_collections.ConfigDict({})  # {name: that stage's config}
    c.needs = ml_collections.ConfigDict({})  # {name: (names of the stages it reads)}
    c.only = ""  # "a,b": run only these stages (their inputs must be finished)
    c.until = ""  # run the stages up to and including this one
    c.rerun_stale = False  # stale finished stages: stop with one line (False) or move aside + rerun
    c.reuse_from = ""  # another pipeline run's workdir whose finished stages may be linked
    c.reuse = ()  # the stage names to link from it (seeds share the tokenizer and base model)
    c.workers = 1  # > 1: stages whose inputs are finished run side by side (separate processes)
    # a folder (relative: under the workdir) where every stage keeps XLA's compiled programs, so
    # that a program an earlier stage compiled is loaded, not compiled again (stages/
    # compile_cache.py); "" = off; JAX_COMPILATION_CACHE_DIR, when set, wins
    c.compile_cache = "jax_cache"
    # the C heap of the stage processes (workers > 1; train/heap_policy.py): "hugepages" backs
    # XLA's per-call temporaries with transparent huge pages instead of faulting them in 4 KiB at
    # a time every call; "" = glibc's own; R1JAX_HEAP, when set, wins. Results are unchanged.
    c.heap = "hugepages"
    return c


DEFAULT_SUITES = {
    "countdown": {"task": "countdown", "options": {}},
    "arithmetic": {"task": "arithmetic", "options": {}},
    "general": {"task": "general", "options": {}},
}


def report() -> ml_collections.ConfigDict:
    """Every named model on one held-out suite (stages/report.py)."""
    c = cb.common("report")
    del c["checkpoint"]
    c.models = ()  # stage names (siblings of the report's workdir) or paths of policy models
    c.templates = ml_collections.ConfigDict({})  # {model name: prompt template}; default below
    c.template = "r1_zero"
    # {label: {task, options}} (an open dict; {} = DEFAULT_SUITES); suites on the general task
    # also get the oracle's scores. experiments/r1_pipeline.py adds harm-inviting prompts.
    c.suites = ml_collections.ConfigDict({})
    c.num_problems = 64  # per suite, 0 = the whole test split
    c.samples = 8  # pass@1 over these, cons@8, pass@8
    c.temperature = 0.6
    c.top_p = 0.95
    c.max_new_tokens = 192
    c.batch_prompts = 16
    c.prompt_bucket = 16
    c.stage_dirs = ml_collections.ConfigDict({})  # {name: dir} wall times come from (DONE.json)
    # {model: a report stage that evaluated it}: read from there (same settings) instead of
    # evaluated again; the pipeline's eval_<model> stages (experiments/r1_pipeline.py)
    c.evaluated = ml_collections.ConfigDict({})
    return c
