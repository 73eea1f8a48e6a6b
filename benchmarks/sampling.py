"""Sampler throughput on the shared tiny config; prints one JSON object.

    python benchmarks/sampling.py [--rounds 3] [--reps 5] [--hf] [--skip-naive] [--sampler-threads 2]

Model: vocab 512, d_model 256, 4 layers, 4 heads, 2 kv heads, mlp 688, qkv bias, untied, float32.
Work: 8 prompts of 7 tokens x G = 8 samples, 64 new tokens, temperature 1.0, no EOS (every row
generates all 64 tokens, so tokens/s counts computed = emitted tokens).

Everything is timed interleaved (each round calls every variant; warm-up/compile excluded; outputs
block_until_ready), so all variants see the same machine load; values are medians:
- `prefill_s`: the sampler with max_new_tokens=1 (prefill of the 8 prompts + the first token);
- `generate_s` / `generate_tok_s`: the whole sampler call (prefill + 64 tokens for 64 rows), i.e.
  `sampling.decode` (what `sample` runs); `generate_cpu_s` is its process CPU time;
- `decode_tok_s`: the 63 fed-back tokens per row over (generate_s - prefill_s);
- `generate_unfused_s`: the same with the decode step's q/k/v and gate/up matmuls unfused
  (`decode.fuse_weights` off: 7 weight matmuls per layer and token instead of 4);
- `generate_one_piece_s` / `generate_pieces_s`: the same with the decode loop in one piece
  (`cache_pieces=1`: every step attends to all T - 1 completion slots) / in `--pieces` pieces
  (`SamplingConfig.cache_pieces`; `cache_pieces` is what the default `generate` ran);
- `generic_cached_*`: the same loop with the model's own cached call per step instead of
  `sampling_decode.decode_step` (the fallback path);
- `naive_*`: sampling without a KV cache (full forward over the [N, P + T] buffer every step, one
  jitted fori_loop);
- `sample_one_call_s` / `sample_threads_s` (with --sampler-threads K): `sampling.sample` in one
  call, and as K parts of the prompts run at once from K host threads (`sampling/threads.py`,
  what `rl.sampler_threads=K` runs; the same tokens);
- `hf_*` (with --hf, needs torch + transformers): PyTorch + Hugging Face `generate` on a random
  Qwen2 of the same shape, the peers' baseline.
The 2-core machine is shared: compare the `speedup_*` ratios of one run, not absolute numbers
across runs (`loadavg_1min_start_end` says how busy the machine was).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from r1jax.model import ModelConfig, api  # noqa: E402
from r1jax.parallel import sharding
from r1jax.rl import sampler_mesh  # noqa: E402
from r1jax.sampling import sample as sample_mod  # noqa: E402
from r1jax.sampling import threads as sampling_threads  # noqa: E402
from r1jax.sampling.filters import choose_tokens, draw_uniforms  # noqa: E402
from r1jax.sampling.sample import SamplingConfig, decode  # noqa: E402
from r1jax.train import heap_policy  # noqa: E402

MODEL = ModelConfig(
    vocab_size=512,
    d_model=256,
    n_layers=4,
    n_heads=4,
    n_kv_heads=2,
    mlp_dim=688,
    qkv_bias=True,
    tie_embeddings=False,
    max_len=512,
)
B, G, P = 8, 8, 7
NEW_TOKENS = 64


def naive_sample(graphdef, params, prompt_BxP, key, num_samples: int, cfg: SamplingConfig):
    """Uncached reference speed: full forward over the whole [N, P + T] buffer at every step."""
    prompt_NxP = jnp.repeat(prompt_BxP, num_samples, axis=0)
    n, p = prompt_NxP.shape
    t = cfg.max_new_tokens
    buf = jnp.concatenate([prompt_NxP, jnp.full((n, t), cfg.pad_id, jnp.int32)], axis=1)
    u_TxN = draw_uniforms(key, t, n)

    def step(i, buf):
        logits_NxLxV, _ = api.apply(graphdef, params, buf)  # causal: later slots do not matter
        logits_NxV = jax.lax.dynamic_index_in_dim(logits_NxLxV, p + i - 1, 1, keepdims=False)
        u_N = u_TxN[i]
        tok_N = choose_tokens(logits_NxV, u_N, cfg.temperature, cfg.top_k, cfg.top_p)
        return jax.lax.dynamic_update_slice(buf, tok_N[:, None], (0, p + i))

    return jax.lax.fori_loop(0, t, step, buf)[:, p:]


def hf_generate_fn(threads: int):
    """PyTorch + Hugging Face `generate` on a random Qwen2 of the same shape (the peers' baseline):
    sampling at T=1 with top-k/top-p off, 64 new tokens forced (no EOS), G copies of each prompt."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle torch threads must not spin
    import torch
    import transformers

    torch.set_num_threads(threads)
    hf_cfg = transformers.Qwen2Config(
        vocab_size=MODEL.vocab_size,
        hidden_size=MODEL.d_model,
        num_hidden_layers=MODEL.n_layers,
        num_attention_heads=MODEL.n_heads,
        num_key_value_heads=MODEL.n_kv_heads,
        intermediate_size=MODEL.mlp_dim,
        max_position_embeddings=MODEL.max_len,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = transformers.Qwen2ForCausalLM(hf_cfg).eval()
    ids = torch.randint(4, MODEL.vocab_size, (B, P))

    def run():
        with torch.inference_mode():
            return model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                num_return_sequences=G,
                max_new_tokens=NEW_TOKENS,
                min_new_tokens=NEW_TOKENS,
                pad_token_id=0,
            )

    return run


def measure(fns: dict, rounds: int, reps: dict) -> dict:
    """Interleaved timing: each round calls every fn reps[name] times, so all see the same load."""
    first = {}
    for k, fn in fns.items():  # warm-up: compile (jax traces and compiles on the first call)
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        first[k] = time.perf_counter() - t0
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            for _ in range(reps.get(k, 1)):
                c0, t0 = time.process_time(), time.perf_counter()
                jax.block_until_ready(fn())
                wall[k].append(time.perf_counter() - t0)
                cpu[k].append(time.process_time() - c0)
    return {k: (wall[k], cpu[k], first[k]) for k in fns}


def main() -> None:
    heap_policy.configure()  # as `python -m r1jax.main` runs
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (one naive run each)")
    ap.add_argument("--reps", type=int, default=5, help="sampler calls per round")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--pieces", type=int, default=4, help="cache_pieces of `generate_pieces`")
    ap.add_argument(
        "--hf", action="store_true", help="also time PyTorch + HF generate (needs torch)"
    )
    ap.add_argument(
        "--sampler-threads",
        type=int,
        default=0,
        help="K > 1: also time `sample` in one call and as K parts from K host threads "
        "(rl.sampler_threads, sampling/threads.py)",
    )
    ap.add_argument(
        "--sampler-devices",
        type=int,
        default=0,
        help="N > 1: also time the sampler with its rows split over N CPU devices (what "
        "rl.sampler_mesh=(N,1,1) runs); sets XLA_FLAGS' host device count to N",
    )
    args = ap.parse_args()
    if args.sampler_devices > 1:  # jax starts its backend at the first device query, below
        flag = f"--xla_force_host_platform_device_count={args.sampler_devices}"
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flag).strip()
    t = args.new_tokens
    global NEW_TOKENS
    NEW_TOKENS = t
    load0 = os.getloadavg()[0]

    mesh = sharding.make_mesh((1, 1, 1), jax.devices()[:1])
    graphdef, params, pshard = api.create(MODEL, 0, mesh, sharding.DEFAULT_RULES)
    rng = np.random.default_rng(0)
    prompt_BxP = jnp.asarray(rng.integers(4, MODEL.vocab_size, (B, P)), jnp.int32)
    valid_BxP = jnp.ones((B, P), bool)
    key = jax.random.key(0)
    cfg = SamplingConfig(max_new_tokens=t, temperature=1.0, eos_id=-1)
    cfg1 = SamplingConfig(max_new_tokens=1, temperature=1.0, eos_id=-1)
    cfg_one_piece = dataclasses.replace(cfg, cache_pieces=1)
    cfg_pieces = dataclasses.replace(cfg, cache_pieces=args.pieces)

    run = jax.jit(decode, static_argnums=(0, 5, 6, 7, 8))
    gen = lambda c, fast=True, fuse=None: (
        run(graphdef, params, prompt_BxP, valid_BxP, key, G, c, fast, fuse).tokens_NxT
    )
    fns = {
        "prefill": lambda: gen(cfg1),
        "generate": lambda: gen(cfg),
        "generate_unfused": lambda: gen(cfg, True, False),  # 7 weight matmuls per layer, not 4
        "generate_one_piece": lambda: gen(cfg_one_piece),
        "generate_pieces": lambda: gen(cfg_pieces),
        "generic_cached": lambda: gen(cfg, False),  # the model's own cached call per step
    }
    if args.sampler_devices > 1:  # the placement rl.sampler_mesh=(N,1,1) uses
        shape = (args.sampler_devices, 1, 1)
        sm = sampler_mesh.make(shape, mesh, sharding.DEFAULT_RULES, pshard, B)
        p_m, x_m, v_m, k_m = sm.to_sampler(params, prompt_BxP, valid_BxP, key)
        fns["generate_mesh"] = lambda: run(graphdef, p_m, x_m, v_m, k_m, G, cfg, True).tokens_NxT
    if args.sampler_threads > 1:  # what rl.sampler_threads=K runs (the split step's sampler)
        whole = jax.jit(sample_mod.sample, static_argnums=(0, 5, 6))
        part = jax.jit(lambda p, x, v, k, u: sample_mod.sample(graphdef, p, x, v, k, G, cfg, u))
        threaded = sampling_threads.ThreadedSampler(
            part, whole, args.sampler_threads, G, t, cfg.greedy, mesh
        )
        fns["sample_one_call"] = lambda: whole(graphdef, params, prompt_BxP, valid_BxP, key, G, cfg)
        fns["sample_threads"] = lambda: threaded(params, prompt_BxP, valid_BxP, key)
    if not args.skip_naive:
        naive_fn = jax.jit(naive_sample, static_argnums=(0, 4, 5))
        fns["naive"] = lambda: naive_fn(graphdef, params, prompt_BxP, key, G, cfg)
    if args.hf:
        fns["hf_generate"] = hf_generate_fn(os.cpu_count() or 1)
    timed = ("prefill", "generate", "generate_unfused", "generate_one_piece", "generic_cached")
    timed += ("generate_pieces", "hf_generate")
    timed += ("generate_mesh", "sample_one_call", "sample_threads")
    reps = {k: args.reps for k in timed}
    got = measure(fns, args.rounds, reps)
    med = {k: statistics.median(w) for k, (w, _, _) in got.items()}
    best = {k: min(w) for k, (w, _, _) in got.items()}
    n_tok = B * G * t
    res = {
        "device": str(jax.devices()[0].device_kind),
        "rows": B * G,
        "prompt_len": P,
        "new_tokens": t,
        "calls_timed": {k: len(w) for k, (w, _, _) in got.items()},
        "first_call_s": {k: round(f, 3) for k, (_, _, f) in got.items()},  # compile included
        "loadavg_1min_start_end": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "prefill_s": med["prefill"],
        "generate_s": med["generate"],
        "generate_s_min": best["generate"],
        "generate_cpu_s": statistics.median(got["generate"][1]),
        "generate_tok_s": n_tok / med["generate"],
        "generate_tok_s_best": n_tok / best["generate"],
        "decode_tok_s": B * G * (t - 1) / (med["generate"] - med["prefill"]),
        "generate_unfused_s": med["generate_unfused"],
        "speedup_fused_vs_unfused": med["generate_unfused"] / med["generate"],
        "cache_pieces": sample_mod.num_pieces(cfg),
        "generate_one_piece_s": med["generate_one_piece"],
        "speedup_vs_one_piece": med["generate_one_piece"] / med["generate"],
        "pieces": args.pieces,
        "generate_pieces_s": med["generate_pieces"],
        "speedup_pieces_vs_one_piece": med["generate_one_piece"] / med["generate_pieces"],
        "generic_cached_s": med["generic_cached"],
        "speedup_vs_generic_cached": med["generic_cached"] / med["generate"],
    }
    if "hf_generate" in med:
        res["hf_generate_s"] = med["hf_generate"]
        res["hf_generate_tok_s"] = n_tok / med["hf_generate"]
        res["speedup_vs_hf_generate"] = med["hf_generate"] / med["generate"]
    if "generate_mesh" in med:
        res["sampler_devices"] = args.sampler_devices
        res["generate_mesh_s"] = med["generate_mesh"]
        res["speedup_mesh_vs_one_device"] = med["generate"] / med["generate_mesh"]
        if "hf_generate" in med:
            res["speedup_mesh_vs_hf_generate"] = med["hf_generate"] / med["generate_mesh"]
    if "sample_threads" in med:
        res["sampler_threads"] = args.sampler_threads
        res["sample_one_call_s"] = med["sample_one_call"]
        res["sample_threads_s"] = med["sample_threads"]
        res["speedup_threads_vs_one_call"] = med["sample_one_call"] / med["sample_threads"]
        if "hf_generate" in med:
            res["speedup_threads_vs_hf_generate"] = med["hf_generate"] / med["sample_threads"]
    if "naive" in med:
        res["naive_s"] = med["naive"]
        res["naive_tok_s"] = n_tok / med["naive"]
        res["speedup_vs_naive"] = med["naive"] / med["generate"]
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
