"""Helpers of the multi-process stage tests: start runs as a user would, and compare their outputs.

A one-process run is `python -m r1jax.main` on 8 CPU devices; a two-process run is
`python -m r1jax.launch --processes=2 --devices_per_process=4 -- <the same flags>`. Both log XLA's
warnings (TF_CPP_MIN_LOG_LEVEL=1), so a compiled "Involuntary full rematerialization" shows in the
text each returns, and they share a persistent compilation cache (a resumed run loads the programs
its uninterrupted twin compiled; a cached program is the same program, so numbers are unchanged).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMING = ("step_time_s", "time_sample_s", "time_reward_s", "time_update_s", "gen_tokens_per_s")
TIMING += ("tokens_per_s",)
REMAT = "Involuntary full rematerialization"
RTOL = 1e-5
# GRPO's loss is a sum of +-advantage x ratio terms of size ~1 that cancel to ~1e-4, so a relative
# 1e-5 of it is below float32's resolution of the terms (~1e-7 each): 1 and 2 processes (another
# reduction order) gave 4.04697e-4 and 4.04715e-4 on a 2026-12-02 VM. Its absolute float32 scale:
ABS = {"loss": 1e-6}


def env(cache_dir: str, devices: int = 8) -> dict:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("R1JAX_", "JAX_", "SLURM_"))}
    flags = [f for f in e.get("XLA_FLAGS", "").split() if "device_count" not in f]
    e["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={devices}"])
    e["JAX_PLATFORMS"] = "cpu"
    e["TF_CPP_MIN_LOG_LEVEL"] = "1"
    e["PYTHONPATH"] = os.pathsep.join([ROOT, e.get("PYTHONPATH", "")])
    e["JAX_COMPILATION_CACHE_DIR"] = cache_dir
    e["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    e["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    return e


def start(processes: int, args: list[str], log: str, cache_dir: str, extra: tuple = ()):
    """Starts a run (1: main.py on 8 devices; 2: the launcher, 4 devices each); output -> log."""
    if processes == 1:
        cmd = [sys.executable, "-m", "r1jax.main", *args]
    else:
        cmd = [sys.executable, "-m", "r1jax.launch", f"--processes={processes}"]
        cmd += [f"--devices_per_process={8 // processes}", "--grace_s=60", *extra, "--", *args]
    f = open(log, "w")
    p = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env(cache_dir),
        stdout=f,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return p, f, log, time.monotonic()


def finish(run, timeout: float = 900) -> tuple[int, str, float]:
    """(exit code, output, seconds) of a started run; a run past `timeout` is killed."""
    p, f, log, t0 = run
    try:
        p.wait(timeout=max(1.0, timeout - (time.monotonic() - t0)))
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, 9)
        p.wait()
    f.close()
    with open(log, encoding="utf-8", errors="replace") as fh:
        return p.returncode, fh.read(), time.monotonic() - t0


def check_ok(result: tuple[int, str, float], what: str) -> str:
    rc, text, _ = result
    assert rc == 0, f"{what} exited {rc}:\n{text[-6000:]}"
    return text


def metrics(workdir: str, name: str = "metrics.jsonl") -> list[dict]:
    with open(os.path.join(workdir, name), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def close(a, b, key: str = "") -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
            return False
        return math.isclose(a, b, rel_tol=RTOL, abs_tol=ABS.get(key, 1e-12))
    if isinstance(a, dict) and isinstance(b, dict):
        return set(a) == set(b) and all(close(a[k], b[k], k) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y, key) for x, y in zip(a, b))
    return a == b


def assert_same(a, b, what: str) -> None:
    """Equal structure and values; floats to a relative 1e-5 (every key, every row)."""
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{what}[{i}]")
        return
    if isinstance(a, dict) and isinstance(b, dict):
        assert set(a) == set(b), f"{what}: keys differ: {sorted(set(a) ^ set(b))}"
        for k in a:
            assert close(a[k], b[k], k), f"{what}[{k!r}]: {a[k]!r} != {b[k]!r}"
        return
    assert close(a, b), f"{what}: {a!r} != {b!r}"


def read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_questions(path: str, n: int = 48) -> None:
    """A JSONL task: every third question is ~70 tokens longer than the others (same sums)."""
    filler = (
        "A long story comes first: the farmer walks to the market, counts the carts and the "
        "sheep, and writes every number down on a slate before he goes home again. "
    )
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            a, b = (7 * i) % 9 + 1, (5 * i + 3) % 9 + 1
            q = f"Question {i}: what is {a} + {b}?"
            q = filler * 2 + q if i % 3 == 0 else q
            f.write(json.dumps({"question": q, "answer": str(a + b)}) + "\n")
