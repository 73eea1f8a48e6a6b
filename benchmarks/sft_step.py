"""SFT speed with packing on and off, on cold-start data and on the 3:1 mix; rejection-sampling speed.

    python benchmarks/sft_step.py [--base /tmp/r1jax/base] [--steps 8] [--out FILE]

Data: the cold-start data set and the 3:1 rejection-sampling mix of /tmp/r1jax (the experiments'
workdirs) when they exist, otherwise stand-ins of the same kinds made by the generators (hand-designed
Countdown + arithmetic in the readable pattern; the same plus general-task references at 3:1).
Model: the toy base (0.92M parameters) from --base when it exists, else the toy shape at random init;
the production SFT step (stages/sft.py: sft_step.make_sft_step, AdamW) on 16 rows of 384 tokens,
one device. For each data set and packing on/off: the median step time over --steps steps after
two warm-up steps (the bucketed path compiles one program per bucket length, warmed up first),
example tokens per second (padding excluded) and the share of padding in the rows.
Rejection sampling: the stage's sampler, verifier and filters (k = 8 samples of 16 Countdown prompts,
192 new tokens, temperature 0.6, top-p 0.95): samples per second. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from r1jax import config_base, rewards  # noqa: E402
from r1jax.data import (  # noqa: E402  # noqa: E402
    arithmetic,
    cold_start,
    countdown,
    general_task,
    rejection_filters,
    sft_batches,
    sft_format,
    tasks,
)
from r1jax.model import api  # noqa: E402
from r1jax.parallel import sharding  # noqa: E402
from r1jax.stages import common, data_sampling, inputs  # noqa: E402
from r1jax.tokenizers import sentencepiece as tok_lib  # noqa: E402
from r1jax.train import lm_step, optim, sft_step  # noqa: E402


def stand_in(mix: bool) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for ex in countdown.examples("train", 600):
        text = cold_start.designed_countdown(ex, rng, cold_start.DesignConfig())
        if text:
            out.append(dict(prompt=ex["question"], completion=text, task="countdown"))
    for ex in arithmetic.examples("train", 300):
        out.append(dict(prompt=ex["question"], completion=cold_start.designed_arithmetic(ex)))
    if mix:
        for ex in general_task.generate_splits(0, len(out) // 3, 10)["train"]:
            out.append(dict(prompt=ex["question"], completion=cold_start.general_completion(ex)))
    return [dict(r, source="stand_in", task=r.get("task", "x")) for r in out]


def load_data(name: str, mix: bool) -> tuple[list[dict], str]:
    path = os.path.join("/tmp/r1jax", name)
    if os.path.exists(os.path.join(path, sft_format.FILENAME)):
        return sft_format.read(path), path
    return stand_in(mix), "generated stand-in"


def time_sft(
    graphdef, params, pshard, tok, records, packing: bool, steps: int, mesh, seq_len: int
) -> dict:
    bcfg = sft_batches.BatchConfig(seq_len=seq_len, batch_size=16, packing=packing, bucket=32)
    encoded = [sft_batches.encode(tok, "r1_zero", r) for r in records]
    lengths = [len(e[0]) for e in encoded]
    plan = sft_batches.epoch_plan(lengths, 0, bcfg)
    ocfg = optim.OptimizerConfig(lr=1e-4, warmup_steps=0)
    tx, lr_fn = optim.make(ocfg, 100)
    params = jax.tree.map(jnp.copy, params)  # the step donates its state: keep the caller's
    state, sshard = lm_step.init_state(graphdef, params, pshard, tx, mesh)
    with jax.set_mesh(mesh):
        step = sft_step.make_sft_step(graphdef, tx, lr_fn, 1, sshard, None)
    batches = [sft_batches.make_batch(b, encoded, bcfg, tok.pad_id) for b in plan[: steps + 2]]
    for b in batches if not packing else batches[:2]:  # compile every bucket first
        state, m = step(state, b)
    jax.block_until_ready(m)
    times, used, slots = [], 0, 0
    for b, rows in zip(batches[2:], plan[2 : steps + 2]):
        t0 = time.perf_counter()
        state, m = step(state, b)
        jax.block_until_ready(m)
        times.append(time.perf_counter() - t0)
        used += sum(lengths[i] for r in rows for i in r)
        slots += b["tokens"].size
    return {
        "examples": len(records),
        "steps_per_epoch": len(plan),
        "step_s_median": statistics.median(times),
        "tokens_per_s": used / sum(times),
        "padding_share": 1 - used / slots,
    }


def time_rejection(graphdef, params, tok, mesh, rules) -> dict:
    s = config_base.rejection_sampling().sampling
    prompts = data_sampling.pick(tasks.load("countdown", "train", ""), 16, 0)
    verifier = rewards.build(["countdown_accuracy"])[0]
    fcfg = rejection_filters.FilterConfig()
    data_sampling.sample(graphdef, params, tok, prompts[:16], s, mesh, rules, jax.random.key(1))
    t0 = time.perf_counter()
    texts, lengths, truncs, secs = data_sampling.sample(
        graphdef, params, tok, prompts, s, mesh, rules, jax.random.key(0)
    )
    kept = 0
    for ex, t, n, tr in zip(prompts, texts, lengths, truncs):
        ok = list(verifier(t, [ex] * len(t)) >= 1.0)
        kept += len(rejection_filters.select(t, n, tr, ok, fcfg)[0])
    total = time.perf_counter() - t0
    n = sum(len(t) for t in texts)
    return {"samples": n, "samples_per_s": n / total, "sampling_share": secs / total, "kept": kept}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="/tmp/r1jax/base")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--seq_len", type=int, default=384)  # the SFT stage's default row length
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    rules = tuple(sharding.DEFAULT_RULES)
    sharding.set_rules(rules)
    mesh = sharding.make_mesh((1, 1, 1), jax.devices()[:1])
    trained = os.path.exists(os.path.join(a.base, "model_config.json"))
    if trained:
        graphdef, params, mcfg, tok = inputs.load_model(a.base, mesh, rules)
        pshard = jax.tree.map(lambda x: x.sharding, params)
    else:
        mcfg = common.model_config(ml_collections.ConfigDict({"model": config_base.model("toy")}))
        graphdef, params, pshard = api.create(mcfg, 0, mesh, rules)
        docs = [r["prompt"] + r["completion"] for r in stand_in(True)]
        tok = tok_lib.train(docs, 512)
    out = {
        "model": "toy base" if trained else "toy shape, random init",
        "device": str(jax.devices()[0]),
    }
    for name, mix in (("cold_start_data", False), ("rejection_sampling", True)):
        records, source = load_data(name, mix)
        out[name] = {"data": source}
        for packing in (True, False):
            key = "packed" if packing else "buckets"
            out[name][key] = time_sft(
                graphdef, params, pshard, tok, records, packing, a.steps, mesh, a.seq_len
            )
    out["rejection_sampling_speed"] = time_rejection(graphdef, params, tok, mesh, rules)
    text = json.dumps(out, indent=1)
    print(text)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
