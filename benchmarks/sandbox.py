"""Code-sandbox throughput and budget adherence; prints one JSON object.

    python benchmarks/sandbox.py [--workers 2] [--n 64] [--wall-s 2] [--budget-s 10] [--isolation auto]

Reported:
- `isolation`: the mode in force here (`--isolation` demands one, e.g. plain), its plain-mode
  layers and what it lacks (see r1jax/rewards/sandbox/isolation.py);
- `trivial_per_s`: runs/s through the pool (`run_many`) of a correct one-line stdin->stdout program,
  `--n` runs; `trivial_run_ms_median`: wall time of one run inside the pool (launcher start,
  namespaces and jail or Landlock and seccomp, Python start-up, teardown);
  `trivial_child_cpu_ms`: user+sys CPU of the run's processes per run, the number to compare on a
  busy machine (wall times there measure the other load as much as the sandbox);
- `hostile_per_s`: runs/s for a mix of infinite loop, sleeper, memory hog, output flood, fork bomb
  (only where RLIMIT_NPROC is enforced), socket, secret read and big-file write, `--n` runs in all,
  with `hostile_status_counts` (every one must fail; `hostile_passed` counts those that did not);
- `budget_*`: a batch of 4 * workers sleepers whose wall limit exceeds `--budget-s` / 2, run with
  budget `--budget-s` / 2: the batch's wall time vs that budget, and the worst overshoot of 3 batches.
The machine is shared: compare numbers from one run, not across runs.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from r1jax.rewards.code import normalize_output, passed  # noqa: E402
from r1jax.rewards.sandbox.runner import Job, Limits, Sandbox  # noqa: E402

TRIVIAL = "print(sum(map(int, input().split())))"
HOSTILE = {
    "cpu_loop": "while True:\n    pass",
    "sleep": "import time\ntime.sleep(60)",
    "memory": "b = b'x' * (2 << 30)\nprint(3)",
    "output": "import sys\nwhile True:\n    sys.stdout.write('3' * 65536)",
    "fork_bomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
    "socket": "import socket\nsocket.create_connection(('127.0.0.1', 22), timeout=1)\nprint(3)",
    "read_secret": "print(open('/etc/shadow').read())",
    "big_file": "open('f', 'wb').write(b'x' * (64 << 20))\nprint(3)",
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--wall-s", type=float, default=2.0)
    ap.add_argument("--budget-s", type=float, default=10.0)
    ap.add_argument("--isolation", default="auto", choices=("auto", "root", "userns", "plain"))
    args = ap.parse_args()
    limits = Limits(wall_s=args.wall_s, cpu_s=max(1, int(args.wall_s / 2)), memory_bytes=256 << 20)
    sb = Sandbox(limits, workers=args.workers, isolation=args.isolation)
    iso = sb.isolation
    out = {"workers": args.workers, "n": args.n, "limits": dataclasses.asdict(limits)}
    out["isolation"] = {"mode": iso.mode, "layers": list(iso.layers), "missing": list(iso.missing)}

    jobs = [Job(TRIVIAL, stdin=f"{i} 2") for i in range(args.n)]
    t0, ru0 = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    res = sb.run_many(jobs, budget_s=3600)
    dt, ru1 = time.monotonic() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = ru1.ru_utime - ru0.ru_utime + ru1.ru_stime - ru0.ru_stime
    assert all(passed(r, normalize_output(str(i + 2))) for i, r in enumerate(res)), res[:3]
    out["trivial_per_s"] = round(args.n / dt, 2)
    out["trivial_run_ms_median"] = round(1000 * statistics.median(r.wall_s for r in res), 1)
    out["trivial_child_cpu_ms"] = round(1000 * cpu / args.n, 1)

    kinds = [
        k
        for k in HOSTILE
        if k != "fork_bomb" or any(a.startswith("RLIMIT_NPROC") for a in iso.active)
    ]
    mix = [kinds[i % len(kinds)] for i in range(args.n)]
    t0 = time.monotonic()
    res = sb.run_many([Job(HOSTILE[k]) for k in mix], budget_s=3600)
    dt = time.monotonic() - t0
    out["hostile_kinds"] = kinds
    out["hostile_per_s"] = round(args.n / dt, 2)
    out["hostile_batch_s"] = round(dt, 2)
    out["hostile_status_counts"] = dict(
        collections.Counter(f"{k}:{r.status}" for k, r in zip(mix, res))
    )
    out["hostile_passed"] = sum(passed(r, "3") for r in res)

    budget = args.budget_s / 2
    slow = Sandbox(
        dataclasses.replace(limits, wall_s=budget * 4),
        workers=args.workers,
        isolation=args.isolation,
    )
    walls = []
    for _ in range(3):
        t0 = time.monotonic()
        res = slow.run_many(
            [Job("import time\ntime.sleep(600)")] * (4 * args.workers), budget_s=budget
        )
        walls.append(time.monotonic() - t0)
        assert all(r.status == "budget" for r in res)
    out["budget_s"] = budget
    out["budget_batch_wall_s"] = [round(w, 3) for w in walls]
    out["budget_worst_overshoot_s"] = round(max(walls) - budget, 3)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
