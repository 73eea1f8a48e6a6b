"""Two independent pipeline stages one after the other against side by side (`config.workers`).

    python benchmarks/pipeline_workers.py [--steps 150] [--rounds 1] [--stages base,student_base]

Runs `experiments/r1_pipeline.py` (the one-hour default) with `--config.only=<stages>` and every
listed stage cut to `--steps` training steps, from nothing in a fresh workdir, once with
`--config.workers=1` and once with `--config.workers=2`, alternating per round so both see the
same machine; wall time of each whole command. The default pair is the teacher's base and the
student's base: neither reads the other, and at full size they are the two longest stages of the
chain (tokenizer, corpus and 1,000 steps each). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def one_run(stages: list[str], steps: int, workers: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="pipeline_workers_") as wd:
        cmd = [
            sys.executable,
            "-m",
            "r1jax.main",
            "--config=experiments/r1_pipeline.py",
            f"--workdir={wd}",
            f"--config.only={','.join(stages)}",
            f"--config.workers={workers}",
            *(f"--config.stages.{s}.steps={steps}" for s in stages),
        ]
        t0 = time.perf_counter()
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
        stage_s = {}
        for s in stages:
            with open(os.path.join(wd, s, "DONE.json"), encoding="utf-8") as f:
                stage_s[s] = json.load(f)["wall_s"]
    return {"wall_s": wall, "stage_wall_s": stage_s}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--stages", default="base,student_base")
    args = ap.parse_args()
    stages = args.stages.split(",")
    load0 = os.getloadavg()[0]
    runs = {1: [], 2: []}
    for _ in range(args.rounds):
        for workers in (1, 2):
            runs[workers].append(one_run(stages, args.steps, workers))
    med = {w: statistics.median(r["wall_s"] for r in rs) for w, rs in runs.items()}
    print(
        json.dumps(
            {
                "stages": stages,
                "steps_each": args.steps,
                "cpus": os.cpu_count(),
                "loadavg_1min_start_end": [round(load0, 2), round(os.getloadavg()[0], 2)],
                "runs": {f"workers={w}": rs for w, rs in runs.items()},
                "median_wall_s": {f"workers={w}": m for w, m in med.items()},
                "side_by_side_over_sequential": med[2] / med[1],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
