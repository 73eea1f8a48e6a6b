"""The config boundary of the preference_data and reward_model stages: defaults and dataclasses.

`config_base.preference_data()` and `config_base.reward_model()` return these defaults (the schema
the stages check against); the functions below turn the ConfigDict into the small frozen
dataclasses of data/ and the one-line ConfigErrors of bad values.
"""

from __future__ import annotations

from typing import Any

import ml_collections

from r1jax import config_base, config_check
from r1jax.data import perturb, preference
from r1jax.data.general_task import ALL_KINDS
from r1jax.text import templates

SOURCES = ("policy", "reference_perturbed")


def policy_init(**overrides: Any) -> ml_collections.ConfigDict:
    """Where a stage's starting model comes from (stages/init_model.py): a stage directory (the toy
    base model is built there when missing and allowed) or a Hugging Face folder."""
    c = ml_collections.ConfigDict(
        dict(
            checkpoint="",
            build_if_missing=True,
            hf_dir="",
            dtype="float32",
            param_dtype="float32",
            remat=False,
            pretrain=config_base.pretrain(),
        )
    )
    c.update(overrides)
    return c


def preference_data_defaults() -> ml_collections.ConfigDict:
    c = config_base.common("preference_data")
    del c["checkpoint"]  # writes a data set, no checkpoints
    # "policy": k samples per prompt from config.init's model; "reference_perturbed": the task's
    # reference outputs with seeded perturbations (data/perturb.py), no model needed
    c.source = "policy"
    c.init = policy_init()
    c.task = config_base.task("general", kinds=tuple(ALL_KINDS), train_size=2000, test_size=200)
    c.task.options.harm_unsafe_share = 0.5
    c.prompts = ml_collections.ConfigDict(dict(train=1000, test=200))  # 0 = the whole split
    c.samples_per_prompt = 4  # k responses per prompt
    c.sampling = ml_collections.ConfigDict(
        dict(temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=64, batch_prompts=16)
    )
    c.perturb = ml_collections.ConfigDict(dict(vars(perturb.PerturbConfig())))
    p = preference.PairConfig()
    c.pairs = ml_collections.ConfigDict(
        dict(
            aspects=p.aspects,
            min_gap=p.min_gap,  # pairs closer than this in the aspect's oracle score are not made
            label_temperature=p.temperature,  # Bradley-Terry rater noise (0 = noiseless)
            max_pairs_per_prompt=p.max_pairs_per_prompt,
        )
    )
    return c


def reward_model_defaults() -> ml_collections.ConfigDict:
    c = config_base.common("reward_model")
    c.init = policy_init()  # the policy checkpoint the reward model starts from
    c.data = ml_collections.ConfigDict(
        dict(
            # a preference_data stage directory or a preferences JSONL file; "" = the sibling
            # directory <workdir>/../preference_data (built there when missing and allowed)
            path="",
            data_dir="",  # where the TFDS builder writes (default: a temp folder)
            build_if_missing=True,
            preference=preference_data_defaults(),
            batch_pairs=32,
            seq_len=256,  # prompt + response tokens (longer pairs are dropped and counted)
        )
    )
    c.rm = ml_collections.ConfigDict(
        dict(
            aspect="helpfulness",  # which oracle label it learns: helpfulness | harmlessness
            on="summary",  # what it reads: summary (after the reasoning) | all
            margin=0.0,  # Bradley-Terry margin subtracted from r_chosen - r_rejected
            # the template the RM reads the question in ("" = the one the policy was prompted
            # with); as a reward it renders its own prompt, so it need not be the policy's
            template="",
        )
    )
    c.optimizer = config_base.optimizer(lr=1e-4, warmup_steps=20, weight_decay=0.0)
    c.steps = 300
    c.eval = ml_collections.ConfigDict(dict(every_steps=50, batch_rows=64, final=True))
    c.checkpoint = config_base.checkpoint(every_steps=100)
    c.plot_keys = ("loss", "accuracy", "eval_accuracy_oracle", "margin_mean", "grad_norm", "lr")
    return c


def pair_config(config: ml_collections.ConfigDict) -> preference.PairConfig:
    p = config.pairs
    try:
        return preference.PairConfig(
            aspects=tuple(p.aspects),
            min_gap=float(p.min_gap),
            temperature=float(p.label_temperature),
            max_pairs_per_prompt=int(p.max_pairs_per_prompt),
        )
    except ValueError as e:
        raise config_check.ConfigError(f"config.pairs: {e}") from None


def perturb_config(config: ml_collections.ConfigDict) -> perturb.PerturbConfig:
    return perturb.PerturbConfig(**config.perturb.to_dict())


def validate_preference_data(config: ml_collections.ConfigDict) -> None:
    if config.source not in SOURCES:
        raise config_check.ConfigError(f"config.source={config.source!r} is not one of {SOURCES}.")
    if config.task.name != "general":
        raise config_check.ConfigError(
            f"config.task.name={config.task.name!r}: preference data is made for the 'general' "
            "task (the oracle judges general-task responses)."
        )
    if config.samples_per_prompt < 2:
        raise config_check.ConfigError(
            f"config.samples_per_prompt={config.samples_per_prompt}: a pair needs 2 responses."
        )
    config_check.require_positive(config, "sampling.max_new_tokens", "sampling.batch_prompts")
    pair_config(config)


def validate_reward_model(config: ml_collections.ConfigDict, dp: int) -> None:
    config_check.require_positive(
        config, "steps", "data.batch_pairs", "data.seq_len", "eval.batch_rows"
    )
    if config.rm.aspect not in preference.ASPECTS:
        raise config_check.ConfigError(
            f"config.rm.aspect={config.rm.aspect!r} is not one of {preference.ASPECTS}."
        )
    if config.rm.template and config.rm.template not in templates.TEMPLATES:
        raise config_check.ConfigError(
            f"config.rm.template={config.rm.template!r} is not one of {sorted(templates.TEMPLATES)}."
        )
    if config.rm.on not in preference.VIEWS:
        raise config_check.ConfigError(
            f"config.rm.on={config.rm.on!r} is not one of {preference.VIEWS}."
        )
    b, a = config.data.batch_pairs, config.optimizer.grad_accum
    config_check.require_divisible(
        b, a, "config.data.batch_pairs", "make it a multiple of config.optimizer.grad_accum"
    )
    for key, n in (
        ("data.batch_pairs / grad_accum", b // a),
        ("eval.batch_rows", config.eval.batch_rows),
    ):
        config_check.require_divisible(
            n, dp, f"config.{key}", f"make it a multiple of the {dp} data-parallel devices"
        )
