"""Defaults of the supervised stages (the schema of their configs) and their config boundary.

`config_base.sft()`, `.distill()`, `.cold_start_data()` and `.rejection_sampling()` return these (the
defaults live here because config_base.py is at its length limit). Inputs are other stages' workdirs:
a bare name ("cold_start_data") is the sibling workdir <workdir>/../<name> (stages/inputs.py), so
experiments and the pipeline chain stages by name.
"""

from __future__ import annotations

from typing import Any

import ml_collections

from r1jax import config_base as cb


def model_init(checkpoint: str = "", **overrides: Any) -> ml_collections.ConfigDict:
    """Where a stage's starting model comes from (stages/init_model.py); "" = the sibling "base"."""
    c = ml_collections.ConfigDict(
        dict(
            checkpoint=checkpoint,
            build_if_missing=True,
            hf_dir="",
            dtype="float32",
            param_dtype="float32",
            remat=False,
            pretrain=cb.pretrain(),
            build=None,  # a stage config that makes the input model when it is missing
        )
    )
    c.update(overrides)
    return c


def held_out(**overrides: Any) -> ml_collections.ConfigDict:
    """Held-out evaluation of the supervised stages: the R1 protocol on each task's test split."""
    c = ml_collections.ConfigDict(
        dict(
            tasks=("countdown",),
            task_options=ml_collections.ConfigDict({}),  # {task name: builder options}
            num_problems=64,  # per task, 0 = the whole test split
            samples=4,
            temperature=0.6,
            top_p=0.95,
            top_k=0,
            max_new_tokens=192,
            batch_prompts=16,
            prompt_bucket=16,
            before=True,  # evaluate the starting model
            after=True,  # and the trained one
        )
    )
    c.update(overrides)
    return c


def sft() -> ml_collections.ConfigDict:
    """Defaults of the SFT stage (stages/sft.py): completion-only loss, packed rows, epochs."""
    c = cb.common("sft")
    c.init = model_init()
    c.data = ml_collections.ConfigDict(
        dict(
            inputs=("cold_start_data",),  # stage workdirs (their sft_data.jsonl) or JSONL files
            build_if_missing=True,
            build=None,  # the stage config that writes inputs[0] when it is missing
            reader="jsonl",  # jsonl | tfds (the same records through the TFDS builder)
            template="r1_zero",  # applied to each record's prompt at load time
            loss_on="completion",  # completion | all
            seq_len=384,  # a 113-token R1 prompt + up to 192 new tokens, whole
            batch_size=16,
            packing=True,  # False: one example per row, rows padded to length buckets
            bucket=32,
            max_examples=0,  # 0 = all
        )
    )
    c.epochs = 2
    c.steps = 0  # 0 = as many steps as `epochs` take
    c.optimizer = cb.optimizer(lr=3e-4, warmup_steps=10, weight_decay=0.0)
    c.eval = held_out()
    c.checkpoint = cb.checkpoint(every_steps=50)
    c.plot_keys = ("loss", "grad_norm", "lr", "padding_share", "tokens_per_s")
    return c


def distill() -> ml_collections.ConfigDict:
    """Defaults of the distillation stage (stages/distill.py): SFT of a smaller student on the
    teacher's samples, plus forward KL to the teacher's recorded top-k next-token distribution."""
    c = sft()
    c.stage = "distill"
    c.init = model_init("student_base")
    c.init.pretrain.model = cb.model("toy", d_model=64, mlp_dim=160)
    c.data.inputs = ("distill_data",)
    c.kd_weight = 0.0  # loss = (1 - w) * NLL + w * KL(teacher top-k || student); 0 = SFT only
    c.plot_keys = ("loss", "nll", "kd", "grad_norm", "lr", "tokens_per_s")
    return c


def sampling_source(checkpoint: str) -> ml_collections.ConfigDict:
    """The model a data stage samples from (a stage workdir or name) and how to build it if missing."""
    return ml_collections.ConfigDict(dict(checkpoint=checkpoint, build_if_missing=True, build=None))


def sample_settings(**overrides: Any) -> ml_collections.ConfigDict:
    """How a data stage samples: the paper's settings (temperature 0.6, top-p 0.95)."""
    c = ml_collections.ConfigDict(
        dict(
            samples=4,  # per prompt
            temperature=0.6,
            top_p=0.95,
            top_k=0,
            max_new_tokens=192,
            batch_prompts=16,
            prompt_bucket=16,
            template="r1_zero",
        )
    )
    c.update(overrides)
    return c


def cold_start_data() -> ml_collections.ConfigDict:
    """Defaults of the cold-start data stage (stages/cold_start_data.py)."""
    c = cb.common("cold_start_data")
    c.source = sampling_source("r1_zero")  # the R1-Zero model whose correct traces are rewritten
    c.task = cb.task("countdown")  # its train split's prompts
    c.num_prompts = 256
    c.sampling = sample_settings()
    c.keep_per_prompt = 1
    c.language = "en"
    # hand-designed examples in the same pattern, from the corpus generator (data/cold_start.py)
    c.designed = ml_collections.ConfigDict(
        dict(
            countdown=1000,
            arithmetic=500,
            intuition=0.7,
            max_attempts=8,
            give_up=True,
            order="intuition",
            give_up_share=0.0,  # > 0: that share of the searches are give-ups (problems picked)
            passes=1,  # > 1: search the pool that many times over to fill the give-up share
            near_miss_share=0.0,  # > 0: that share are hits after a `no` to a value ending in
            # the target's last digit (problems picked; needs give_up_share > 0)
            check="whole",  # "prefix": a line writes the target's digits only as far as they
            # equal its value's (`=43 vs 4 no`, `=88 vs no`); also applied to the R1-Zero rewrites
        )
    )
    return c


def rejection_sampling() -> ml_collections.ConfigDict:
    """Defaults of the rejection-sampling stage (stages/rejection_sampling.py)."""
    c = cb.common("rejection_sampling")
    c.source = sampling_source("reasoning_rl")
    c.source.build_if_missing = False
    c.tasks = ("countdown",)  # prompts from each task's train split
    c.task_options = ml_collections.ConfigDict({})  # {task name: builder options}
    c.num_prompts = 256  # per task
    c.sampling = sample_settings(samples=8)  # k
    # {task name: {"num_prompts": n, <any key of sampling>: value}}: one task's own prompt count and
    # sampling (stages/rejection_sampling.py task_plan), e.g. more prompts with fewer samples each
    # for a task whose correct samples repeat (deduplication keeps one of them)
    c.per_task = ml_collections.ConfigDict({})
    c.keep_per_prompt = 2  # m
    c.filters = ml_collections.ConfigDict(
        dict(
            format="readable",  # readable | r1_zero | none
            language_mixing=True,
            repeated_attempts=True,
            max_tokens=0,  # 0 = only truncated samples are too long
            max_line_chars=160,  # an overlong reasoning line ("paragraph")
            dedup=True,
        )
    )
    # general (non-reasoning) data from the general task's train split, by count
    c.general = ml_collections.ConfigDict(
        dict(ratio=3.0, options=ml_collections.ConfigDict({}))  # reasoning : general; 0 = none
    )
    c.record_topk = 0  # > 0: the source model's top-k next-token log-probs of every kept sample
    # a cold-start data stage whose hand-designed "give up" searches join the reasoning data
    # ("" = none, the paper's correct-only data; stages/rejection_sampling.py give_up_records)
    c.give_ups_from = ""
    return c


def validate(config: ml_collections.ConfigDict, dp: int, max_len: int | None = None) -> None:
    """The SFT / distill config's arithmetic and option names, before anything compiles."""
    from r1jax import config_check

    d = config.data
    config_check.require_positive(config, "data.seq_len", "data.batch_size", "optimizer.grad_accum")
    if config.epochs < 1 and config.steps < 1:
        raise config_check.ConfigError(
            f"config.epochs={config.epochs} and config.steps={config.steps}: set one of them >= 1."
        )
    b, a = d.batch_size, config.optimizer.grad_accum
    config_check.require_divisible(
        b, a, "config.data.batch_size", "make it a multiple of grad_accum"
    )
    config_check.require_divisible(
        b // a, dp, "the micro-batch data.batch_size/grad_accum", f"use a multiple of {dp} devices"
    )
    if not d.inputs:
        raise config_check.ConfigError("config.data.inputs is empty; name at least one data set.")
    choices = {"reader": ("jsonl", "tfds"), "loss_on": ("completion", "all")}
    for key, allowed in choices.items():
        if d[key] not in allowed:
            raise config_check.ConfigError(
                f"config.data.{key}={d[key]!r} must be one of {allowed}."
            )
    if not d.packing and d.bucket < 1:
        raise config_check.ConfigError(f"config.data.bucket={d.bucket} must be >= 1.")
    if max_len is not None and d.seq_len + 1 > max_len:
        raise config_check.ConfigError(
            f"config.data.seq_len={d.seq_len} needs a model max_len of at least {d.seq_len + 1} "
            f"(the model has {max_len}); lower config.data.seq_len."
        )
    if not 0.0 <= config.get("kd_weight", 0.0) < 1.0:
        raise config_check.ConfigError(
            f"config.kd_weight={config.kd_weight} must be in [0, 1): the SFT loss keeps weight 1 - w."
        )
