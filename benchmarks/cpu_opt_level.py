"""XLA:CPU's LLVM optimisation level: compile time, run time and results of the GRPO programs.

    python benchmarks/cpu_opt_level.py [--levels default,1] [--presets peer_tiny,toy] [--rounds 2]

Why: on the CPU the first GRPO step is mostly compilation (the peer benchmark's "first step"),
and XLA:CPU hands its matmuls to a precompiled library (YNNPACK), so LLVM's optimisation level
(`xla_backend_optimization_level`; "default" leaves XLA's own) shapes only the fused elementwise
loops around them. This measures what a lower level saves and costs, per program (the sampler
and the update, shapes of benchmarks/compile_time.py) and model preset, each point in a fresh
process (no compilation cache shared): process CPU seconds of `compile()`, the median wall time
of 10 runs after 2 warm-ups on fixed random inputs, and a hash of the first run's outputs, so a
level that changes any result bit shows. Rounds alternate the order of the levels.

Measured 2026-12-03 (results/cpu_opt_level_2026-12-03.json; 2-core VM with a training run beside
it, load ~3.6, so run times are noisy): level 1 against default, compile CPU x0.70 (update,
peer_tiny), x0.82 (update, toy), x0.88-0.91 (sampler); outputs bit-identical everywhere; run time
x0.98 (update, peer_tiny) but x1.07-1.09 on the other three. A few seconds off the first step
are not worth up to 8 % on every step of a run, so the training programs keep XLA's default.

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def concrete(args, vocab: int):
    """Fixed random inputs of the abstract arguments' shapes: small positive floats (Adam's
    second moment must be >= 0), token ids in [2, vocab), true masks, scalar integers 0."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(0)

    def make(x):
        if not isinstance(x, jax.ShapeDtypeStruct):
            return x
        if jnp.issubdtype(x.dtype, jnp.floating):
            return jnp.asarray(np.abs(rng.standard_normal(x.shape)) * 0.02, x.dtype)
        if x.dtype == jnp.bool_:
            return jnp.ones(x.shape, bool)
        if x.shape == ():
            return jnp.zeros((), x.dtype)
        return jnp.asarray(rng.integers(2, vocab, x.shape), x.dtype)

    return jax.tree.map(make, args)


def one(program: str, level: str, preset: str) -> dict:
    import jax
    import numpy as np
    from compile_time import lower

    from r1jax import config_base

    options = {} if level == "default" else {"xla_backend_optimization_level": int(level)}
    lowered, args = lower(program, 0, False, options, preset)
    c0, t0 = time.process_time(), time.perf_counter()
    compiled = lowered.compile()
    compile_cpu, compile_wall = time.process_time() - c0, time.perf_counter() - t0
    inputs = concrete(args, config_base.MODEL_PRESETS[preset]["vocab_size"])
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(jax.block_until_ready(compiled(*inputs))):
        digest.update(np.asarray(jax.random.key_data(leaf) if jax.dtypes.issubdtype(
            leaf.dtype, jax.dtypes.prng_key) else leaf).tobytes())  # fmt: skip
    compiled(*inputs)
    times = []
    for _ in range(10):
        t = time.perf_counter()
        jax.block_until_ready(compiled(*inputs))
        times.append(time.perf_counter() - t)
    return {
        "program": program,
        "preset": preset,
        "level": level,
        "compile_cpu_s": round(compile_cpu, 2),
        "compile_wall_s": round(compile_wall, 2),
        "run_median_s": round(statistics.median(times), 4),
        "outputs_sha256": digest.hexdigest()[:16],
    }


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--levels", default="default,1")
    ap.add_argument("--presets", default="peer_tiny,toy")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--child", default="")
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(one(*args.child.split(":"))))
        return
    levels, rows = args.levels.split(","), []
    for r in range(args.rounds):
        for preset in args.presets.split(","):
            for program in ("update", "sampler"):
                for level in levels if r % 2 == 0 else levels[::-1]:
                    cmd = [sys.executable, __file__, f"--child={program}:{level}:{preset}"]
                    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                    rows.append(dict(json.loads(out.strip().splitlines()[-1]), round=r))
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    summary = {}
    for preset in args.presets.split(","):
        for program in ("update", "sampler"):
            pts = {lv: [x for x in rows if (x["preset"], x["program"], x["level"]) ==
                        (preset, program, lv)] for lv in levels}  # fmt: skip
            base = pts[levels[0]]
            for lv in levels[1:]:
                summary[f"{preset}/{program}/{lv}_vs_{levels[0]}"] = {
                    "compile_cpu_ratio": round(
                        sum(x["compile_cpu_s"] for x in pts[lv])
                        / sum(x["compile_cpu_s"] for x in base), 3),
                    "run_ratio": round(
                        statistics.median(x["run_median_s"] for x in pts[lv])
                        / statistics.median(x["run_median_s"] for x in base), 3),
                    "same_outputs": len({x["outputs_sha256"] for x in pts[lv] + base}) == 1,
                }  # fmt: skip
    print(
        json.dumps({"loadavg_end": os.getloadavg(), "summary": summary, "points": rows}, indent=1)
    )


if __name__ == "__main__":
    main(sys.argv[1:])
