"""The accelerator suite: train-step MFU, decode against the HBM roofline, one GRPO step; JSON out.

    bash benchmarks/device_suite.sh [--out FILE]      # one GPU, under 8 minutes
    bash benchmarks/device_suite.sh --cpu-smoke        # tiny shapes on the CPU, seconds (CI)

1. Train step: a random Qwen2.5-0.5B-shaped model (d 896, 24 layers, 14 heads, 2 kv heads,
   mlp 4864, vocab 151,936, tied, q/k/v bias), bfloat16 compute with float32 params and AdamW,
   scan over layers, `lm_step.make_train_step` on 8 x 2048 tokens. MFU = model FLOPs
   (`ModelConfig.flops_per_token`) per second over the bf16 matmul peak measured in the same run
   (the best of 8192^3 bf16 matmuls); the nominal peak of a known device is reported beside it.
2. Decode: the sampler at batch 64 (8 prompts x G 8, prompt 128, 512 new tokens, no EOS), bf16
   params and compute. Tokens/s of the decode steps (the whole call minus the prefill-only call)
   against the roofline: each decode step reads every weight once and the KV cache it attends to
   (the prompt part once per prompt), at the HBM bandwidth measured in the same run (a large copy).
   Then the same stacked weights sampled through the unrolled layout (`SamplingConfig.
   unroll_layers`, the GPU default: sliced inside the sampler), and a model built unrolled
   (`scan_layers=False`, L modules). The first GPU default (the scan's L bodies emitted one
   after another) is what `..._h200_numerics.json` calls "decode_unroll_scan".
   `--skip` leaves parts out (PARTS), to fit a short device lease.
3. GRPO step at that size: the same 64 rollouts of 512 tokens, then the update (reference forward,
   policy forward + backward, AdamW; mu 1, beta 0.04, f32 params, bf16 compute): seconds of each;
   the update once with the prompt shared by its group (the default) and once on full sequences.
On a GPU the model's uncached calls use the fused cuDNN attention (`model.attention="cudnn"`), and
`device_numerics.py` compares its bf16 logits and gradients with the blocked kernel's.
Prints and writes one JSON object. `--cpu-smoke` runs the same code on tiny shapes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time

import device_numerics
import jax
import jax.numpy as jnp
import numpy as np

from r1jax.model import ModelConfig, api
from r1jax.parallel import sharding
from r1jax.rl import grpo_loss, train_step
from r1jax.sampling import sample as sampling
from r1jax.train import lm_step, optim

QWEN_0P5B = dict(
    vocab_size=151_936, d_model=896, n_layers=24, n_heads=14, n_kv_heads=2, mlp_dim=4864,
    qkv_bias=True, tie_embeddings=True, rope_theta=1e6, max_len=4096, scan_layers=True,
)  # fmt: skip
SMOKE = dict(
    vocab_size=512, d_model=64, n_layers=1, n_heads=4, n_kv_heads=2, mlp_dim=128, max_len=128,
    qkv_bias=True, tie_embeddings=True, scan_layers=True,
)  # fmt: skip
PARTS = ("train_step", "attention_numerics", "decode_sampler_unrolled", "decode_unrolled_layers")
_T0 = time.perf_counter()  # the run's start (main resets it); each part records its end
NOMINAL_BF16_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L4": 121.0}  # dense


def _median_time(fn, reps: int) -> tuple[float, float]:
    """(first call seconds, median of `reps` further calls)."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t0)
    return first, statistics.median(ts)


def matmul_peak(n: int, reps: int) -> float:
    """FLOP/s of the best n x n bf16 matmul (f32 accumulation)."""
    a = jnp.ones((n, n), jnp.bfloat16)
    mm = jax.jit(lambda x, y: jnp.dot(x, y, preferred_element_type=jnp.float32))
    jax.block_until_ready(mm(a, a))
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(mm(a, a))
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def hbm_bandwidth(nbytes: int, reps: int) -> float:
    """Bytes/s of x -> x + 1 on a float32 array of `nbytes` (read + write)."""
    x = jnp.zeros((nbytes // 4,), jnp.float32)
    f = jax.jit(lambda x: x + 1)
    _, t = _median_time(lambda: f(x), reps)
    return 2 * nbytes / t


def train_mfu(cfg: ModelConfig, mesh, batch: int, seq: int, reps: int, peak: float) -> dict:
    graphdef, params, pshard = api.create(cfg, 0, mesh, sharding.DEFAULT_RULES)
    tx, lr_fn = optim.make(optim.OptimizerConfig(lr=1e-4, warmup_steps=10), 1000)
    state, sshard = lm_step.init_state(graphdef, params, pshard, tx, mesh)
    bshard = lm_step.batch_shardings(mesh, sharding.DEFAULT_RULES)
    with jax.set_mesh(mesh):
        step = lm_step.make_train_step(graphdef, tx, lr_fn, 1, sshard, bshard)
    tokens = np.random.default_rng(0).integers(0, cfg.vocab_size, (batch, seq + 1), np.int32)
    data = {k: sharding.shard_batch(v, mesh, sharding.DEFAULT_RULES) for k, v in
            {"tokens": tokens, "loss_mask": np.ones_like(tokens, bool)}.items()}  # fmt: skip
    box = {"state": state}

    def one():
        with jax.set_mesh(mesh):
            box["state"], m = step(box["state"], data)
        return m["loss"]

    first, step_s = _median_time(one, reps)
    flops = cfg.flops_per_token(seq) * batch * seq
    return {"batch": batch, "seq_len": seq, "compile_and_first_step_s": round(first, 2),
            "step_s": round(step_s, 4), "model_gflop_per_step": round(flops / 1e9, 4),
            "mfu_vs_measured_peak": round(flops / step_s / peak, 4)}  # fmt: skip


def decode_and_grpo(
    cfg: ModelConfig,
    mesh,
    b: int,
    g: int,
    p: int,
    t: int,
    reps: int,
    bw: float,
    smoke: bool,
    res: dict,
    out: str,
    skip: tuple[str, ...] = (),
) -> None:
    """Decode throughput vs the roofline (bf16 params), then one GRPO step (f32 params), into
    `res["decode"]` and `res["grpo_step"]`, each written as soon as it is measured. The smoke run
    keeps one param dtype, so that both parts share their programs."""
    serve = cfg if smoke else dataclasses.replace(cfg, param_dtype="bfloat16")
    graphdef, params, pshard = api.create(serve, 0, mesh, sharding.DEFAULT_RULES)
    rng = np.random.default_rng(0)
    prompt = jnp.asarray(rng.integers(0, cfg.vocab_size, (b, p)), jnp.int32)
    valid = jnp.ones((b, p), bool)
    key = jax.random.key(0)

    def sampler(gd, t_new, unroll=False):  # the scanned loop unless asked
        scfg = sampling.SamplingConfig(max_new_tokens=t_new, eos_id=-1, unroll_layers=unroll)
        return jax.jit(lambda pr, x, v, k: sampling.sample(gd, pr, x, v, k, g, scfg))

    full, prefill = sampler(graphdef, t), sampler(graphdef, 1)
    _, full_s = _median_time(lambda: full(params, prompt, valid, key).tokens_NxT, reps)
    _, pre_s = _median_time(lambda: prefill(params, prompt, valid, key).tokens_NxT, reps)
    n = b * g
    weights = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(params))
    kv_token = 2 * cfg.n_layers * cfg.n_kv_heads * cfg.head_dim * 2  # bf16 keys + values
    kv_step = kv_token * (b * p + n * t / 2)  # mean over the decode steps
    roofline = n * bw / (weights + kv_step)
    # None when the prefill-only call is not faster (tiny smoke shapes: timer noise)
    decode_tok_s = n * (t - 1) / (full_s - pre_s) if full_s > pre_s else None
    out_d = {"rows": n, "prompt_len": p, "new_tokens": t, "generate_s": round(full_s, 4),
           "prefill_s": round(pre_s, 4), "decode_tok_s": decode_tok_s and round(decode_tok_s, 1),
           "roofline_tok_s": round(roofline, 1),
           "fraction_of_roofline": decode_tok_s and round(decode_tok_s / roofline, 4)}  # fmt: skip
    res["decode"] = out_d
    _write(res, out, "decode")
    if "decode_sampler_unrolled" not in skip:  # stacked weights, unrolled layout
        full_r = sampler(graphdef, t, unroll=True)
        _, full_rs = _median_time(lambda: full_r(params, prompt, valid, key).tokens_NxT, reps)
        tok_s = n * (t - 1) / (full_rs - pre_s) if full_rs > pre_s else None
        res["decode_sampler_unrolled"] = {"generate_s": round(full_rs, 4),
            "decode_tok_s": tok_s and round(tok_s, 1),
            "fraction_of_roofline": tok_s and round(tok_s / roofline, 4)}  # fmt: skip
        _write(res, out, "decode_sampler_unrolled")
    if not smoke and "decode_unrolled_layers" not in skip:  # the unrolled layout: L modules
        ucfg = dataclasses.replace(serve, scan_layers=False)
        gd_u, params_u, _ = api.create(ucfg, 0, mesh, sharding.DEFAULT_RULES)
        full_u, pre_u = sampler(gd_u, t), sampler(gd_u, 1)
        _, full_us = _median_time(lambda: full_u(params_u, prompt, valid, key).tokens_NxT, reps)
        _, pre_us = _median_time(lambda: pre_u(params_u, prompt, valid, key).tokens_NxT, reps)
        tok_s = n * (t - 1) / (full_us - pre_us)
        res["decode_unrolled_layers"] = {"generate_s": round(full_us, 4),
            "prefill_s": round(pre_us, 4), "decode_tok_s": round(tok_s, 1),
            "fraction_of_roofline": round(tok_s / roofline, 4)}  # fmt: skip
        del params_u
        _write(res, out, "decode_unrolled_layers")
    if not smoke:  # GRPO step: f32 params, bf16 compute
        del params
        graphdef, params, pshard = api.create(cfg, 0, mesh, sharding.DEFAULT_RULES)
        full = sampler(graphdef, t)
    tx, _ = optim.make(optim.OptimizerConfig(lr=1e-6, warmup_steps=0, schedule="constant"), 10)
    state, _ = lm_step.init_state(graphdef, params, pshard, tx, mesh)
    state = train_step.state_with_ref(state, 0.04)
    ucfg = train_step.UpdateConfig(group_size=g, loss=grpo_loss.LossOptions(beta=0.04))
    update = jax.jit(lambda s, r: train_step.update(graphdef, tx, s, r, ucfg))
    # the prompt once per group (blocked attention over prompt + completion) against the full
    # sequences, which the model's own kernel (cuDNN on a GPU) attends
    ucfg_full = dataclasses.replace(ucfg, share_prefix=False)
    update_full = jax.jit(lambda s, r: train_step.update(graphdef, tx, s, r, ucfg_full))
    gen = full
    rollout = gen(params, prompt, valid, key)
    roll = {"prompt": prompt, "prompt_valid": valid, "completion": rollout.tokens_NxT,
            "mask_NxT": rollout.mask_NxT, "old_logp_NxT": rollout.logp_NxT,
            "rewards_NxR": jnp.asarray(rng.random((n, 1)), jnp.float32),
            "truncated_N": rollout.truncated_N}  # fmt: skip
    _, sample_s = _median_time(lambda: gen(params, prompt, valid, key).tokens_NxT, reps)
    res["grpo_step"] = {"prompts": b, "group": g, "prompt_len": p, "new_tokens": t,
            "attention": cfg.attention, "sample_s": round(sample_s, 4)}  # fmt: skip
    for name, fn in (("", update), ("unshared_prompt_", update_full)):
        try:  # as in main: a failed part is recorded, the finished numbers kept
            first, upd_s = _median_time(lambda f=fn: f(state, roll)[1]["loss"], reps)
            res["grpo_step"].update(
                {
                    f"update_{name}s": round(upd_s, 4),
                    f"update_{name}compile_and_first_s": round(first, 2),
                }
            )
        except Exception as e:  # noqa: BLE001
            res["grpo_step"][f"update_{name}error"] = _error(e)
        _write(res, out, f"grpo_step_{name or 'shared_'}update")
    if "update_s" in res["grpo_step"]:
        res["grpo_step"]["step_s"] = round(sample_s + res["grpo_step"]["update_s"], 4)


def _error(e: Exception) -> str:
    """An exception as one line for the JSON (a part that failed is recorded, not fatal)."""
    return f"{type(e).__name__}: {e}"[:800]


def _write(res: dict, out: str, part: str) -> None:
    """Write the results so far: a run cut off by its time limit keeps its finished parts. On
    devices that keep memory statistics, the peak so far is recorded after each part (cumulative:
    the train step's peak bounds the later parts' readings from below)."""
    res.setdefault("elapsed_s_after", {})[part] = round(time.perf_counter() - _T0, 1)
    stats = jax.devices()[0].memory_stats()
    if stats and "peak_bytes_in_use" in stats:
        res.setdefault("device_peak_gib_after", {})[part] = round(
            stats["peak_bytes_in_use"] / 2**30, 2
        )
    print(json.dumps(res), flush=True)
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out, "w") as f:
            f.write(json.dumps(res, indent=1) + "\n")


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny shapes, seconds, any device")
    ap.add_argument("--out", default="")
    ap.add_argument("--skip", default="", help="comma-separated parts: " + ",".join(PARTS))
    args = ap.parse_args(argv)
    skip = tuple(x for x in args.skip.split(",") if x)
    if set(skip) - set(PARTS):
        ap.error(f"--skip {sorted(set(skip) - set(PARTS))}: the parts are {', '.join(PARTS)}")
    global _T0
    _T0 = time.perf_counter()
    smoke = args.cpu_smoke
    dev = jax.devices()[0]
    mesh = sharding.make_mesh((1, 1, 1), [dev])
    base = ModelConfig(**(SMOKE if smoke else QWEN_0P5B), dtype="bfloat16")
    reps = 2 if smoke else 5
    peak = matmul_peak(256 if smoke else 8192, reps)
    bw = hbm_bandwidth(2**20 if smoke else 2**32, reps)
    nominal = next((v for k, v in NOMINAL_BF16_TFLOPS.items() if k in dev.device_kind), None)
    res = {"device": dev.device_kind, "platform": dev.platform, "smoke": smoke,
           "jax": jax.__version__, "model": dataclasses.asdict(base),
           "bf16_matmul_peak_tflops_measured": round(peak / 1e12, 2),
           "bf16_peak_tflops_nominal": nominal, "hbm_gb_per_s_measured": round(bw / 1e9, 1)}  # fmt: skip
    batch, seq = (2, 32) if smoke else (8, 2048)
    _write(res, args.out, "peaks")
    # The fused kernel where there is one (model.attention, model/fused_attention.py); a failure
    # (another GPU, another cuDNN) is recorded and the blocked kernel measured.
    base = dataclasses.replace(base, attention="cudnn" if dev.platform == "gpu" else "blocked")
    try:
        res["train_step"] = (
            {} if "train_step" in skip else train_mfu(base, mesh, batch, seq, reps, peak)
        )
    except Exception as e:  # noqa: BLE001 - an untried kernel must not cost the other numbers
        res["cudnn_error"] = _error(e)
        base = dataclasses.replace(base, attention="blocked")
        res["train_step"] = train_mfu(base, mesh, batch, seq, reps, peak)
    res["model"]["attention"] = base.attention
    if nominal and res["train_step"]:
        ts = res["train_step"]
        ts["mfu_vs_nominal_peak"] = round(
            ts["model_gflop_per_step"] / 1e3 / ts["step_s"] / nominal, 4
        )
    _write(res, args.out, "train_step")
    if base.attention == "cudnn" and "attention_numerics" not in skip:
        try:
            res["attention_numerics"] = device_numerics.compare(base, mesh)
        except Exception as e:  # noqa: BLE001 - as above: record, keep the other parts
            res["attention_numerics"] = {"error": _error(e)}
        _write(res, args.out, "attention_numerics")
    b, g, p, t = (2, 2, 8, 8) if smoke else (8, 8, 128, 512)
    decode_and_grpo(base, mesh, b, g, p, t, reps, bw, smoke, res, args.out, skip)
    res["wall_s"] = round(time.perf_counter() - _T0, 1)
    _write(res, args.out, "end")


if __name__ == "__main__":
    main(sys.argv[1:])
