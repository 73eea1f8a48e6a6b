"""The opt-in heap policy (R1JAX_HEAP=hugepages): which GLIBC_TUNABLES the CLI re-executes with,
and that the re-exec keeps the process (same pid, same arguments) and happens once."""

import os
import subprocess
import sys

import pytest

from r1jax.train import heap_policy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ON = {"R1JAX_HEAP": "hugepages"}


@pytest.mark.parametrize(
    "env, glibc, want",
    [
        ({}, (2, 36), None),  # not asked for: glibc's default
        ({"R1JAX_HEAP": "glibc"}, (2, 36), None),
        (ON, (2, 36), "glibc.malloc.hugetlb=1"),
        ({**ON, "GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, (2, 36),
         "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"),  # the user's tunables kept
        ({**ON, "GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, (2, 36), None),  # user's choice wins
        ({**ON, "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}, (2, 36), None),  # already re-executed
        (ON, (2, 34), None),  # before glibc had the tunable
        (ON, None, None),  # not glibc (musl, macOS)
    ],
)  # fmt: skip
def test_tunables_to_reexecute_with(env, glibc, want):
    assert heap_policy.tunables_with_hugepages(env, glibc) == want


@pytest.mark.skipif(
    heap_policy._glibc_version() is None or heap_policy._glibc_version() < (2, 35),
    reason="needs glibc >= 2.35",
)
def test_reexec_keeps_pid_and_arguments_and_happens_once():
    code = (
        "import os, sys\n"
        "print('start', os.getpid(), flush=True)\n"
        "from r1jax.train import heap_policy\n"
        "heap_policy.reexec_with_hugepage_heap()\n"
        "print('after', os.getpid(), os.environ['GLIBC_TUNABLES'], sys.argv[1:])\n"
    )
    env = dict(os.environ, PYTHONPATH=ROOT, GLIBC_TUNABLES="glibc.malloc.arena_max=4", **ON)
    out = subprocess.run(
        [sys.executable, "-c", code, "a", "--b=1"], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")
    starts = [ln.split()[1] for ln in lines if ln.startswith("start")]
    (after,) = [ln for ln in lines if ln.startswith("after")]
    assert len(starts) == 2 and starts[0] == starts[1]  # ran twice in one process: exec, not fork
    pid, tunables, args = after.split(" ", 3)[1:]
    assert pid == starts[0]
    assert tunables == "glibc.malloc.arena_max=4:glibc.malloc.hugetlb=1"
    assert args == "['a', '--b=1']"
