"""Training-step speed and model FLOP utilisation (MFU) against this machine's measured f32 peak.

    python benchmarks/train_step.py [--preset bench_512] [--seq-len 256] [--batch 8] [--rounds 5]

Model: `config_base.MODEL_PRESETS[preset]` in float32 (bench_512: d_model 512, 8 layers, 8 heads,
mlp 1536, vocab 512). Work: one `lm_step.make_train_step` step (forward, backward, global-norm
clipping, AdamW; the production step) on [batch, seq_len] tokens, one device (XLA uses every core).

Peak: the best of 10 jitted 2048x2048 float32 matmuls (2 * 2048^3 FLOPs each), measured in the same
process. The machine is shared and noisy, so the script alternates `--rounds` rounds of (peak, train
steps). `mfu` is the median of the per-round MFUs (each round's median step against that round's
peak); `mfu_best_vs_best` compares the fastest step with the highest peak of the whole run. Both
move with other jobs (a round's ~1.5 s peak burst and its steps can see different load), so
repeat the run and compare medians.
MFU = ModelConfig.flops_per_token(seq_len) * tokens/s / peak (model FLOPs: forward + backward =
3 x forward, causal attention counted at T/2). `--breakdown` also times the forward, the forward +
backward, and the attention / MLP / head parts of one layer in isolation. Prints one JSON object.
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
from flax import nnx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from r1jax import config_base
from r1jax.model import ModelConfig, api  # noqa: E402
from r1jax.model.transformer import rope_inv_freq  # noqa: E402
from r1jax.parallel import sharding
from r1jax.train import heap_policy, lm_step, optim

PEAK_N = 2048


def best_time(fn, *args, reps: int) -> float:
    """Best wall time of `reps` calls (after one warm-up call)."""
    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def matmul_peak(reps: int = 10) -> float:
    """FLOP/s of the best 2048x2048 f32 matmul (the ceiling any f32 model step can reach)."""
    k1, k2 = jax.random.split(jax.random.key(0))
    a = jax.random.normal(k1, (PEAK_N, PEAK_N), jnp.float32)
    b = jax.random.normal(k2, (PEAK_N, PEAK_N), jnp.float32)
    mm = jax.jit(lambda x, y: x @ y)
    return 2 * PEAK_N**3 / best_time(mm, a, b, reps=reps)


def build_step(cfg: ModelConfig, batch: int, seq_len: int, grad_accum: int):
    """(jitted step, state, batch) on a one-device mesh: the production lm_train step."""
    mesh = sharding.make_mesh((1, 1, 1), jax.devices()[:1])
    rules = sharding.DEFAULT_RULES
    graphdef, params, pshard = api.create(cfg, 0, mesh, rules)
    tx, lr_fn = optim.make(optim.OptimizerConfig(lr=1e-4, warmup_steps=10), 1000)
    state, sshard = lm_step.init_state(graphdef, params, pshard, tx, mesh)
    bshard = lm_step.batch_shardings(mesh, rules)
    with jax.set_mesh(mesh):
        step = lm_step.make_train_step(graphdef, tx, lr_fn, grad_accum, sshard, bshard)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, cfg.vocab_size, (batch, seq_len + 1)).astype(np.int32)
    data = {
        "tokens": sharding.shard_batch(tokens, mesh, rules),
        "loss_mask": sharding.shard_batch(np.ones_like(tokens, bool), mesh, rules),
    }
    return step, state, data, graphdef, mesh


def time_steps(step, state, data, mesh, n: int) -> tuple[list[float], dict]:
    """Seconds of each of n steps (the state is donated, so it is threaded through)."""
    times = []
    with jax.set_mesh(mesh):
        for _ in range(n):
            t0 = time.perf_counter()
            state, m = step(state, data)
            jax.block_until_ready(m["loss"])
            times.append(time.perf_counter() - t0)
    return times, state


def breakdown(cfg: ModelConfig, graphdef, params, data, reps: int) -> dict:
    """Seconds of the forward loss, forward + backward, and one layer's parts, in isolation.

    The parts' "fwd_bwd" differentiates with respect to their input only (no weight gradients),
    so they show where the forward and the activation backward go, not the whole step.
    """
    tokens, mask = data["tokens"], data["loss_mask"]
    loss = lambda p: lm_step.loss_sum(graphdef, p, tokens, mask)[0]  # noqa: E731
    out = {
        "forward_s": best_time(jax.jit(loss), params, reps=reps),
        "forward_backward_s": best_time(jax.jit(jax.grad(loss)), params, reps=reps),
    }
    model = nnx.merge(graphdef, params)
    b, t = tokens.shape[0], tokens.shape[1] - 1
    x = jax.random.normal(jax.random.key(1), (b, t, cfg.d_model), jnp.float32)
    pos = jnp.broadcast_to(jnp.arange(t), (b, t))
    valid = jnp.ones((b, t), bool)
    inv = rope_inv_freq(cfg)
    layer = model.layers[0]
    parts = {
        "attention": lambda x: layer.attn(x, pos, jnp.arange(t), None, valid, None, inv)[0].sum(),
        "mlp": lambda x: layer.mlp(x).sum(),
        "head_logsoftmax": lambda x: jax.nn.logsumexp(model.logits(x), -1).sum(),
    }
    for name, f in parts.items():
        out[f"{name}_fwd_s"] = best_time(jax.jit(f), x, reps=reps)
        out[f"{name}_fwd_bwd_s"] = best_time(jax.jit(jax.grad(f)), x, reps=reps)
    return out


def main(argv: list[str]) -> None:
    heap_policy.configure()  # as `python -m r1jax.main` runs
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="bench_512")
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--steps", type=int, default=5, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--breakdown", action="store_true")
    args = p.parse_args(argv)

    cfg = ModelConfig.from_dict(dict(config_base.MODEL_PRESETS[args.preset]))
    t0 = time.perf_counter()
    step, state, data, graphdef, mesh = build_step(cfg, args.batch, args.seq_len, args.grad_accum)
    with jax.set_mesh(mesh):
        state, m = step(state, data)  # compile + warm-up
        jax.block_until_ready(m["loss"])
    compile_s = time.perf_counter() - t0
    tokens = args.batch * args.seq_len
    flops_per_step = cfg.flops_per_token(args.seq_len) * tokens
    peaks, steps, mfus = [], [], []
    for _ in range(args.rounds):
        peaks.append(matmul_peak())
        times, state = time_steps(step, state, data, mesh, args.steps)
        steps.extend(times)
        mfus.append(flops_per_step / statistics.median(times) / peaks[-1])
    step_s, peak = min(steps), max(peaks)
    out = {
        "preset": args.preset,
        "params_M": round(cfg.num_params() / 1e6, 3),
        "batch": args.batch,
        "seq_len": args.seq_len,
        "grad_accum": args.grad_accum,
        "devices": jax.device_count(),
        "step_s": round(step_s, 4),
        "step_s_median": round(statistics.median(steps), 4),
        "step_s_all": [round(s, 3) for s in steps],
        "tokens_per_s": round(tokens / step_s, 1),
        "model_gflop_per_step": round(flops_per_step / 1e9, 3),
        "model_gflop_per_s": round(flops_per_step / step_s / 1e9, 2),
        "peak_f32_matmul_gflop_per_s": round(peak / 1e9, 2),
        "peak_all_rounds": [round(x / 1e9, 2) for x in peaks],
        "mfu": round(statistics.median(mfus), 4),
        "mfu_best_vs_best": round(flops_per_step / step_s / peak, 4),
        "mfu_all_rounds": [round(x, 4) for x in mfus],
        "compile_and_init_s": round(compile_s, 2),
        "final_loss": float(jax.device_get(m["loss"])),
    }
    if args.breakdown:
        params = jax.device_get(state["params"])
        parts = breakdown(cfg, graphdef, params, data, reps=3)
        out["breakdown"] = {k: round(v, 4) for k, v in parts.items()}
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
