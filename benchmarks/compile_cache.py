"""The pipeline's compilation cache (`config.compile_cache`) on and off, on the report's evaluations.

    python benchmarks/compile_cache.py --run=/tmp/r1jax/pipeline [--rounds 1] [--workers 2]

Takes a finished main-job run (`experiments/r1_pipeline.py`, the one-hour default) and reruns its
eight `eval_<model>` stages in a fresh workdir, the trained models linked from the run
(`--config.reuse`), once with `--config.compile_cache=""` (every stage process compiles its own
programs) and once with the default cache under the workdir, starting empty (the first stage
compiles, the others load what it compiled), alternating per round so both see the same machine.
These stages sample the same model shape with the same batch and lengths, the case the cache is
for. Reports the whole command's wall time and each stage's, and whether every stage's records
(its samples) are byte-identical between the two settings, the cache's promise. Any
JAX_COMPILATION_CACHE_DIR of the caller is removed for the runs (it would win over the setting).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from r1jax import config_base  # noqa: E402

MODELS = config_base.sibling(os.path.join(ROOT, "experiments", "x.py"), "r1_pipeline").MODELS


def _records_digest(stage_dir: str) -> str:
    h = hashlib.sha256()
    records = os.path.join(stage_dir, "records")
    for name in sorted(os.listdir(records)):
        with open(os.path.join(records, name), "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:16]


def one_run(run: str, cache: bool, workers: int) -> dict:
    evals = [f"eval_{m}" for m in MODELS]
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    env["PYTHONPATH"] = ROOT
    with tempfile.TemporaryDirectory(prefix="compile_cache_") as wd:
        cmd = [
            sys.executable,
            "-m",
            "r1jax.main",
            "--config=experiments/r1_pipeline.py",
            f"--workdir={wd}",
            f"--config.reuse_from={run}",
            f"--config.reuse={tuple(MODELS)!r}",
            f"--config.only={','.join(evals)}",
            f"--config.workers={workers}",
            *([] if cache else ["--config.compile_cache="]),
        ]
        t0 = time.perf_counter()
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
        stage_s, digests = {}, {}
        for s in evals:
            with open(os.path.join(wd, s, "DONE.json"), encoding="utf-8") as f:
                stage_s[s] = round(json.load(f)["wall_s"], 2)
            digests[s] = _records_digest(os.path.join(wd, s))
        cache_dir = os.path.join(wd, "jax_cache")
        entries = len(os.listdir(cache_dir)) if os.path.isdir(cache_dir) else 0
    return {
        "wall_s": round(wall, 2),
        "stage_wall_s": stage_s,
        "digests": digests,
        "entries": entries,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True, help="a finished main-job workdir")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    runs: dict[str, list] = {"off": [], "on": []}
    for r in range(args.rounds):
        for setting in ("off", "on") if r % 2 == 0 else ("on", "off"):
            runs[setting].append(one_run(args.run, setting == "on", args.workers))
    same = all(a["digests"] == b["digests"] for a in runs["off"] for b in runs["on"] + runs["off"])
    off = [x["wall_s"] for x in runs["off"]]
    on = [x["wall_s"] for x in runs["on"]]
    out = {
        "run": args.run,
        "workers": args.workers,
        "rounds": args.rounds,
        "load_before": round(load0, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "wall_s_off": off,
        "wall_s_on": on,
        "on_over_off": round(sum(on) / sum(off), 3),
        "stage_sum_s_off": [round(sum(x["stage_wall_s"].values()), 1) for x in runs["off"]],
        "stage_sum_s_on": [round(sum(x["stage_wall_s"].values()), 1) for x in runs["on"]],
        "records_identical": same,
        "runs": runs,
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
