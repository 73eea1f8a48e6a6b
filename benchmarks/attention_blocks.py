"""Causal attention block by block against whole and two-half attention: forward + backward time.

    python benchmarks/attention_blocks.py [--rounds 5] [--lengths 256,448,1024] \
        [--update-lengths 256,512,1024]

Why: without a KV cache (the GRPO update, SFT, the reference forward) queries [s, e) only see keys
[0, e), so `Transformer` attends block by block (`transformer.causal_blocks`, ~64 queries a block)
and skips about half of the score / softmax work and of the probabilities kept for the backward
pass. This times the gradient of a next-token loss of the toy model (d_model 128, 4 layers, 4 heads,
2 kv heads, vocab 512, float32) on [B, T] tokens with the block size set to: the whole call in one
block (`whole`), two halves (`halves`, the layout before blocks), and 32, 64 (the default) and 128
queries. `--update-lengths`: the production GRPO update (`train_step.update`: reference forward,
shared-prefix policy forward + backward, AdamW; 2 prompts x G 8, prompt 64, beta 0.04, as
benchmarks/scaling.py) on that many new tokens, whole attention against 64-query blocks, with XLA's
memory accounting of each program. Variants are compiled first and then timed in interleaved rounds (the machine is shared:
only same-round ratios count); each figure is the median over rounds. Prints one JSON object.
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
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from r1jax.model import ModelConfig, api, transformer  # noqa: E402
from r1jax.model.presets import MODEL_PRESETS  # noqa: E402
from r1jax.parallel import sharding  # noqa: E402

BATCH_TOKENS = 8192  # rows per length: BATCH_TOKENS // T


def compiled_grad(graphdef, params: dict, tokens_BxT: jax.Array, block: int):
    """d(next-token loss)/d(params), compiled with `block` queries per attention block."""

    def loss(p, tokens):
        logits, _ = api.apply(graphdef, p, tokens)
        return api.token_logprobs(logits[:, :-1], tokens[:, 1:]).mean()

    saved = transformer._CAUSAL_BLOCK
    transformer._CAUSAL_BLOCK = block  # read at trace time
    try:
        return jax.jit(jax.grad(loss)).lower(params, tokens_BxT).compile()
    finally:
        transformer._CAUSAL_BLOCK = saved


def run(lengths: list[int], rounds: int) -> dict:
    cfg = ModelConfig(**(MODEL_PRESETS["toy"] | dict(max_len=max(lengths))))
    mesh = sharding.make_mesh((1, 1, 1))
    graphdef, params, _ = api.create(cfg, 0, mesh, sharding.DEFAULT_RULES)
    out: dict = {"model": "toy", "rounds": rounds, "default_block": transformer._CAUSAL_BLOCK}
    for t in lengths:
        b = max(BATCH_TOKENS // t, 1)
        tokens = jnp.asarray(
            np.random.default_rng(0).integers(0, cfg.vocab_size, (b, t)), jnp.int32
        )
        blocks = {"whole": 10**9, "halves": t // 2, "32": 32, "64": 64, "128": 128}
        compiled = {name: compiled_grad(graphdef, params, tokens, k) for name, k in blocks.items()}
        for fn in compiled.values():
            jax.block_until_ready(fn(params, tokens))
        times: dict[str, list[float]] = {name: [] for name in compiled}
        for _ in range(rounds):
            for name, fn in compiled.items():
                t0 = time.perf_counter()
                jax.block_until_ready(fn(params, tokens))
                times[name].append(time.perf_counter() - t0)
        med = {name: statistics.median(v) for name, v in times.items()}
        out[f"T{t}"] = {
            "batch": b,
            "seconds": {k: round(v, 4) for k, v in med.items()},
            "vs_whole": {k: round(v / med["whole"], 3) for k, v in med.items()},
            "vs_halves": {k: round(v / med["halves"], 3) for k, v in med.items()},
        }
        print(json.dumps({f"T{t}": out[f"T{t}"]}), file=sys.stderr, flush=True)
    return out


def update_run(lengths: list[int], rounds: int) -> dict:
    """The GRPO update with whole attention vs 64-query blocks (the completions' path included)."""
    mesh = sharding.make_mesh((1, 1, 1))
    out: dict = {}
    for t in lengths:
        out[f"new_tokens{t}"] = _update_point(t, rounds, mesh)
        print(json.dumps({f"new_tokens{t}": out[f"new_tokens{t}"]}), file=sys.stderr, flush=True)
    return out


def _update_point(t: int, rounds: int, mesh) -> dict:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import scaling  # noqa: PLC0415 - the scaling benchmark's model and update

    point = dict(scaling.BASE, new_tokens=t)
    graphdef, params, pshard = api.create(
        scaling.model_cfg(point["d_model"]), 0, mesh, sharding.DEFAULT_RULES
    )
    *_, update, state, roll = scaling.update_inputs(graphdef, params, pshard, mesh, point)
    fns, mem = {}, {}
    for name, block in (("whole", 10**9), ("blocks64", 64)):
        saved = transformer._CAUSAL_BLOCK
        transformer._CAUSAL_BLOCK = block  # read at trace time
        try:
            fresh = lambda s, r: update.__wrapped__(s, r)  # noqa: E731 - a new trace per size
            fns[name] = jax.jit(fresh).lower(state, roll).compile()
        finally:
            transformer._CAUSAL_BLOCK = saved
        m = fns[name].memory_analysis()
        mem[name] = round((m.argument_size_in_bytes + m.temp_size_in_bytes) / 2**20, 1)
        jax.block_until_ready(fns[name](state, roll)[1]["loss"])
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn(state, roll)[1]["loss"])
            times[name].append(time.perf_counter() - t0)
    med = {name: statistics.median(v) for name, v in times.items()}
    return {
        "update_s": {k: round(v, 4) for k, v in med.items()},
        "blocks_vs_whole": round(med["blocks64"] / med["whole"], 3),
        "memory_mib": mem,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--lengths", default="256,448,1024", help="comma-separated; '' skips")
    ap.add_argument("--update-lengths", default="", help="GRPO update new tokens, comma-separated")
    a = ap.parse_args()
    ints = lambda text: [int(x) for x in text.split(",") if x]  # noqa: E731
    out = run(ints(a.lengths), a.rounds) if ints(a.lengths) else {}
    if ints(a.update_lengths):
        out["grpo_update"] = update_run(ints(a.update_lengths), a.rounds)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
