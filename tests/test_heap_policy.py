"""The heap policies: which GLIBC_TUNABLES the CLI re-executes with for R1JAX_HEAP=hugepages (once,
same pid and arguments), and the opt-in malloc arena cap (R1JAX_MALLOC_ARENAS)."""

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


@pytest.mark.parametrize(
    "choice, env, want",
    [
        ("hugepages", {"PATH": "/bin"}, {"PATH": "/bin", "R1JAX_HEAP": "hugepages"}),
        ("hugepages", {"R1JAX_HEAP": "glibc"}, None),  # the user's choice wins
        ("", {"PATH": "/bin"}, None),  # glibc's own heap: the environment as it is
    ],
)
def test_the_pipeline_stage_processes_environment(choice, env, want):
    """pipeline config.heap -> the stage processes' environment (their configure() re-executes
    them with the tunable; tests/test_pipeline.py reads the heap each stage ran with)."""
    assert heap_policy.child_env(choice, env) == want


def test_a_bad_heap_choice_is_refused():
    with pytest.raises(ValueError, match=r"config\.heap='huge' must be 'hugepages' or ''"):
        heap_policy.child_env("huge", {})


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


@pytest.mark.parametrize(
    "env, want",
    [
        ({}, None),  # glibc's own: the cap costs time (heap_policy's docstring)
        ({"R1JAX_MALLOC_ARENAS": "1"}, 1),
        ({"R1JAX_MALLOC_ARENAS": " 2 "}, 2),
        ({"R1JAX_MALLOC_ARENAS": "0"}, None),
    ],
)
def test_arena_cap_from_the_environment(env, want):
    assert heap_policy.arena_cap(env) == want


def test_a_bad_arena_cap_names_the_variable():
    with pytest.raises(ValueError, match="R1JAX_MALLOC_ARENAS='two'.*0 keeps glibc's own"):
        heap_policy.arena_cap({"R1JAX_MALLOC_ARENAS": "two"})


_ARENAS = (
    "import ctypes, threading\n"
    "from r1jax.train import heap_policy\n"
    "print('cap', heap_policy.limit_arenas(), flush=True)\n"
    "libc = ctypes.CDLL(None)\n"
    "libc.malloc.restype = ctypes.c_void_p\n"
    "go = threading.Barrier(6)\n"
    "def work():\n"
    "    go.wait()\n"
    "    for _ in range(2000):\n"
    "        libc.free(ctypes.c_void_p(libc.malloc(4096)))\n"
    "    go.wait()\n"
    "ts = [threading.Thread(target=work) for _ in range(5)]\n"
    "[t.start() for t in ts]\n"
    "go.wait(); go.wait()\n"
    "libc.malloc_stats()\n"  # one 'Arena N:' block per arena, on stderr
    "[t.join() for t in ts]\n"
)


@pytest.mark.skipif(heap_policy._glibc_version() is None, reason="needs glibc")
@pytest.mark.parametrize("setting, cap", [("1", 1), ("0", None)])
def test_the_cap_holds_the_arenas_threads_get(setting, cap):
    """Five threads allocating at once get arenas of their own under glibc's default (0), and all
    share the main one under a cap of 1."""
    env = dict(os.environ, PYTHONPATH=ROOT, R1JAX_MALLOC_ARENAS=setting)
    env.pop("GLIBC_TUNABLES", None)
    out = subprocess.run([sys.executable, "-c", _ARENAS], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert f"cap {cap}" in out.stdout
    arenas = sum(ln.startswith("Arena ") for ln in out.stderr.splitlines())
    if cap is None:
        assert arenas > 1
    else:
        assert arenas == 1


def test_the_cli_refuses_a_bad_arena_cap_in_one_line():
    env = dict(os.environ, PYTHONPATH=ROOT, R1JAX_MALLOC_ARENAS="two")
    out = subprocess.run(
        [sys.executable, "-m", "r1jax.main", "--config=x.py", "--workdir=unused"],
        env=env, capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "r1jax: R1JAX_MALLOC_ARENAS='two': expected a whole number of malloc arenas (1 saves "
        "memory and costs time, 0 keeps glibc's own)."
    ]
