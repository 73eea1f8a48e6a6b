"""Opt-in (`R1JAX_HEAP=hugepages`): glibc's large heap blocks on transparent huge pages.

Why: XLA's CPU backend allocates each program's temporaries as one block per call (731 MB for the
toy base model's training step) and frees it when the call ends. glibc serves a block that large
with `mmap` and returns it with `munmap`, so every step faults the block in again, 4 KiB at a time:
180,000 page faults and about a quarter of the step's wall time in the kernel. glibc's tunable
`glibc.malloc.hugetlb=1` (glibc >= 2.35) asks for transparent huge pages on those blocks
(`madvise`), which makes it ~750 faults of 2 MiB. `benchmarks/heap_policy.py` measures it
(2026-12-02, 3 interleaved rounds): the toy LM step 0.80x the time (1.54 -> 1.24 s), peak RSS
1,125 -> 1,132 MiB.

Why opt-in: in the shared peer benchmark's GRPO step (same day, 3 interleaved rounds, the VM
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
