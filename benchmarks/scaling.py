"""How the GRPO step's cost grows: time and memory against length, group, prompt and width.

    python benchmarks/scaling.py [--out benchmarks/results/scaling_<date>] [--quick]

One GRPO step = the sampler (prefill + fixed-length decode: no EOS, so every row writes every
token) + the update (reference forward, policy forward + backward, AdamW; mu = 1, beta 0.04,
the production `train_step.update`). Base point: a toy Qwen2-shaped model (d_model 128, 4 layers,
4 heads, 2 kv heads, mlp 384, vocab 512, float32), B = 2 prompts x G = 8, prompt 64, 128 new
tokens. Each sweep moves one factor from the base: completion length 64..1024, group size 4..32,
prompt length 32..512, width (d_model) 64..512. Beside each time stands its FLOP count (model
matmuls incl. attention: `flops.py`), so time/FLOP flat = linear scaling and a rise = overhead.
Memory is XLA's own accounting of each compiled program (arguments + temporaries); `cache` is the
sampler's KV cache as traced (shared prompt: one copy per prompt), `cache_repeated` what the
repeated-cache layout of the old sampler held for the same shapes.

Times are the median of `--reps` calls after a compile call, on whatever devices JAX sees (the
2-core CPU: minutes for the default sweep; `--quick` measures every second point). Writes
<out>.json and <out>.png (time and time/GFLOP per sweep).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from flops import grpo_step_flops  # noqa: E402

from r1jax.model import ModelConfig, api  # noqa: E402
from r1jax.parallel import sharding  # noqa: E402
from r1jax.rl import grpo_loss, train_step  # noqa: E402
from r1jax.sampling import sample as sampling  # noqa: E402
from r1jax.train import heap_policy, lm_step, optim  # noqa: E402

BASE = dict(d_model=128, prompt=64, group=8, new_tokens=128)
SWEEPS = {
    "new_tokens": [64, 128, 256, 512, 1024],
    "group": [4, 8, 16, 32],
    "prompt": [32, 64, 128, 256, 512],
    "d_model": [64, 128, 256, 512],
}
PROMPTS = 2


def model_cfg(d: int) -> ModelConfig:
    return ModelConfig(
        vocab_size=512, d_model=d, n_layers=4, n_heads=4, n_kv_heads=2, mlp_dim=3 * d, max_len=2048
    )


def _time(fn, reps: int) -> tuple[float, float]:
    """(compile + first call seconds, median of reps calls)."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t0)
    return first, statistics.median(ts)


def _bytes(compiled) -> int:
    m = compiled.memory_analysis()
    return int(m.argument_size_in_bytes + m.temp_size_in_bytes) if m is not None else -1


def cache_bytes(graphdef, params, prompt, valid, g: int, scfg, fast: bool) -> int:
    """Bytes of the decode loop's KV cache, read from the traced program's shapes."""
    state = jax.eval_shape(
        lambda p, x, v: sampling.decode(graphdef, p, x, v, jax.random.key(0), g, scfg, fast),
        params,
        prompt,
        valid,
    )
    c = state.cache
    kv = [c.k, c.v] + ([c.pk, c.pv] if fast else [])
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(kv))


def update_inputs(graphdef, params, pshard, mesh, point: dict) -> tuple:
    """(sample fn, prompt, valid, key, update fn, train state, rollouts) for one sweep point: the
    production sampler and `train_step.update` (mu = 1, beta 0.04) on its sampled completions."""
    cfg = model_cfg(point["d_model"])
    b, g, p, t = PROMPTS, point["group"], point["prompt"], point["new_tokens"]
    rng = np.random.default_rng(0)
    prompt = jnp.asarray(rng.integers(4, cfg.vocab_size, (b, p)), jnp.int32)
    valid = jnp.ones((b, p), bool)
    scfg = sampling.SamplingConfig(max_new_tokens=t, eos_id=-1)
    sample = jax.jit(lambda pr, x, v, k: sampling.sample(graphdef, pr, x, v, k, g, scfg))
    tx, _ = optim.make(optim.OptimizerConfig(lr=1e-5, warmup_steps=0, schedule="constant"), 10)
    state, _ = lm_step.init_state(graphdef, params, pshard, tx, mesh)
    state = train_step.state_with_ref(state, 0.04)
    ucfg = train_step.UpdateConfig(group_size=g, loss=grpo_loss.LossOptions(beta=0.04))
    update = jax.jit(lambda s, r: train_step.update(graphdef, tx, s, r, ucfg))
    key = jax.random.key(1)
    out = sample(params, prompt, valid, key)
    roll = {
        "prompt": prompt,
        "prompt_valid": valid,
        "completion": out.tokens_NxT,
        "mask_NxT": out.mask_NxT,
        "old_logp_NxT": out.logp_NxT,
        "rewards_NxR": jnp.asarray(rng.random((b * g, 1)), jnp.float32),
        "truncated_N": out.truncated_N,
    }
    return sample, prompt, valid, key, update, state, roll


def measure(point: dict, params_for, reps: int) -> dict:
    cfg = model_cfg(point["d_model"])
    graphdef, params, pshard, mesh = params_for(point["d_model"])
    b, g, p, t = PROMPTS, point["group"], point["prompt"], point["new_tokens"]
    n = b * g
    scfg = sampling.SamplingConfig(max_new_tokens=t, eos_id=-1)
    sample, prompt, valid, key, update, state, roll = update_inputs(
        graphdef, params, pshard, mesh, point
    )
    sample_first, sample_s = _time(lambda: sample(params, prompt, valid, key).tokens_NxT, reps)
    update_first, update_s = _time(lambda: update(state, roll)[1]["loss"], reps)
    flops = grpo_step_flops(cfg, b, g, p, t)
    shared = cache_bytes(graphdef, params, prompt, valid, g, scfg, True)
    per_slot = shared // (b * p + n * (t - 1))  # keys + values of all layers, one token
    return dict(
        point,
        sample_s=round(sample_s, 4),
        update_s=round(update_s, 4),
        step_s=round(sample_s + update_s, 4),
        first_call_s=round(sample_first + update_first, 2),
        sample_gflop=round(flops["sample"] / 1e9, 3),
        update_gflop=round(flops["update"] / 1e9, 3),
        step_s_per_gflop=round(
            (sample_s + update_s) / ((flops["sample"] + flops["update"]) / 1e9), 5
        ),
        sample_mem_mib=round(_bytes(sample.lower(params, prompt, valid, key).compile()) / 2**20, 2),
        update_mem_mib=round(_bytes(update.lower(state, roll).compile()) / 2**20, 2),
        cache_mib=round(shared / 2**20, 3),
        cache_repeated_mib=round(per_slot * n * (p + t - 1) / 2**20, 3),
    )


def plot(results: dict, path: str) -> None:
    """Row 1: seconds (log-log) with a dotted line that grows like the FLOPs from the first point
    (a curve above it grows faster than the work). Row 2: memory in MiB."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(results), figsize=(4 * len(results), 7))
    for j, (name, rows) in enumerate(results.items()):
        x = [r[name] for r in rows]
        ax = axes[0, j]
        for key, label in (("step_s", "step"), ("sample_s", "sampler"), ("update_s", "update")):
            ax.plot(x, [r[key] for r in rows], "o-", label=label)
        gflop = [r["sample_gflop"] + r["update_gflop"] for r in rows]
        ax.plot(x, [rows[0]["step_s"] * f / gflop[0] for f in gflop], "k:", label="step, if ~FLOPs")
        ax.set(xscale="log", yscale="log", xlabel=name, ylabel="seconds", title=f"time vs {name}")
        ax = axes[1, j]
        for key, label, style in (
            ("update_mem_mib", "update (XLA)", "s--"),
            ("sample_mem_mib", "sampler (XLA)", "o--"),
            ("cache_mib", "KV cache, shared prompt", "^-"),
            ("cache_repeated_mib", "KV cache, old (repeated)", "v:"),
        ):
            ax.plot(x, [r[key] for r in rows], style, label=label)
        ax.set(xscale="log", yscale="log", xlabel=name, ylabel="MiB", title=f"memory vs {name}")
        for a in axes[:, j]:
            a.set_xticks(x, [str(v) for v in x])
            a.minorticks_off()
            a.legend(fontsize=7)
    fig.suptitle("GRPO step scaling (base: d_model 128, B 2 x G 8, prompt 64, 128 new tokens)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main(argv: list[str]) -> None:
    heap_policy.configure()  # as `python -m r1jax.main` runs
    ap = argparse.ArgumentParser()
    date = datetime.date.today().isoformat()
    ap.add_argument("--out", default=f"benchmarks/results/scaling_{date}")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="every second point of each sweep")
    args = ap.parse_args(argv)
    mesh = sharding.make_mesh((1, 1, 1), jax.devices()[:1])
    cache: dict = {}

    def params_for(d: int):
        if d not in cache:
            graphdef, params, pshard = api.create(model_cfg(d), 0, mesh, sharding.DEFAULT_RULES)
            cache[d] = (graphdef, params, pshard, mesh)
        return cache[d]

    results, t0 = {}, time.perf_counter()
    for name, values in SWEEPS.items():
        values = values[::2] if args.quick else values
        results[name] = []
        for v in values:
            row = measure(dict(BASE, **{name: v}), params_for, args.reps)
            print(json.dumps(row), flush=True)
            results[name].append(row)
    out = {
        "date": date,
        "device": str(jax.devices()[0].device_kind),
        "cpu_count": os.cpu_count(),
        "base": dict(BASE, prompts=PROMPTS, model=dataclasses.asdict(model_cfg(BASE["d_model"]))),
        "wall_s": round(time.perf_counter() - t0, 1),
        "loadavg_end": os.getloadavg(),
        "sweeps": results,
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump(out, f, indent=1)
    plot(results, args.out + ".png")
    print(f"wrote {args.out}.json and {args.out}.png")


if __name__ == "__main__":
    main(sys.argv[1:])
