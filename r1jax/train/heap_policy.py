"""Opt-in policies for the process's C heap (glibc malloc): a cap on its arenas
(`R1JAX_MALLOC_ARENAS=N`) and its large blocks on transparent huge pages (`R1JAX_HEAP=hugepages`).

**Arenas** (`limit_arenas`; unset or 0 keeps glibc's up to 8 per core). glibc gives each thread
that allocates its own arena, and memory freed in one arena serves only that arena's later
requests. XLA compiles on worker threads (and r1jax compiles the GRPO update on a thread of its
own while the sampler runs, `host_memory.py`), so what a compile allocates and frees is spread
over several arenas, each keeping its share while the programs run. One arena trades time for
memory. Measured in the shared peer benchmark's GRPO step (2026-12-03, 2-core VM, 3 interleaved
rounds beside TRL, `benchmarks/results/peer_bench_2026-12-03_arenas.md`): peak RSS 849 against
900 MiB, but the step took 1.12x glibc's time (slower in every round) and the first step
(compile) 1.29x; presumably XLA's threads contend for the one arena's lock (not profiled). Two
arenas: 855 / 886 / 846 against 898 / 847 / 860 MiB per run, inside the spread. Hence opt-in,
for hosts where memory is tighter than time.

**Huge pages.** Why: XLA's CPU backend allocates each program's temporaries as one block per
call (731 MB for the toy base model's training step) and frees it when the call ends. glibc
serves a block that large with `mmap` and returns it with `munmap`, so every step faults the
block in again, 4 KiB at a time:
180,000 page faults and about a quarter of the step's wall time in the kernel. glibc's tunable
`glibc.malloc.hugetlb=1` (glibc >= 2.35) asks for transparent huge pages on those blocks
(`madvise`), which makes it ~750 faults of 2 MiB. `benchmarks/heap_policy.py` measures it
(2026-12-02, 3 interleaved rounds): the toy LM step 0.80x the time (1.54 -> 1.24 s), peak RSS
1,125 -> 1,132 MiB.

Where it is the default: the pipeline's stage processes (`config.heap="hugepages"`, 2026-12-05:
the toy LM step 0.74x, the main job from nothing 39.3 against 45.0 minutes with the same results,
the peer benchmark's GRPO step 0.95x; README "Host heap"), through `child_env`. Elsewhere opt-in,
because: in the shared peer benchmark's GRPO step (same day, 3 interleaved rounds, the VM
under heavy steal) it was slower in every round, 3.33 against 2.91 s median (per round 3.33 /
3.83 / 2.72 against 3.11 / 2.91 / 2.59), peak RSS 889 against 905 MiB. The cause was not
investigated (one candidate: the kernel's THP `defrag=madvise` setting makes a fault in an
madvised block compact memory synchronously). Measure before turning it on
(`benchmarks/heap_policy.py`, and the peer benchmark with `R1JAX_HEAP=hugepages`).

Tried and dropped: keeping freed blocks in the heap (one arena, no `mmap`, no trimming) removes
the faults too (0.72x) but a small allocation landing in a freed block made the heap take a second
731 MB block: peak RSS 1,125 -> 1,789 MiB.

Tunables are read when the process starts, so with `R1JAX_HEAP=hugepages` `python -m r1jax.main`
(and `r1jax.launch`'s processes, which run it, and the benchmark scripts) re-execute themselves
once with the tunable added; the pid stays the same. A notebook or another program gets it by
starting with `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`. Without the variable nothing changes; nor
where the kernel's THP mode is `never` or the C library is not glibc >= 2.35.
"""

from __future__ import annotations

import os
import sys

TUNABLE = "glibc.malloc.hugetlb=1"
ENV = "R1JAX_HEAP"
ARENAS_ENV = "R1JAX_MALLOC_ARENAS"
_M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)


def _glibc_version() -> tuple[int, int] | None:
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()  # "glibc 2.36"
        major, minor = version.split(".")[:2]
        return (int(major), int(minor)) if name == "glibc" else None
    except (ValueError, OSError, AttributeError):
        return None


def tunables_with_hugepages(env: dict[str, str], glibc: tuple[int, int] | None) -> str | None:
    """The GLIBC_TUNABLES value to re-execute with, or None to run as is (not asked for, already
    set, or not a glibc that has the tunable)."""
    current = env.get("GLIBC_TUNABLES", "")
    if env.get(ENV) != "hugepages" or glibc is None or glibc < (2, 35):
        return None
    if "glibc.malloc.hugetlb" in current:  # set by us on the first exec, or by the user
        return None
    return f"{current}:{TUNABLE}" if current else TUNABLE


def reexec_with_hugepage_heap() -> None:
    """Replaces this process by the same command with the tunable set (see the module docstring);
    returns without doing anything when `tunables_with_hugepages` says so."""
    if not sys.platform.startswith("linux"):
        return
    value = tunables_with_hugepages(dict(os.environ), _glibc_version())
    if value is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, dict(os.environ, GLIBC_TUNABLES=value))


def arena_cap(env: dict[str, str]) -> int | None:
    """The arena cap `limit_arenas` sets: R1JAX_MALLOC_ARENAS, None when unset or 0 (glibc's
    own). A value that is not a non-negative integer is a one-line error naming the variable."""
    raw = env.get(ARENAS_ENV, "0").strip()  # unset: glibc's own (the docstring says why)
    if not raw.isdigit():
        raise ValueError(
            f"{ARENAS_ENV}={raw!r}: expected a whole number of malloc arenas (1 saves memory "
            "and costs time, 0 keeps glibc's own)."
        )
    return int(raw) or None


def limit_arenas() -> int | None:
    """Caps glibc's malloc arenas for threads started from now on when R1JAX_MALLOC_ARENAS asks
    for it (see the module docstring); returns the cap, or None when nothing was set (not asked
    for, or not glibc on Linux). Call it first thing in a process, before jax starts threads."""
    cap = arena_cap(dict(os.environ))
    if cap is None or not sys.platform.startswith("linux") or _glibc_version() is None:
        return None
    import ctypes

    if ctypes.CDLL(None).mallopt(_M_ARENA_MAX, cap) != 1:  # mallopt returns 1 on success
        return None
    return cap


def current(env: dict[str, str]) -> str:
    """The heap a process with this environment runs on: "hugepages" when its GLIBC_TUNABLES
    asks for them (as `configure` re-executes with), else "glibc"."""
    return "hugepages" if TUNABLE in env.get("GLIBC_TUNABLES", "").split(":") else "glibc"


def child_env(choice: str, env: dict[str, str]) -> dict[str, str] | None:
    """The environment for processes a pipeline starts under its `config.heap` choice: `env` with
    R1JAX_HEAP=`choice` (their `configure` then re-executes them with the tunable), or None to
    leave it as is ("" = glibc's own heap, or R1JAX_HEAP already set: the user's choice wins)."""
    if choice not in ("", "hugepages"):
        raise ValueError(f"config.heap={choice!r} must be 'hugepages' or '' (glibc's own heap).")
    if not choice or ENV in env:
        return None
    return dict(env, **{ENV: choice})


def configure() -> None:
    """Both opt-in policies, first thing in a process (`python -m r1jax.main`, the pipeline's
    workers, the benchmark scripts): the huge-page re-exec, then the arena cap, each when asked."""
    reexec_with_hugepage_heap()
    limit_arenas()
