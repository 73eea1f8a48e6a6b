"""The GRPO stage's config boundary: validation and the small dataclasses the library takes.

Only stage runners read the ConfigDict; these functions turn `config.rl`, `config.eval` and
`config.task` into the frozen dataclasses of `rl/`, `sampling/` and `eval/`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections

from r1jax import config_check
from r1jax.data import prompts as prompts_lib
from r1jax.data import tasks
from r1jax.eval import harness as evaluation
from r1jax.model.config import ModelConfig
from r1jax.parallel import sharding
from r1jax.rewards import build as build_rewards
from r1jax.rewards.registry import Reward
from r1jax.rl import advantages, grpo_loss, losses, sampler_mesh, train_step
from r1jax.rl.dynamic import DynamicConfig
from r1jax.sampling import sample as sampling
from r1jax.tokenizers import stop_ids
from r1jax.tokenizers.sentencepiece import R1_TAGS


def validate(
    config: ml_collections.ConfigDict,
    mesh: Any,
    rules: Any,
    reward_fns: Sequence[Reward] | None,
) -> None:
    """Batch / group / mesh arithmetic and option names, before anything compiles. `reward_fns`
    None (the pipeline's preflight, before any reward model exists) skips the checks on them."""
    r = config.rl
    config_check.require_positive(
        config,
        "steps",
        "rl.prompts_per_step",
        "rl.group_size",
        "rl.max_new_tokens",
        "rl.mu",
        "rl.mini_batches",
        "rl.grad_accum",
        "rl.temperature",
    )
    if r.vocab_chunk < 0:
        raise config_check.ConfigError(
            f"config.rl.vocab_chunk={r.vocab_chunk} must be >= 0 (0 = whole vocabulary at once)."
        )
    if r.group_size < 2:
        raise config_check.ConfigError(
            f"config.rl.group_size={r.group_size}: group advantages need at least 2 samples per prompt."
        )
    dp = sharding.data_parallel_size(mesh, rules)
    n = r.prompts_per_step * r.group_size
    config_check.require_divisible(
        r.prompts_per_step,
        dp,
        "config.rl.prompts_per_step",
        f"make it a multiple of the {dp} data-parallel devices (config.mesh.shape)",
    )
    per = r.mini_batches * r.grad_accum
    config_check.require_divisible(
        r.prompts_per_step,
        per,
        "config.rl.prompts_per_step",
        f"make it a multiple of rl.mini_batches * rl.grad_accum = {per}",
    )
    config_check.require_divisible(
        r.prompts_per_step // per,
        dp if per > 1 else 1,
        f"prompts per micro-batch rl.prompts_per_step / (rl.mini_batches * rl.grad_accum) = "
        f"{r.prompts_per_step}/{per}",
        f"make it a multiple of the {dp} data-parallel devices (fewer micro-batches or more prompts)",
    )
    config_check.require_divisible(
        r.prompts_per_step,
        jax.process_count(),
        "config.rl.prompts_per_step",
        "make it a multiple of the process count",
    )
    del n
    try:
        opts = loss_options(config)
        sampling_config(config, None)
    except ValueError as e:
        raise config_check.ConfigError(f"config.rl: {e}") from None
    losses.build(r.loss, opts)  # an unknown loss or bad argument is a ConfigError
    if r.advantage not in advantages.names():
        raise config_check.ConfigError(
            f"config.rl.advantage={r.advantage!r} is not a registered estimator; known: "
            f"{advantages.names()}."
        )
    checked = reward_fns is not None
    reward_fns = reward_fns or ()
    if reward_fns and all(f.weight == 0 for f in reward_fns):
        raise config_check.ConfigError(
            "config.rewards: every reward has weight 0 (diagnostics only); give one a weight."
        )
    if r.fused not in ("auto", "on", "off"):
        raise config_check.ConfigError(
            f"config.rl.fused={r.fused!r} must be 'auto', 'on' or 'off'."
        )
    host_only = [f.name for f in reward_fns if f.jax_fn is None and f.jax_stateful is None]
    if r.fused == "on" and (r.dynamic_sampling or host_only):
        raise config_check.ConfigError(
            f"config.rl.fused='on' needs jittable rewards and no dynamic sampling; host-only rewards: "
            f"{host_only}. Use fused='auto'."
        )
    if checked and not reward_fns:
        raise config_check.ConfigError("config.rewards is empty; name at least one reward.")
    if r.sampler_mesh:
        if r.fused == "on":
            raise config_check.ConfigError(
                "config.rl.fused='on' runs one program on one mesh; with rl.sampler_mesh set use "
                "fused='auto' or 'off' (the split step), or leave rl.sampler_mesh empty."
            )
        sampler_mesh.make(tuple(r.sampler_mesh), mesh, rules, {}, r.prompts_per_step)
    _check_sampler_threads(r, mesh)


def _check_sampler_threads(r: ml_collections.ConfigDict, mesh: Any) -> None:
    """rl.sampler_threads K: the split step on a one-device mesh, the prompts in K equal parts
    (0, auto, picks 1 wherever those do not hold: sampling/threads.py resolve)."""
    k = r.get("sampler_threads", 1)
    if not isinstance(k, int) or k < 0:
        raise config_check.ConfigError(
            f"config.rl.sampler_threads={k!r} must be an int >= 1, or 0 (auto)."
        )
    if k <= 1:
        return
    if r.fused == "on" or r.sampler_mesh or jax.process_count() > 1:
        raise config_check.ConfigError(
            f"config.rl.sampler_threads={k} runs the split step's sampler in threads of one "
            "process on the training mesh: set rl.fused='auto' or 'off', leave rl.sampler_mesh "
            "empty and run one process, or set rl.sampler_threads=1."
        )
    if mesh.size > 1:  # what it is for, and what is tested: a CPU host's one device
        raise config_check.ConfigError(
            f"config.rl.sampler_threads={k} runs on a one-device training mesh; this one has "
            f"{mesh.size} devices: set mesh.shape=(1,1,1) or rl.sampler_threads=1."
        )
    if r.prompts_per_step % k:
        raise config_check.ConfigError(
            f"config.rl.prompts_per_step={r.prompts_per_step} does not split into "
            f"rl.sampler_threads={k} equal parts; pick a divisor."
        )


def loss_options(config: ml_collections.ConfigDict) -> grpo_loss.LossOptions:
    r = config.rl
    return grpo_loss.LossOptions(
        epsilon_low=r.epsilon_low,
        epsilon_high=r.epsilon_high,
        dual_clip=r.dual_clip,
        beta=r.beta,
        kl_estimator=r.kl_estimator,
        aggregation=r.aggregation,
        max_tokens=r.max_new_tokens,
        kl_clamp=r.kl_clamp,
    )


def update_config(
    config: ml_collections.ConfigDict, reward_fns: Sequence[Reward]
) -> train_step.UpdateConfig:
    r = config.rl
    return train_step.UpdateConfig(
        group_size=r.group_size,
        mu=r.mu,
        mini_batches=r.mini_batches,
        grad_accum=r.grad_accum,
        temperature=r.temperature,
        advantage=r.advantage,
        std_ddof=r.std_ddof,
        adv_eps=r.adv_eps,
        reward_weights=tuple(float(f.weight) for f in reward_fns),
        mask_truncated=r.mask_truncated,
        share_prefix=r.share_prefix,
        old_logp=r.old_logp,
        loss=loss_options(config),
        loss_fn=r.loss,
        vocab_chunk=r.vocab_chunk,
        entropy=r.entropy,
        seed=config.seed,
    )


def sampling_config(config: ml_collections.ConfigDict, tok: Any) -> sampling.SamplingConfig:
    r = config.rl
    return sampling.SamplingConfig(
        max_new_tokens=r.max_new_tokens,
        temperature=r.temperature,
        top_k=r.top_k,
        top_p=r.top_p,
        eos_id=tok.eos_id if tok is not None else 3,
        pad_id=tok.pad_id if tok is not None else 0,
        stop_ids=stop_ids(tok),
    )


def eval_config(config: ml_collections.ConfigDict, quick: bool) -> evaluation.EvalConfig:
    e = config.eval
    return evaluation.EvalConfig(
        samples=e.samples if quick else e.final_samples,
        temperature=e.temperature,
        top_p=e.top_p,
        top_k=e.top_k,
        max_new_tokens=e.max_new_tokens,
        batch_prompts=e.batch_prompts,
        prompt_bucket=config.rl.prompt_bucket,
        template=config.task.template,
    )


def use_fused(
    config: ml_collections.ConfigDict, reward_fns: Sequence[Reward], tok: Any = None
) -> bool:
    """Fused when asked, or ("auto") when every reward is jittable on this tokenizer's ids.

    Jittable format rewards need the R1 tags as single tokens: true for the toy tokenizer, false for
    Qwen2.5 / Llama-3 vocabularies, where "auto" falls back to the split step.
    """
    tags_single = tok is None or all(tok.tag_id(t) is not None for t in R1_TAGS)
    problems = [p for p in (f.fuse_problem(tok) for f in reward_fns) if p]
    jittable = not problems and not config.rl.dynamic_sampling
    if config.rl.sampler_mesh or config.rl.get("sampler_threads", 1) > 1:  # the split step
        return False
    if config.rl.fused == "on" and not tags_single:
        raise config_check.ConfigError(
            "config.rl.fused='on' needs the R1 tags as single tokens, which this tokenizer lacks; "
            "use fused='auto' (the split step)."
        )
    if config.rl.fused == "on" and problems:  # a reward model on another tokenizer: refused
        raise config_check.ConfigError(f"config.rl.fused='on': {problems[0]}. Use fused='auto'.")
    if config.rl.fused == "auto" and problems and all(f.fuse_problem() is None for f in reward_fns):
        # jittable, but not on this tokenizer's ids: said once, then the split step
        print(f"r1jax: {problems[0]}; the step runs split (rewards on the host)", flush=True)
    return config.rl.fused == "on" or (config.rl.fused == "auto" and jittable and tags_single)


@dataclasses.dataclass(frozen=True)
class StageSettings:
    """The scalars the GRPO stage's step reads (so the step never touches the ConfigDict)."""

    seed: int
    prompts_per_step: int
    template: str
    prompt_bucket: int
    max_len: int
    updates_per_step: int  # mu * mini_batches (the schedule counts optimiser updates)
    eval_every: int
    ref_update_every: int
    log_samples: int


def settings(config: ml_collections.ConfigDict, mcfg: ModelConfig) -> StageSettings:
    r = config.rl
    return StageSettings(
        seed=config.seed,
        prompts_per_step=r.prompts_per_step,
        template=config.task.template,
        prompt_bucket=r.prompt_bucket,
        max_len=mcfg.max_len,
        updates_per_step=r.mu * r.mini_batches,
        eval_every=config.eval.every_steps,
        ref_update_every=r.ref_update_every,
        log_samples=config.log_samples,
    )


def dynamic_config(config: ml_collections.ConfigDict) -> DynamicConfig:
    return DynamicConfig(config.rl.prompts_per_step, config.rl.max_resample_rounds)


@dataclasses.dataclass(frozen=True)
class TaskData:
    """The task's train stream and held-out split, and the reward that decides accuracy."""

    stream: prompts_lib.PromptStream
    test: list[dict]
    accuracy: Reward


def task_data(config: ml_collections.ConfigDict) -> TaskData:
    t = config.task
    options = t.options.to_dict()
    train = tasks.load(t.name, "train", t.data_dir, **options)
    test = tasks.load(t.name, t.eval_split, t.data_dir, **options)
    accuracy = build_rewards([config.eval.accuracy_reward or tasks.accuracy_reward(t.name)])[0]
    return TaskData(prompts_lib.PromptStream(train, config.seed), test, accuracy)
