"""Host heap policies (r1jax/train/heap_policy.py) on the LM training step: time, faults, RSS.

    python benchmarks/heap_policy.py [--preset toy] [--batch 32] [--seq-len 256] [--rounds 3]

Policies, each a fresh process started with its GLIBC_TUNABLES:
  glibc          glibc's defaults (blocks over 32 MiB are mmap'ed per call, munmap'ed after it;
                 up to 8 arenas per core)
  one_arena      glibc.malloc.arena_max=1: what the opt-in R1JAX_MALLOC_ARENAS=1 sets
                 (`heap_policy.limit_arenas`)
  hugepage_heap  glibc.malloc.hugetlb=1: those blocks on transparent huge pages (what
                 `R1JAX_HEAP=hugepages python -m r1jax.main` runs with)
  keep_heap      one arena, no mmap, no trimming: freed blocks stay in the heap (tried, dropped)

Each round runs the policies one after the other (interleaved, so they share the load), each timing
`--steps` production LM training steps (`benchmarks/train_step.py build_step`) after one warm-up
step, with its minor page faults over the timed steps (`getrusage`) and its peak RSS. Prints one
JSON object; quote the ratios of medians.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POLICIES = {
    "glibc": "",
    "one_arena": "glibc.malloc.arena_max=1",
    "hugepage_heap": "glibc.malloc.hugetlb=1",
    "keep_heap": "glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:"
    "glibc.malloc.trim_threshold=2147483647",
}


def child(args: argparse.Namespace) -> dict:
    """Runs in the child process: times the steps under the tunables it was started with."""
    sys.path.insert(0, ROOT)
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import train_step as ts

    from r1jax import config_base
    from r1jax.model import ModelConfig

    cfg = ModelConfig(**config_base.model(args.preset).to_dict())
    step, state, data, _, mesh = ts.build_step(cfg, args.batch, args.seq_len, 1)
    _, state = ts.time_steps(step, state, data, mesh, 1)  # compile + the first step
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    times, state = ts.time_steps(step, state, data, mesh, args.steps)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "step_s": times,
        "faults_per_step": (usage.ru_minflt - faults0) / args.steps,
        "peak_rss_mib": usage.ru_maxrss / 1024,
    }


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="toy")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--child", action="store_true")
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return
    runs: dict[str, list[dict]] = {name: [] for name in POLICIES}
    for _ in range(args.rounds):
        for name, tunables in POLICIES.items():
            env = dict(os.environ, GLIBC_TUNABLES=tunables)
            out = subprocess.run(
                [sys.executable, __file__, "--child", *argv],
                env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    summary = {}
    for name, rs in runs.items():
        medians = [statistics.median(r["step_s"]) for r in rs]
        summary[name] = {
            "tunables": POLICIES[name],
            "step_s_median_of_rounds": round(statistics.median(medians), 4),
            "step_s_round_medians": [round(m, 4) for m in medians],
            "faults_per_step": round(statistics.median(r["faults_per_step"] for r in rs)),
            "peak_rss_mib": round(max(r["peak_rss_mib"] for r in rs)),
        }
    base = summary["glibc"]["step_s_median_of_rounds"]
    ratios = {
        f"{n}_over_glibc": round(s["step_s_median_of_rounds"] / base, 3) for n, s in summary.items()
    }
    work = f"lm_{args.preset}_b{args.batch}_t{args.seq_len}_steps{args.steps}"
    print(json.dumps({"work": work, "rounds": args.rounds, **summary, **ratios}))


if __name__ == "__main__":
    main(sys.argv[1:])
