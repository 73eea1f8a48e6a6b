"""The cold-start data stage: R1-Zero's correct traces rewritten into the readable pattern, plus
hand-designed examples in the same pattern (data/cold_start.py).

    python -m r1jax.main --config=experiments/cold_start_sft.py:data --workdir=/tmp/r1jax/cold_start_data

From the R1-Zero model (`source`, a stage workdir; built with `source.build` if missing): k samples
for each of `num_prompts` train prompts; a sample is kept when it is correct (the task's verifier),
in the strict R1-Zero format, and its rewrite is readable and still correct; at most
`keep_per_prompt` per prompt, duplicates dropped. Then `designed.countdown` / `designed.arithmetic`
generated examples. Writes sft_data.jsonl, stats.json (counts at every step) and tokenizer.model.
"""

from __future__ import annotations

import itertools

import jax
import ml_collections
import numpy as np

from r1jax import config_base, config_check, rewards
from r1jax.data import cold_start, tasks
from r1jax.parallel import sharding
from r1jax.stages import common, data_sampling, dataset_io, inputs
from r1jax.text import toy_language
from r1jax.text.parsing import readable_format_ok, strict_format_ok


def validate(config: ml_collections.ConfigDict) -> None:
    for key in ("num_prompts", "keep_per_prompt", "designed.countdown", "designed.arithmetic"):
        value = config[key] if "." not in key else config.designed[key.split(".")[1]]
        if value < 0:
            raise config_check.ConfigError(f"config.{key}={value} must be >= 0.")
    config_check.require_positive(
        config, "sampling.samples", "sampling.max_new_tokens", "designed.passes"
    )
    if config.language not in toy_language.LANGS:
        raise config_check.ConfigError(
            f"config.language={config.language!r} is not one of {sorted(toy_language.LANGS)}."
        )
    d = config.designed
    _quota(d.countdown, d.give_up_share, d.give_up, d.near_miss_share)  # raises on bad shares
    try:  # before R1-Zero is sampled: a bad check or order would only fail after it
        cold_start.DesignConfig(order=d.order, check=d.check)
    except ValueError as e:
        raise config_check.ConfigError(str(e)) from None


def _record(ex: dict, completion: str, source: str, provenance: dict) -> dict:
    return {
        "prompt": ex["question"],
        "completion": completion,
        "source": source,
        "task": ex["task"],
        "ground_truth": ex["ground_truth"],
        "provenance": provenance,
    }


def rewritten(config, workdir: str, mesh, rules) -> tuple[list[dict], dict]:
    """R1-Zero samples kept and rewritten, and the counts of every step."""
    src = config.source
    path = inputs.ensure_model(
        inputs.resolve(src.checkpoint, workdir),
        src.build,
        src.build_if_missing,
        "source.checkpoint",
    )
    graphdef, params, _, tok = inputs.load_model(path, mesh, rules)
    data_sampling.publish_tokenizer(path, workdir)
    t = config.task
    pool = tasks.load(t.name, "train", t.data_dir, **t.options.to_dict())
    prompts = data_sampling.pick(pool, config.num_prompts, config.seed)
    key = jax.random.key(config.seed)
    texts, _, _, secs = data_sampling.sample(
        graphdef, params, tok, prompts, config.sampling, mesh, rules, key
    )
    accuracy = rewards.build([tasks.accuracy_reward(t.name)])[0]
    counts = dict(prompts=len(prompts), samples=0, correct=0, strict_format=0, readable=0, kept=0)
    out = []
    for ex, samples in zip(prompts, texts):
        ok = np.nan_to_num(accuracy(samples, [ex] * len(samples))) >= 1.0
        seen, kept = set(), 0
        for text, right in zip(samples, ok):
            counts["samples"] += 1
            counts["correct"] += int(right)
            if not (right and strict_format_ok(text)):
                continue
            counts["strict_format"] += 1
            new = cold_start.rewrite(text, ex, config.language, config.designed.check)
            if new is None or not readable_format_ok(new) or accuracy([new], [ex])[0] < 1.0:
                continue
            counts["readable"] += 1
            if new in seen or kept >= config.keep_per_prompt:
                continue
            seen.add(new)
            kept += 1
            prov = {"checkpoint": path, "seed": config.seed, "filters": ["correct", "format"]}
            out.append(_record(ex, new, "r1_zero_rewrite", prov))
    counts["kept"] = len(out)
    counts["samples_per_s"] = counts["samples"] / max(secs, 1e-9)
    return out, counts


def _quota(
    n: int, give_up_share: float, give_up: bool, near_miss_share: float = 0.0
) -> dict[str, int] | None:
    """{kind: how many searches of that kind to keep} (kinds: `_kind`), or None to keep searches
    as they fall."""
    for key, share in (("give_up_share", give_up_share), ("near_miss_share", near_miss_share)):
        if not 0.0 <= share < 1.0:
            raise config_check.ConfigError(
                f"designed.{key}={share}: use a share in [0, 1) (0 = as the searches fall)."
            )
    if not give_up_share:
        if near_miss_share:
            raise config_check.ConfigError(
                "designed.near_miss_share > 0 needs designed.give_up_share > 0 (the shares are "
                "kept by picking problems, so every kind of search needs its count)."
            )
        return None
    if not give_up:
        raise config_check.ConfigError(
            "designed.give_up_share > 0 needs designed.give_up=True (searches that give up)."
        )
    gave_up, near = round(give_up_share * n), round(near_miss_share * n)
    if gave_up + near > n:
        raise config_check.ConfigError(
            f"designed.give_up_share + designed.near_miss_share = {give_up_share + near_miss_share}"
            " is over 1; lower one of them."
        )
    return {"give_up": gave_up, "near_miss": near, "hit": n - gave_up - near}


def _kind(text: str, near_miss_share: float, target: int) -> str:
    """give_up: the search gave up; near_miss (counted only when its share is set): it hit after
    saying `no` to a value with the target's last digit; hit: any other search that hit."""
    if cold_start.gives_up(text):
        return "give_up"
    return "near_miss" if near_miss_share and cold_start.near_misses(text, target) else "hit"


def designed(config) -> tuple[list[dict], dict]:
    """Hand-designed examples of the corpus generator, in the readable pattern."""
    d, out = config.designed, []
    dcfg = cold_start.DesignConfig(d.intuition, d.max_attempts, d.give_up, d.order, d.check)
    rng = np.random.default_rng([config.seed, 31])
    prov = {"generator": "data/cold_start.py", "seed": config.seed}
    if d.countdown:
        t = config.task if config.task.name == "countdown" else config_base.task("countdown")
        pool = tasks.load("countdown", "train", t.data_dir, **t.options.to_dict())
        # give_up_share > 0: that share of the searches are ones that gave up (problems picked, no
        # search altered), so a sharp intuition that rarely fails still shows the model how to
        # stop; near_miss_share > 0: that share are hits after a `no` to a value that ends in the
        # target's digit (the toy models answer `yes` to most of those: README, "False yes")
        quota = _quota(d.countdown, d.give_up_share, d.give_up, d.near_miss_share)
        want = dict(quota or {})
        # passes > 1: the pool again, in a new order, with new searches, while a quota is short
        # (a sharp intuition gives up on too few of the problems to fill it)
        passes = (data_sampling.pick(pool, 0, config.seed + 1 + 7919 * k) for k in range(d.passes))
        for ex in itertools.chain.from_iterable(passes):
            text = cold_start.designed_countdown(ex, rng, dcfg)
            target = int(ex["ground_truth"]["target"])
            kind = None if text is None else _kind(text, d.near_miss_share, target)
            if text is not None and (quota is None or quota[kind] > 0):
                out.append(_record(ex, text, "hand_designed", prov))
                if quota is not None:
                    quota[kind] -= 1
            if len(out) == d.countdown:
                break
        short = [k for k in ("give_up", "near_miss") if quota is not None and quota[k] > 0]
        if short:
            k = short[0]
            raise config_check.ConfigError(
                f"designed.{k}_share={d[k + '_share']}: {len(pool)} Countdown train problems "
                f"give {want[k] - quota[k]} searches of that kind, short of the share; lower the "
                "share, designed.countdown or designed.max_attempts, or raise "
                "designed.intuition (wider searches give up more) or designed.passes (more "
                "searches per problem)."
            )
    n_count = len(out)
    n_give_up = sum(cold_start.gives_up(r["completion"]) for r in out)
    if d.arithmetic:
        pool = tasks.load("arithmetic", "train", "", n_train=max(4 * d.arithmetic, 2000))
        for ex in data_sampling.pick(pool, d.arithmetic, config.seed + 2):
            out.append(_record(ex, cold_start.designed_arithmetic(ex), "hand_designed", prov))
    n_near = sum(
        cold_start.near_misses(r["completion"], int(r["ground_truth"]["target"])) > 0
        for r in out[:n_count]
    )
    stats = {
        "countdown": n_count,
        "countdown_give_up": n_give_up,
        "countdown_near_miss": n_near,
        "arithmetic": len(out) - n_count,
    }
    return out, stats


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    mesh = common.setup(config, config_base.cold_start_data())
    rules = common.rules(config)
    sharding.set_rules(rules)
    validate(config)
    done = dataset_io.claim(workdir, config)
    if done is not None:
        return done
    records, stats = [], {"r1_zero": None}
    if config.num_prompts:
        records, stats["r1_zero"] = rewritten(config, workdir, mesh, rules)
    hand, stats["designed"] = designed(config)
    records += hand
    if not records:
        raise config_check.ConfigError(
            f"cold-start data for {workdir}: nothing kept (R1-Zero: {stats['r1_zero']}); raise "
            "config.num_prompts or config.sampling.samples, or add config.designed examples."
        )
    stats["records"] = len(records)
    stats["by_source"] = {
        s: sum(r["source"] == s for r in records) for s in sorted({r["source"] for r in records})
    }
    path = dataset_io.finish(workdir, records, stats)
    print(
        f"r1jax: cold-start data: {len(records)} examples {stats['by_source']} in {path}",
        flush=True,
    )
    return stats
