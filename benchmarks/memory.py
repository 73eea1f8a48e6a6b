"""Peak memory of the update at Qwen's vocabulary and of the sampler at P 512 / G 16 / T 512.

    python benchmarks/memory.py [--layers 2]

Compiled, never run (so it measures the program, not the machine): XLA's memory accounting of
each jitted program (`arguments + temporaries`, what the device must hold at the peak) on a
Qwen2.5-0.5B-shaped model (d 896, 14 heads, 2 kv heads, mlp 4864, vocab 151,936, tied, q/k/v
bias) with `--layers` layers (the per-layer parts scale with it; the vocabulary parts do not),
bfloat16 compute, float32 params.
- update: `train_step.update` (mu 1, beta 0.04, the reference forward included) on one micro-batch
  of 8 rollouts x 512 completion tokens after a 128-token prompt; whole-vocabulary log-softmax
  (`--config.rl.vocab_chunk=0`, and the code before issue 17) against 8192-column chunks.
- sampler: 1 prompt of 512 tokens x G 16 samples x 512 new tokens. `cache_bytes` is the decode
  loop's KV cache as traced (the carried arrays' shapes); the repeated layout holds G copies of
  the prompt, the shared one a single copy (prediction: G (P + T - 1) / (P + G (T - 1)) = 1.88x).
The script also runs on the code before issue 17 (PYTHONPATH=<old checkout>), which lacks the
chunking option and the shared cache: compare the two JSON outputs. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import sys

import jax
import jax.numpy as jnp
from flax import nnx

from r1jax.model import ModelConfig, Transformer
from r1jax.rl import grpo_loss, train_step
from r1jax.sampling import sample as sampling
from r1jax.train import optim

QWEN = dict(
    vocab_size=151_936, d_model=896, n_heads=14, n_kv_heads=2, mlp_dim=4864, qkv_bias=True,
    tie_embeddings=True, rope_theta=1e6, max_len=4096, dtype="bfloat16", param_dtype="float32",
)  # fmt: skip
sd = jax.ShapeDtypeStruct


def abstract(cfg: ModelConfig):
    with nnx.use_eager_sharding(False):
        graphdef, state = nnx.split(nnx.eval_shape(lambda: Transformer(cfg, nnx.Rngs(0))))
    return graphdef, jax.tree.map(lambda s: sd(s.shape, s.dtype), nnx.to_pure_dict(state))


def mib(compiled) -> dict:
    m = compiled.memory_analysis()
    total = m.argument_size_in_bytes + m.temp_size_in_bytes
    return {"peak_mib": round(total / 2**20, 1), "temp_mib": round(m.temp_size_in_bytes / 2**20, 1)}


def update_memory(cfg: ModelConfig, vocab_chunk: int | None) -> dict:
    graphdef, params = abstract(cfg)
    tx, _ = optim.make(optim.OptimizerConfig(lr=1e-6, warmup_steps=0, schedule="constant"), 10)
    state = {"params": params, "opt_state": jax.eval_shape(tx.init, params), "step": sd((), jnp.int32),
             "ref_params": params}  # fmt: skip
    b, g, p, t = 1, 8, 128, 512
    n = b * g
    roll = {"prompt": sd((b, p), jnp.int32), "prompt_valid": sd((b, p), bool),
            "completion": sd((n, t), jnp.int32), "mask_NxT": sd((n, t), bool),
            "old_logp_NxT": sd((n, t), jnp.float32), "rewards_NxR": sd((n, 1), jnp.float32),
            "truncated_N": sd((n,), bool)}  # fmt: skip
    kw = {} if vocab_chunk is None else {"vocab_chunk": vocab_chunk}
    ucfg = train_step.UpdateConfig(group_size=g, loss=grpo_loss.LossOptions(beta=0.04), **kw)
    fn = jax.jit(lambda s, r: train_step.update(graphdef, tx, s, r, ucfg))
    logits = n * t * cfg.vocab_size * 4
    return dict(mib(fn.lower(state, roll).compile()), f32_logits_NxTxV_mib=round(logits / 2**20, 1))


def sampler_memory(cfg: ModelConfig) -> dict:
    graphdef, params = abstract(dataclasses.replace(cfg, param_dtype="bfloat16"))
    b, g, p, t = 1, 16, 512, 512
    scfg = sampling.SamplingConfig(max_new_tokens=t, eos_id=-1)
    args = (params, sd((b, p), jnp.int32), sd((b, p), bool), jax.random.key(0))
    out = {}
    fast_modes = (
        [True, False] if "fast" in inspect.signature(sampling.decode).parameters else [None]
    )
    for fast in fast_modes:
        extra = () if fast is None else (fast,)
        fn = lambda pr, x, v, k, e=extra: sampling.decode(graphdef, pr, x, v, k, g, scfg, *e)  # noqa: E731
        state = jax.eval_shape(fn, *args)
        cache = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state.cache))
        name = {True: "fast_step", False: "generic_cached_call", None: "sampler"}[fast]
        out[name] = dict(mib(jax.jit(fn).lower(*args).compile()), cache_mib=round(cache / 2**20, 1))
    return out


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=2)
    args = ap.parse_args(argv)
    cfg = ModelConfig(**QWEN, n_layers=args.layers)
    has_chunks = "vocab_chunk" in {f.name for f in dataclasses.fields(train_step.UpdateConfig)}
    res = {"model": "Qwen2.5-0.5B shape", "layers": args.layers, "chunking_available": has_chunks}
    if has_chunks:
        res["update_whole_vocab"] = update_memory(cfg, 0)
        res["update_vocab_chunks_8192"] = update_memory(cfg, 8192)
    else:
        res["update_whole_vocab"] = update_memory(cfg, None)
    res["sampler_P512_G16_T512"] = sampler_memory(cfg)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
