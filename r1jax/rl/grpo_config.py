"""The GRPO stage's config boundary: validation and the small dataclasses the library takes.

Also the one function that runs a (fused or split) step and times its phases, shared by the stage
and the benchmark.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from r1jax import config_check, distributed, evaluation, sampling, sharding
from r1jax.rewards.registry import Reward
from r1jax.rl import grpo_loss, rollout, train_step


def validate(
    config: ml_collections.ConfigDict, mesh: Any, rules: Any, reward_fns: Sequence[Reward]
) -> None:
    """Batch / group / mesh arithmetic and option names, before anything compiles."""
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
        "prompts per micro-batch",
        "make rl.prompts_per_step / (mini_batches * grad_accum) a multiple of the data-parallel devices",
    )
    config_check.require_divisible(
        r.prompts_per_step,
        jax.process_count(),
        "config.rl.prompts_per_step",
        "make it a multiple of the process count",
    )
    del n
    try:
        loss_options(config)
        sampling_config(config, None)
    except ValueError as e:
        raise config_check.ConfigError(f"config.rl: {e}") from None
    if r.advantage not in ("grpo", "dr_grpo", "rloo"):
        raise config_check.ConfigError(
            f"config.rl.advantage={r.advantage!r} must be one of 'grpo', 'dr_grpo', 'rloo'."
        )
    if r.fused not in ("auto", "on", "off"):
        raise config_check.ConfigError(
            f"config.rl.fused={r.fused!r} must be 'auto', 'on' or 'off'."
        )
    if r.fused == "on" and (r.dynamic_sampling or any(f.jax_fn is None for f in reward_fns)):
        host_only = [f.name for f in reward_fns if f.jax_fn is None]
        raise config_check.ConfigError(
            f"config.rl.fused='on' needs jittable rewards and no dynamic sampling; host-only rewards: "
            f"{host_only}. Use fused='auto'."
        )
    if not reward_fns:
        raise config_check.ConfigError("config.rewards is empty; name at least one reward.")


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


def stop_ids(tok: Any) -> tuple[int, ...]:
    """The tokenizer's extra end-of-turn ids (Hugging Face `stop_ids`), EOS excluded."""
    extra = getattr(tok, "stop_ids", ()) if tok is not None else ()
    return tuple(int(i) for i in extra if int(i) != tok.eos_id)


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
    from r1jax.tokenizer import R1_TAGS

    tags_single = tok is None or all(tok.tag_id(t) is not None for t in R1_TAGS)
    jittable = all(f.jax_fn is not None for f in reward_fns) and not config.rl.dynamic_sampling
    if config.rl.fused == "on" and not tags_single:
        raise config_check.ConfigError(
            "config.rl.fused='on' needs the R1 tags as single tokens, which this tokenizer lacks; "
            "use fused='auto' (the split step)."
        )
    return config.rl.fused == "on" or (config.rl.fused == "auto" and jittable and tags_single)


def gather_rows(x: jax.Array) -> np.ndarray:
    """The whole (global) array on this host: every process scores every rollout."""
    if jax.process_count() == 1:
        return np.asarray(jax.device_get(x))
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def decode_rows(tok: Any, tokens_NxT: np.ndarray, mask_NxT: np.ndarray) -> list[str]:
    return [tok.decode(t[m]) for t, m in zip(tokens_NxT, mask_NxT)]


def split_step_metrics(
    fns: rollout.StepFns,
    fused: bool,
    state: dict,
    ids,
    valid,
    key,
    reward_fns: Sequence[Reward],
    tok: Any,
    group_examples: list[dict],
    mesh: Any,
    rules: Any,
    ucfg: train_step.UpdateConfig,
    length_bucket: int = 0,
):
    """Runs one step; returns (state, metrics, sample output, host rewards [N, R], phase times).

    On the split path the rollouts are cut to the longest completion rounded up to
    `length_bucket` tokens before the update (0 = keep max_new_tokens): the update's cost then
    follows the lengths the policy actually writes, at one compiled program per bucket.
    """
    t0 = time.perf_counter()
    if fused:
        targets = rollout.jax_targets(reward_fns, group_examples, tok)
        targets = jax.tree.map(
            lambda a: distributed.global_batch(a[_rows(a)], mesh, rules), targets
        )
        with jax.set_mesh(mesh):
            state, m, out, r = fns.fused(state, ids, valid, key, targets)
        m = jax.device_get(m)
        r_host = gather_rows(r)
        return state, dict(m, fused=1), out, r_host, (0.0, 0.0, time.perf_counter() - t0)
    with jax.set_mesh(mesh):
        out = fns.sample(state["params"], ids, valid, key)
    toks, mask, lengths = (gather_rows(x) for x in (out.tokens_NxT, out.mask_NxT, out.lengths_N))
    t1 = time.perf_counter()
    texts = decode_rows(tok, toks, mask)
    r_host = rollout.host_rewards(reward_fns, texts, group_examples, lengths)
    r_dev = distributed.global_batch(r_host[_rows(r_host)], mesh, rules)
    t2 = time.perf_counter()
    batch = trim(rollout.rollout_batch(ids, valid, out, r_dev), int(lengths.max()), length_bucket)
    with jax.set_mesh(mesh):
        state, m = fns.update(state, batch)
    m = jax.device_get(m)
    return state, dict(m, fused=0), out, r_host, (t1 - t0, t2 - t1, time.perf_counter() - t2)


def trim(batch: dict, longest: int, bucket: int) -> dict:
    """The rollout batch cut to `longest` completion tokens rounded up to a multiple of `bucket`."""
    t = batch["completion"].shape[1]
    if bucket <= 0:
        return batch
    keep = min(t, max(bucket, -(-longest // bucket) * bucket))
    if keep == t:
        return batch
    cut = ("completion", "mask_NxT", "old_logp_NxT")
    return {k: (v[:, :keep] if k in cut else v) for k, v in batch.items()}


def _rows(a: np.ndarray) -> slice:
    """This process's rows of a global [N, ...] host array."""
    start, stop = distributed.process_rows(a.shape[0])
    return slice(start, stop)
