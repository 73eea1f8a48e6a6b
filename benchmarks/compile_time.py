"""XLA compile time of the GRPO step's two programs against depth, unrolled vs scan over layers.

    python benchmarks/compile_time.py [--depths 2,4,8,16]

Model: the peer-bench tiny config (d 256, 4 heads, 2 kv heads, mlp 688, vocab 512, q/k/v bias)
with `n_layers` from `--depths`; shapes of the peer benchmark (8 prompts of 7 tokens x G 8,
64 new tokens, beta 0.04, mu 1). Each program is lowered from abstract shapes (nothing runs) and
compiled once in a fresh process per point, so no cache is shared; reported: process CPU seconds
of `compile()` (less sensitive to a busy machine than wall time, which is reported too) and the
lines of StableHLO handed to XLA. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def lower(
    program: str,
    depth: int,
    scan: bool,
    compiler_options: dict | None = None,
    preset: str = "peer_tiny",
):
    """(the jitted program lowered from abstract shapes, those abstract arguments); `depth` 0
    keeps the preset's own."""
    import jax
    import jax.numpy as jnp

    from r1jax import config_base
    from r1jax.model import ModelConfig
    from r1jax.model.hf_import import abstract_model
    from r1jax.rl import grpo_loss, train_step
    from r1jax.sampling import sample as sampling
    from r1jax.train import optim

    shape = dict(config_base.MODEL_PRESETS[preset])
    shape["n_layers"] = depth or shape["n_layers"]
    cfg = ModelConfig(**shape, scan_layers=scan)
    graphdef, params, _ = abstract_model(cfg)
    sd = jax.ShapeDtypeStruct
    b, g, p, t = 8, 8, 7, 64
    prompt = (sd((b, p), jnp.int32), sd((b, p), bool))
    if program == "sampler":
        scfg = sampling.SamplingConfig(max_new_tokens=t, eos_id=1)
        fn = jax.jit(
            lambda pr, x, v, k: sampling.sample(graphdef, pr, x, v, k, g, scfg),
            compiler_options=compiler_options,
        )
        args = (params, *prompt, jax.random.key(0))
    else:
        tx, _ = optim.make(optim.OptimizerConfig(lr=1e-5, warmup_steps=0, clip_norm=1.0), 10)
        state = {"params": params, "opt_state": jax.eval_shape(tx.init, params),
                 "step": sd((), jnp.int32), "ref_params": params}  # fmt: skip
        n = b * g
        roll = {"prompt": prompt[0], "prompt_valid": prompt[1],
                "completion": sd((n, t), jnp.int32), "mask_NxT": sd((n, t), bool),
                "old_logp_NxT": sd((n, t), jnp.float32), "rewards_NxR": sd((n, 1), jnp.float32),
                "truncated_N": sd((n,), bool)}  # fmt: skip
        ucfg = train_step.UpdateConfig(group_size=g, loss=grpo_loss.LossOptions(beta=0.04))
        fn = jax.jit(
            lambda s, r: train_step.update(graphdef, tx, s, r, ucfg),
            compiler_options=compiler_options,
        )
        args = (state, roll)
    return fn.lower(*args), args


def one(program: str, depth: int, scan: bool) -> dict:
    lowered, _ = lower(program, depth, scan)
    c0, t0 = time.process_time(), time.perf_counter()
    lowered.compile()
    return {
        "program": program,
        "layers": depth,
        "scan_layers": scan,
        "compile_cpu_s": round(time.process_time() - c0, 2),
        "compile_wall_s": round(time.perf_counter() - t0, 2),
        "hlo_lines": len(lowered.as_text().splitlines()),
    }


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--depths", default="2,4,8,16")
    ap.add_argument("--child", default="")
    args = ap.parse_args(argv)
    if args.child:
        program, depth, scan = args.child.split(":")
        print(json.dumps(one(program, int(depth), scan == "1")))
        return
    rows = []
    for program in ("update", "sampler"):
        for scan in (0, 1):
            for depth in map(int, args.depths.split(",")):
                cmd = [sys.executable, __file__, f"--child={program}:{depth}:{scan}"]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                rows.append(json.loads(out.strip().splitlines()[-1]))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"loadavg_end": os.getloadavg(), "points": rows}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
