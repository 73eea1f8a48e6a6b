"""How close the sampler runs to its weight-matmul floor on this machine; prints one JSON object.

    python benchmarks/decode_floor.py [--rounds 5] [--reps 5] [--new-tokens 64]

Why: on a CPU each decode step multiplies N = 64 rows by every weight matrix, and XLA:CPU runs
matmuls of 64 rows well under its large-matmul rate. This script separates that floor from the
rest of the step (attention over the cache, cache writes, rope, norms, token choice), so a change
to the decode step can be judged against what is left to win.

Timed interleaved in one process (medians; compile excluded), on the shape of
`benchmarks/sampling.py` (the shared tiny config: 8 prompts x G 8, 7-token prompts, 64 new tokens):
- `sampler_s`: `sampling.decode` with the decode loop in one piece, no EOS (every row emits every
  token);
- `weight_matmul_floor_s`: a bare loop of T - 1 steps over the same weights in the decode step's
  fused layout (q/k/v as one matrix, gate/up as one, `decode.fuse_weights`), the output
  projection and the head: the decode step's matmuls at their FLOPs and shapes, with a cheap norm
  between layers and nothing else;
- `floor_share`: weight_matmul_floor_s / sampler_s, the part of the sampler no change outside the
  matmuls can remove; `floor_gflops_s` against `matmul_peak_gflops_s` (a 1,024-cube float32
  matmul, measured in each round) says how far 64-row matmuls sit from this CPU's peak;
- with `--profile DIR`: `sampler_ops`, the sampler's costliest XLA ops per call from a jax.profiler
  trace of 3 calls (op name, output shape from the compiled HLO, milliseconds, runs per call):
  on XLA:CPU `ynn_fusion`s are the dots (YNNPACK), the shape says which matmul it is.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import glob
import gzip
import json
import os
import re
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sampling import MODEL, B, G, P  # noqa: E402  (the shape sampling.py times)

from r1jax.model import api  # noqa: E402
from r1jax.parallel import sharding  # noqa: E402
from r1jax.sampling.decode import fuse_weights  # noqa: E402
from r1jax.sampling.sample import SamplingConfig, decode  # noqa: E402
from r1jax.train import heap_policy  # noqa: E402


def matmul_floor(steps: int):
    """A jitted bare loop: per step, every layer's fused q/k/v, output, gate/up and down matmuls
    and the head, on [N, D] rows (the decode step's weight FLOPs, nothing else)."""

    def run(fw, o, down, head, x_NxD):
        def body(_, carry):
            x, acc = carry
            for w, o_w, d_w in zip(fw, o, down):
                y = x @ w["qkv"]
                x = x + y[:, : o_w.shape[0]] @ o_w
                gate, up = jnp.split(x @ w["gate_up"], 2, axis=-1)
                x = x + (jax.nn.silu(gate) * up) @ d_w
                x = x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + 1e-6)
            return x, acc + (x @ head)[:, 0].sum()

        return jax.lax.fori_loop(0, steps, body, (x_NxD, jnp.zeros((), jnp.float32)))

    return jax.jit(run)


def op_profile(fn, hlo_text: str, trace_dir: str, calls: int = 3, top: int = 32) -> list:
    """The costliest ops of `fn` per call, from a perfetto trace of `calls` calls."""
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
        for _ in range(calls):
            jax.block_until_ready(fn())
    path = sorted(glob.glob(os.path.join(trace_dir, "**", "*.json.gz"), recursive=True))[-1]
    events = json.load(gzip.open(path))
    events = events["traceEvents"] if isinstance(events, dict) else events
    shapes = dict(re.findall(r"%([\w.-]+) = (\w+\[[^\]]*\])", hlo_text))
    total, count = collections.Counter(), collections.Counter()
    for e in events:
        op = e.get("args", {}).get("hlo_op")
        if e.get("ph") == "X" and op and not e["name"].startswith("ThunkExecutor"):
            total[op] += e["dur"]
            count[op] += 1
    return [
        [op, shapes.get(op, "?"), round(us / calls / 1000, 2), count[op] // calls]
        for op, us in total.most_common(top)
    ]


def main() -> None:
    heap_policy.configure()
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument(
        "--profile", default="", help="a folder for a jax.profiler trace of the sampler"
    )
    args = ap.parse_args()
    t = args.new_tokens
    mesh = sharding.make_mesh((1, 1, 1), jax.devices()[:1])
    graphdef, params, _ = api.create(MODEL, 0, mesh, sharding.DEFAULT_RULES)
    model = nnx.merge(graphdef, params)
    rng = np.random.default_rng(0)
    prompt_BxP = jnp.asarray(rng.integers(4, MODEL.vocab_size, (B, P)), jnp.int32)
    valid_BxP = jnp.ones((B, P), bool)
    cfg = SamplingConfig(max_new_tokens=t, temperature=1.0, eos_id=-1, cache_pieces=1)
    run = jax.jit(decode, static_argnums=(0, 5, 6))
    fw = fuse_weights(model)
    o = [layer.attn.o_proj[...].reshape(-1, MODEL.d_model) for layer in model.layers]
    down = [layer.mlp.down_proj[...] for layer in model.layers]
    head = model.head_weight()
    floor = matmul_floor(t - 1)
    x_NxD = jax.random.normal(jax.random.key(1), (B * G, MODEL.d_model), jnp.float32)
    n = 1024
    a = jax.random.normal(jax.random.key(2), (n, n), jnp.float32)
    mm = jax.jit(lambda u, v: u @ v)
    fns = {
        "sampler": lambda: (
            run(graphdef, params, prompt_BxP, valid_BxP, jax.random.key(0), G, cfg).tokens_NxT
        ),
        "floor": lambda: floor(fw, o, down, head, x_NxD),
        "peak": lambda: mm(a, a),
    }
    for fn in fns.values():  # compile
        jax.block_until_ready(fn())
    wall = {k: [] for k in fns}
    peaks = []
    for _ in range(args.rounds):
        for k, fn in fns.items():
            for _ in range(args.reps):
                t0 = time.perf_counter()
                jax.block_until_ready(fn())
                wall[k].append(time.perf_counter() - t0)
        peaks.append(2 * n**3 / min(wall["peak"][-args.reps :]))
    med = {k: statistics.median(v) for k, v in wall.items()}
    ops = None
    if args.profile:
        key = jax.random.key(0)
        hlo = run.lower(graphdef, params, prompt_BxP, valid_BxP, key, G, cfg).compile().as_text()
        ops = op_profile(fns["sampler"], hlo, args.profile)
    per_layer = MODEL.d_model * (fw[0]["qkv"].shape[1] + o[0].shape[0] + fw[0]["gate_up"].shape[1])
    per_layer += down[0].size
    flops = 2 * B * G * (t - 1) * (MODEL.n_layers * per_layer + head.size)
    print(
        json.dumps(
            {
                "device": str(jax.devices()[0].device_kind),
                "rows": B * G,
                "new_tokens": t,
                "loadavg_1min_end": round(os.getloadavg()[0], 2),
                "sampler_s": med["sampler"],
                "weight_matmul_floor_s": med["floor"],
                "floor_share": med["floor"] / med["sampler"],
                "floor_gflops_s": flops / med["floor"] / 1e9,
                "matmul_peak_gflops_s": statistics.median(peaks) / 1e9,
                "sampler_ops": ops,
                "model": dataclasses.asdict(MODEL),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
