"""The preference_data stage: responses to general prompts, labelled by the oracle, as pairs.

Per prompt (the general task's train and test splits, harm-inviting prompts included): k responses,
either sampled from a policy checkpoint (`source="policy"`, the R1 recipe: pairs from the model's own
samples) or made from the reference outputs by seeded perturbations (`source="reference_perturbed"`,
for when no general-capable model exists yet); both oracle scores of every response
(rewards/oracle.py); then labelled pairs of distinct responses per aspect with Bradley-Terry noise
(data/preference.py). Empty and duplicate responses and near-ties are dropped and counted.

Output in the workdir: `preferences.jsonl` (written atomically), `responses.jsonl` (every response
with its oracle scores: the oracle's view of the sampled model), `preference_data.json` (the run's
config hash, the statistics, the path; written last, so its presence means the data is complete) and
`plots/preference_data.png`. A workdir that holds another run's data is refused, never overwritten;
the same run again finds its data and redoes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections import Counter

import jax
import ml_collections
import numpy as np

from r1jax import config_base, config_check
from r1jax.data import perturb, preference, tasks
from r1jax.eval import harness
from r1jax.parallel import sharding
from r1jax.rewards import oracle
from r1jax.stages import common, init_model, rm_config, rm_plots
from r1jax.text import templates
from r1jax.tokenizers import stop_ids
from r1jax.train import checkpoint as ckpt_lib

OUTPUT, META, RESPONSES = "preferences.jsonl", "preference_data.json", "responses.jsonl"


def config_hash(config: ml_collections.ConfigDict) -> str:
    return hashlib.sha1(config.to_json_best_effort(sort_keys=True).encode()).hexdigest()[:16]


def finished(workdir: str, run: str) -> dict | None:
    """The stats of this run's finished data in `workdir`, None when absent; another run's data
    is a ConfigError (never overwritten)."""
    meta_path, out = os.path.join(workdir, META), os.path.join(workdir, OUTPUT)
    other = None
    if os.path.exists(meta_path):
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        if meta.get("run") == run and os.path.exists(out):
            return meta["stats"]
        other = meta.get("run")
    elif os.path.exists(out):
        with open(out, encoding="utf-8") as f:
            first = f.readline()
        got = json.loads(first).get("provenance", {}).get("run") if first.strip() else None
        other = None if got == run else (got or "unknown")
    if other is not None:
        raise config_check.ConfigError(
            f"{workdir} holds preference data of another run (config hash {other}, this one "
            f"{run}); use a new workdir or delete {out} and {meta_path}."
        )
    return None


def policy_responses(config, workdir, examples, mesh, rules) -> tuple[list, dict]:
    """k sampled completions per example from config.init's model, and their provenance."""
    graphdef, params, _, mcfg, tok, source = init_model.load_policy(config, workdir, mesh, rules)
    s = config.sampling
    ecfg = harness.EvalConfig(
        samples=config.samples_per_prompt,
        temperature=s.temperature,
        top_p=s.top_p,
        top_k=s.top_k,
        max_new_tokens=s.max_new_tokens,
        batch_prompts=s.batch_prompts,
        template=config.task.template,
    )
    sample_fn = harness.make_sample_fn(
        graphdef, ecfg, tok.eos_id, tok.pad_id, params, mesh, rules, stop_ids(tok)
    )
    key = jax.random.key(config.seed)
    texts = {}
    for i, (split, exs) in enumerate(examples.items()):
        print(f"r1jax: sampling {len(exs)} x {ecfg.samples} {split} responses", flush=True)
        texts[split] = harness.sample_texts(
            sample_fn, params, tok, exs, ecfg, jax.random.fold_in(key, i)
        )[0]
    step = None
    if os.path.isdir(os.path.join(source, "checkpoints")):
        step = ckpt_lib.read_meta(os.path.join(source, "checkpoints"))[0]
    prov = {"responses": "policy", "checkpoint": source, "checkpoint_step": step}
    prov["sampling"] = dict(s.to_dict(), samples_per_prompt=config.samples_per_prompt)
    return texts, prov


def perturbed(config, examples) -> tuple[dict, dict]:
    pcfg = rm_config.perturb_config(config)
    texts = {}
    for split, exs in examples.items():
        texts[split] = [
            perturb.perturbed_responses(
                ex, config.samples_per_prompt, random.Random(f"{config.seed}-{split}-{i}"), pcfg
            )
            for i, ex in enumerate(exs)
        ]
    return texts, {"responses": "reference_perturbed", "perturb": config.perturb.to_dict()}


def build_records(config, examples, texts, prov) -> tuple[list[dict], dict, list[dict]]:
    """(pair records, statistics, per-response oracle rows for the plot)."""
    pcfg = rm_config.pair_config(config)
    template = config.task.template
    records, counts, rows = [], Counter(), []
    for split, exs in examples.items():
        for i, (ex, resp) in enumerate(zip(exs, texts[split])):
            kind = ex["ground_truth"]["kind"]
            src = "harm" if kind == "harm" else "general"
            scores = oracle.score(resp, ex)
            for j in range(len(resp)):
                row = {"split": split, "question": ex["question"], "kind": kind, "source": src}
                row.update({a: float(v[j]) for a, v in scores.items()}, response=resp[j])
                rows.append(row)
            rng = random.Random(f"r1jax-pairs-{config.seed}-{split}-{i}")
            pairs, c = preference.make_pairs(resp, scores, rng, pcfg)
            counts.update({f"{split}_{k}": v for k, v in c.items()})
            prompt = (
                templates.render(template, ex["question"])
                if template in templates.TEMPLATES
                else ""
            )
            for p in pairs:
                rec = dict(p, split=split, question=ex["question"], template=template)
                rec.update(prompt=prompt, source=src, kind=kind, provenance=prov)
                rec["id"] = preference.pair_id(
                    ex["question"], p["chosen"], p["rejected"], p["aspect"]
                )
                records.append(rec)
                counts[f"{split}_{p['aspect']}_{src}"] += 1
    stats = dict(sorted(counts.items()))
    stats["responses"] = len(rows)
    for src in ("general", "harm"):
        got = [r for r in rows if r["source"] == src]
        if got:
            stats[f"{src}_helpfulness_mean"] = float(np.mean([r["helpfulness"] for r in got]))
            stats[f"{src}_harmlessness_mean"] = float(np.mean([r["harmlessness"] for r in got]))
    n = len(records)
    stats["pairs"] = n
    stats["label_flip_rate"] = (
        float(np.mean([not r["label"]["agrees_with_oracle"] for r in records])) if n else 0.0
    )
    return records, stats, rows


def write_lines(path: str, rows: list[dict]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in rows)
    os.replace(path + ".tmp", path)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    mesh = common.setup(config, config_base.preference_data())
    rules = common.rules(config)
    sharding.set_rules(rules)
    rm_config.validate_preference_data(config)
    out = os.path.join(workdir, OUTPUT)
    run_id = config_hash(config)
    done = finished(workdir, run_id)
    if done is not None:
        print(
            f"r1jax: preference data already finished in {out} ({done['pairs']} pairs)", flush=True
        )
        return {"path": out, "stats": done}
    opts = config.task.options.to_dict()
    examples = {}
    for split in ("train", "test"):
        exs = tasks.load("general", split, config.task.data_dir, **opts)
        n = config.prompts[split]
        examples[split] = exs[:n] if n else exs
    if config.source == "policy":
        dp = sharding.data_parallel_size(mesh, rules)
        common.require_batch(config.sampling.batch_prompts, dp, "sampling.batch_prompts")
        texts, prov = policy_responses(config, workdir, examples, mesh, rules)
    else:
        texts, prov = perturbed(config, examples)
    prov = dict(prov, seed=config.seed, run=run_id, oracle="r1jax.rewards.oracle")
    records, stats, rows = build_records(config, examples, texts, prov)
    if jax.process_index() == 0:  # every response and its oracle scores, pairs or not
        write_lines(os.path.join(workdir, RESPONSES), [dict(r, provenance=prov) for r in rows])
    if not records:
        raise config_check.ConfigError(
            "no preference pairs were made (every pair was a near-tie, empty or duplicate); lower "
            "config.pairs.min_gap or raise config.samples_per_prompt."
        )
    if jax.process_index() == 0:
        preference.write_jsonl(out, records)
        rm_plots.preference_data(rows, stats, os.path.join(workdir, "plots", "preference_data.png"))
        common.write_json(workdir, META, {"run": run_id, "path": out, "stats": stats,
                                          "config": json.loads(config.to_json_best_effort())})  # fmt: skip
    print(
        f"r1jax: wrote {len(records)} preference pairs to {out} (label flips "
        f"{stats['label_flip_rate']:.3f}); statistics in {os.path.join(workdir, META)}",
        flush=True,
    )
    return {"path": out, "stats": stats}
