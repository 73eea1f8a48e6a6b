"""The rejection-sampling stage: verified samples of a converged model, filtered, mixed 3:1 with
general data into one SFT data set (R1's ~600k reasoning + ~200k non-reasoning samples, at toy scale).

    python -m r1jax.main --config=experiments/rejection_sampling.py --workdir=/tmp/r1jax/rejection_sampling

For each task in `tasks`: `num_prompts` train prompts, k = `sampling.samples` samples each at the
paper's settings (temperature 0.6, top-p 0.95; `per_task` sets a task's own count and sampling)
from `source` (a stage workdir, by default the sibling "reasoning_rl"); a sample is kept when the
task's rule verifier accepts it and it passes the filters
(data/rejection_filters.py: length, language mixing, repeated attempts, format, dedup, at most m =
`keep_per_prompt` per prompt). General data from the general task's train split (its reference
outputs, in the readable pattern, play R1's reused SFT set) is added by count: `general.ratio`
reasoning samples per general one (3:1 by default). With `record_topk` = K the model's top-K
next-token log-probs of every kept reasoning sample are recorded (topk.npz) for logit distillation.

Writes sft_data.jsonl, stats.json (acceptance by task and difficulty, lengths, what each filter
removed, kept per source, samples/s), samples.jsonl (every sample, its verdict and the filter that
removed it, or null), plots/rejection_sampling.png and tokenizer.model.
"""

from __future__ import annotations

import os

import jax
import ml_collections
import numpy as np

from r1jax import config_base, config_check, rewards
from r1jax.data import cold_start, rejection_filters, sft_format, tasks
from r1jax.parallel import sharding
from r1jax.stages import common, data_sampling, dataset_io, inputs, rs_report, topk_record


def filter_config(config: ml_collections.ConfigDict) -> rejection_filters.FilterConfig:
    f = config.filters
    try:
        return rejection_filters.FilterConfig(
            format=f.format,
            language_mixing=f.language_mixing,
            repeated_attempts=f.repeated_attempts,
            max_tokens=f.max_tokens,
            max_line_chars=f.max_line_chars,
            dedup=f.dedup,
            keep_per_prompt=config.keep_per_prompt,
        )
    except ValueError as e:
        raise config_check.ConfigError(f"config.{e}") from None


def task_plan(
    config: ml_collections.ConfigDict, name: str
) -> tuple[int, ml_collections.ConfigDict]:
    """(number of prompts, sampling settings) of one task: the stage's, with `per_task[name]`'s
    overrides.

    Why: deduplication keeps one copy of a sample, so where a model answers a task the same way
    every time (arithmetic after reasoning RL: 3,049 of 4,096 samples removed as duplicates at seed
    0, 2026-12-05) k samples per prompt buy one kept sample; the same sampling budget spread over
    more prompts with fewer samples each buys more distinct ones."""
    override = dict((config.get("per_task") or {}).get(name, {}) or {})
    n = int(override.pop("num_prompts", config.num_prompts))
    unknown = sorted(set(override) - set(config.sampling))
    if unknown:
        raise config_check.ConfigError(
            f"config.per_task.{name}: unknown key(s) {unknown}; use num_prompts or a key of "
            f"config.sampling ({sorted(config.sampling)})."
        )
    sampling = ml_collections.ConfigDict(config.sampling.to_dict())
    sampling.update(override)
    return n, sampling


def validate(config: ml_collections.ConfigDict) -> None:
    filter_config(config)
    for name in config.get("per_task") or {}:
        if name not in config.tasks:
            raise config_check.ConfigError(
                f"config.per_task: {name!r} is not one of config.tasks {tuple(config.tasks)}."
            )
        n, s = task_plan(config, name)
        if n < 1 or s.samples < 1 or s.batch_prompts < 1:
            raise config_check.ConfigError(
                f"config.per_task.{name}: num_prompts, samples and batch_prompts must be >= 1."
            )
    config_check.require_positive(config, "num_prompts", "sampling.samples")
    for name in config.tasks:
        if name not in tasks.names():
            raise config_check.ConfigError(
                f"config.tasks: {name!r} has no rule verifier; choose from {tasks.names()}."
            )
    if config.general.ratio < 0 or config.record_topk < 0:
        raise config_check.ConfigError("config.general.ratio and config.record_topk must be >= 0.")


def general_records(config, n: int) -> list[dict]:
    """n general-task examples with their reference responses (the reused SFT set)."""
    if n == 0:
        return []
    options = config.general.options.to_dict()
    options["train_size"] = max(int(options.get("train_size", 2000)), n)
    pool = tasks.load("general", "train", "", **options)
    return [
        {
            "prompt": ex["question"],
            "completion": cold_start.general_completion(ex),
            "source": "general_reference",
            "task": "general",
            "ground_truth": ex["ground_truth"],
            "provenance": {"reference": "data/general_task.py", "seed": config.seed},
        }
        for ex in data_sampling.pick(pool, n, config.seed + 3)
    ]


def give_up_records(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
    """The hand-designed searches without a hit of the cold-start data set `config.give_ups_from`
    (a stage name or path; "" = none), as reasoning records.

    Why: rejection sampling keeps only correct samples, so a model trained on them never sees a
    search end without a hit, and on a problem it cannot solve it searches until the token budget
    runs out (2026-12-02, seed 0: 28 % of the multi-domain SFT model's Countdown answers truncated,
    against 3 % for the cold-start model, whose data ends such searches with `give up`)."""
    if not config.give_ups_from:
        return []
    path = sft_format.resolve(inputs.resolve(config.give_ups_from, workdir))
    if not os.path.isfile(path):
        raise config_check.ConfigError(
            f"config.give_ups_from: {path} does not exist; run the cold-start data stage into it "
            "first (experiments/cold_start_sft.py:data=True), or set config.give_ups_from=''."
        )
    return [
        dict(r, source="cold_start_give_up", provenance=dict(r["provenance"], data=path))
        for r in sft_format.read(path)
        if r["source"] == "hand_designed" and cold_start.gives_up(r["completion"])
    ]


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    mesh = common.setup(config, config_base.rejection_sampling())
    rules = common.rules(config)
    sharding.set_rules(rules)
    validate(config)
    done = dataset_io.claim(workdir, config)
    if done is not None:
        return done
    give_ups = give_up_records(config, workdir)  # before sampling: a missing data set fails fast
    src = config.source
    path = inputs.ensure_model(
        inputs.resolve(src.checkpoint, workdir),
        src.build,
        src.build_if_missing,
        "source.checkpoint",
    )
    graphdef, params, _, tok = inputs.load_model(path, mesh, rules)
    data_sampling.publish_tokenizer(path, workdir)
    fcfg = filter_config(config)
    removed = dict.fromkeys(rejection_filters.FILTERS, 0)
    per_prompt, reasoning, kept_lengths, log, seconds = [], [], [], [], 0.0
    for t, name in enumerate(config.tasks):
        options = dict(config.task_options.get(name, {}) or {})
        pool = tasks.load(name, "train", "", **options)
        n_prompts, sampling = task_plan(config, name)
        prompts = data_sampling.pick(pool, n_prompts, config.seed + 17 * t)
        key = jax.random.fold_in(jax.random.key(config.seed), t)
        texts, lengths, truncs, secs = data_sampling.sample(
            graphdef, params, tok, prompts, sampling, mesh, rules, key
        )
        seconds += secs
        accuracy = rewards.build([tasks.accuracy_reward(name)])[0]
        for ex, samples, lens, trunc in zip(prompts, texts, lengths, truncs):
            correct = list(np.nan_to_num(accuracy(samples, [ex] * len(samples))) >= 1.0)
            kept, why, verdicts = rejection_filters.select(samples, lens, trunc, correct, fcfg)
            for k, v in why.items():
                removed[k] += v
            for i, text in enumerate(samples):
                log.append(dict(id=ex["id"], task=name, sample=i, text=text, tokens=lens[i]))
                log[-1].update(truncated=trunc[i], correct=correct[i], removed_by=verdicts[i])
            per_prompt.append(
                dict(task=name, difficulty=ex["difficulty"], samples=len(samples))
                | dict(correct=int(sum(correct)), kept=len(kept))
            )
            for i in kept:
                kept_lengths.append(lens[i])
                prov = {"checkpoint": path, "seed": config.seed, "sample": i}
                prov["filters"] = [f for f in rejection_filters.FILTERS if f != "per_prompt"]
                reasoning.append(
                    {
                        "prompt": ex["question"],
                        "completion": samples[i],
                        "source": "rejection_sampled",
                        "task": name,
                        "ground_truth": ex["ground_truth"],
                        "provenance": prov,
                    }
                )
    n_samples = sum(r["samples"] for r in per_prompt)
    if not reasoning:
        raise config_check.ConfigError(
            f"rejection sampling from {path} kept nothing of {n_samples} samples (removed: "
            f"{removed}); sample more (config.num_prompts, config.sampling.samples) or relax "
            "config.filters."
        )
    n_kept = len(reasoning)
    reasoning += give_ups
    ratio = config.general.ratio
    general = general_records(config, int(round(len(reasoning) / ratio)) if ratio > 0 else 0)
    if config.record_topk:
        offsets, ids, logp = topk_record.record(
            graphdef, params, tok, reasoning, config.sampling.template, config.record_topk
        )
        topk_record.save(workdir, offsets, ids, logp)
        for j, r in enumerate(reasoning):
            r["provenance"].update(topk_row=j, topk_template=config.sampling.template)
    stats = {
        "source": path,
        "samples": n_samples,
        "correct": sum(r["correct"] for r in per_prompt),
        "kept_reasoning": n_kept,
        "give_ups": len(give_ups),
        "kept_general": len(general),
        "acceptance_rate": n_kept / n_samples,
        "removed": removed,
        "by_difficulty": rs_report.bucket_stats(per_prompt),
        "kept_tokens": rs_report.length_stats(kept_lengths),
        "samples_per_s": n_samples / max(seconds, 1e-9),
        "sampling_s": seconds,
        "record_topk": config.record_topk,
    }
    rs_report.plot(stats, kept_lengths, os.path.join(workdir, "plots", "rejection_sampling.png"))
    rs_report.write_samples(os.path.join(workdir, rs_report.SAMPLES), log)
    out = dataset_io.finish(workdir, reasoning + general, stats)
    print(
        f"r1jax: rejection sampling kept {n_kept} of {n_samples} samples "
        f"({stats['acceptance_rate']:.1%}) + {len(give_ups)} give-ups + {len(general)} general; "
        f"{out}",
        flush=True,
    )
    return stats
