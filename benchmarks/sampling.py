"""Sampler throughput on the shared tiny config; prints one JSON object.

    python benchmarks/sampling.py [--runs 7] [--new-tokens 64]

Model: vocab 512, d_model 256, 4 layers, 4 heads, 2 kv heads, mlp 688, qkv bias, untied, float32.
Work: 8 prompts of 7 tokens x G = 8 samples, 64 new tokens, temperature 1.0, no EOS (every row
generates all 64 tokens, so tokens/s counts computed = emitted tokens).

Reported (medians over --runs timed calls after one warm-up call; outputs block_until_ready):
- `prefill_s`: `sample` with max_new_tokens=1 (prefill of the 8 prompts + the first token);
- `generate_s` / `generate_tok_s`: the whole `sample` call (prefill + 64 tokens for 64 rows);
- `decode_tok_s`: the 63 fed-back tokens per row over (generate_s - prefill_s);
- `naive_*`: the same sampling without a KV cache (full forward over the [N, P + T] buffer every step,
  one jitted fori_loop), and `speedup_vs_naive` = naive_s / generate_s, measured in the same run.
The 2-core machine is shared: compare ratios from one run rather than absolute numbers across runs.
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

from r1jax import sharding  # noqa: E402
from r1jax.model import ModelConfig, api  # noqa: E402
from r1jax.sampling import SamplingConfig, sample  # noqa: E402
from r1jax.sampling_filters import choose_tokens, step_uniform  # noqa: E402

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


def naive_sample(graphdef, params, prompt_BxP, key, num_samples: int, cfg: SamplingConfig):
    """Uncached reference speed: full forward over the whole [N, P + T] buffer at every step."""
    prompt_NxP = jnp.repeat(prompt_BxP, num_samples, axis=0)
    n, p = prompt_NxP.shape
    t = cfg.max_new_tokens
    buf = jnp.concatenate([prompt_NxP, jnp.full((n, t), cfg.pad_id, jnp.int32)], axis=1)

    def step(i, buf):
        logits_NxLxV, _ = api.apply(graphdef, params, buf)  # causal: later slots do not matter
        logits_NxV = jax.lax.dynamic_index_in_dim(logits_NxLxV, p + i - 1, 1, keepdims=False)
        u_N = step_uniform(key, i, n)
        tok_N = choose_tokens(logits_NxV, u_N, cfg.temperature, cfg.top_k, cfg.top_p)
        return jax.lax.dynamic_update_slice(buf, tok_N[:, None], (0, p + i))

    return jax.lax.fori_loop(0, t, step, buf)[:, p:]


def timed(fn, runs: int) -> list[float]:
    jax.block_until_ready(fn())  # warm-up (compile)
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--skip-naive", action="store_true")
    args = ap.parse_args()
    t = args.new_tokens

    mesh = sharding.make_mesh((1, 1, 1), jax.devices()[:1])
    graphdef, params, _ = api.create(MODEL, 0, mesh, sharding.DEFAULT_RULES)
    rng = np.random.default_rng(0)
    prompt_BxP = jnp.asarray(rng.integers(4, MODEL.vocab_size, (B, P)), jnp.int32)
    valid_BxP = jnp.ones((B, P), bool)
    key = jax.random.key(0)
    cfg = SamplingConfig(max_new_tokens=t, temperature=1.0, eos_id=-1)
    cfg1 = SamplingConfig(max_new_tokens=1, temperature=1.0, eos_id=-1)

    run = jax.jit(sample, static_argnums=(0, 5, 6))
    gen = lambda c: run(graphdef, params, prompt_BxP, valid_BxP, key, G, c).tokens_NxT
    prefill = timed(lambda: gen(cfg1), args.runs)
    generate = timed(lambda: gen(cfg), args.runs)
    n_tok = B * G * t
    res = {
        "device": str(jax.devices()[0].device_kind),
        "rows": B * G,
        "prompt_len": P,
        "new_tokens": t,
        "runs": args.runs,
        "prefill_s": statistics.median(prefill),
        "generate_s": statistics.median(generate),
        "generate_s_all": [round(x, 4) for x in generate],
        "generate_tok_s": n_tok / statistics.median(generate),
        "decode_tok_s": B
        * G
        * (t - 1)
        / (statistics.median(generate) - statistics.median(prefill)),
    }
    if not args.skip_naive:
        naive_fn = jax.jit(naive_sample, static_argnums=(0, 4, 5))
        naive = timed(lambda: naive_fn(graphdef, params, prompt_BxP, key, G, cfg), args.runs)
        res["naive_s"] = statistics.median(naive)
        res["naive_tok_s"] = n_tok / statistics.median(naive)
        res["speedup_vs_naive"] = statistics.median(naive) / statistics.median(generate)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
