"""Plain mode (no namespaces) in the test process: the report lists exactly what the probe verified,
on this kernel and on older ones reproduced with `landlock_max` (or a Landlock the kernel refuses);
limits still hold; no process outlives a run; the seccomp tables match the kernel headers. The
hostile programs aimed at the supervisor itself run in tests/test_sandbox_supervisor.py, under a
supervisor in a process of its own.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile

import pytest
import sandbox_checks as sc

from r1jax.rewards.code import normalize_output, passed
from r1jax.rewards.sandbox import confine
from r1jax.rewards.sandbox import isolation as iso
from r1jax.rewards.sandbox.runner import Job, Limits, Sandbox

LIMITS = Limits(wall_s=3.0, cpu_s=1, memory_bytes=256 << 20, output_bytes=64 << 10, processes=8)
ABI = confine.landlock_abi()
ARCH = confine.seccomp_arch()
ROOT = os.geteuid() == 0
HEADERS = {
    "x86_64": "/usr/include/x86_64-linux-gnu/asm/unistd_64.h",
    "aarch64": "/usr/include/asm-generic/unistd.h",
}


@pytest.fixture(scope="module")
def tmp_root() -> str:
    """Below /tmp and searchable by others: with a root trainer each run has a uid of its own."""
    path = tempfile.mkdtemp(prefix="r1jax-plain-")
    os.chmod(path, 0o711)
    yield path
    shutil.rmtree(path)


@pytest.fixture(scope="module")
def plain(tmp_root) -> Sandbox:
    return Sandbox(LIMITS, workers=2, isolation="plain", tmp_root=tmp_root)


@pytest.fixture(autouse=True)
def clean(tmp_root):
    yield
    sc.assert_clean(tmp_root)


def _has(items: tuple[str, ...], prefix: str) -> bool:
    return any(i.startswith(prefix) for i in items)


@pytest.mark.parametrize("cap", [None, 5, 3, 0])
def test_report_lists_what_the_probe_verified(cap, tmp_root, caplog):
    iso._CACHE.pop(("plain", cap), None)
    with caplog.at_level(logging.INFO, logger="r1jax.rewards.sandbox.runner"):
        got = Sandbox(LIMITS, tmp_root=tmp_root, isolation="plain", landlock_max=cap).isolation
        again = Sandbox(LIMITS, tmp_root=tmp_root, isolation="plain", landlock_max=cap).isolation
    assert again == got
    assert len([r for r in caplog.records if "NOT protected" in r.getMessage()]) == 1
    assert len([r for r in caplog.records if "isolation 'plain'" in r.getMessage()]) == 1
    ll = ABI if cap is None else min(ABI, cap)
    assert got.plan.landlock == ll and got.plan.seccomp == ARCH and got.plan.drop == ROOT
    assert (f"Landlock ABI {ll}" in got.layers) == (ll > 0)
    assert (f"seccomp filter ({ARCH})" in got.layers) == (ARCH is not None)
    assert _has(got.active, "writes confined to its run folder") == (ll > 0)
    assert _has(got.missing, "writes confined to its run folder: NOT") == (ll == 0)
    assert _has(got.active, "reads limited to the system/Python dirs") == (ll > 0)
    assert _has(got.active, "network blocked") == (ARCH is not None)  # UDP: seccomp only
    assert _has(got.active, "cannot signal the trainer") == (ARCH is not None or ll >= 6 or ROOT)
    assert ("Landlock signal scope" in str(got.active)) == (ll >= 6)
    assert ("kill() only inside its own process group" in str(got.active)) == (
        ARCH is not None and ll < 6
    )
    assert _has(got.layers, "NOT in force: Landlock signal/abstract-unix scopes") == (0 < ll < 6)
    assert _has(got.layers, "NOT in force: Landlock TCP rules") == (0 < ll < 4)
    assert _has(got.active, "RLIMIT_NPROC (per run)") == ROOT
    assert _has(got.missing, "files hidden") and _has(got.missing, "disk space")
    claimed = {a.split(" (")[0] for a in got.active} & {m.split(" (")[0] for m in got.missing}
    assert not claimed, f"listed as both active and missing: {claimed}"


def test_honest_program_runs_as_its_own_uid_with_its_own_tmp(plain):
    prog = (
        "import os, sys, tempfile\n"
        "fd, path = tempfile.mkstemp()\n"
        "print(sorted(os.listdir('.')), os.getuid() != 0, os.path.dirname(path) == "
        "os.environ['TMPDIR'], sum(map(int, input().split())))"
    )
    res = plain.run(Job(prog, stdin="1 2 3"))
    assert passed(res, normalize_output(f"['main.py'] {ROOT} True 6")), res


def test_limits_still_hold(plain):
    # a long wall limit, so that the CPU limit decides even when the machine is busy
    res = plain.run(
        Job("import time\nwhile time.process_time() < 3.0:\n    pass\nprint(1)"), wall_s=60
    )
    assert res.status == "cpu_limit", res
    res = plain.run(Job("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)"))
    assert res.status == "output_limit", res
    res = plain.run(Job("b = b'x' * (400 << 20)\nprint(len(b))"))
    assert res.status == "exit" and "MemoryError" in res.stderr, res


def test_fork_bomb_is_capped_per_run_and_nothing_outlives_the_run(plain):
    if not ROOT:
        pytest.skip("RLIMIT_NPROC counts a run alone only with a uid of its own (root trainer)")
    prog = f"""
import os, sys
n = 0
for _ in range(40):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        os.closerange(0, 3)  # the run ends while these still sleep
        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)", "{sc.MARKER}"])
    n += 1
print(n)
"""
    res = plain.run(Job(prog))
    assert res.status == "ok" and 0 < int(res.stdout) < LIMITS.processes, res
    # the `clean` fixture checks that every sleeper died with the run


def test_unreachable_tmp_root_is_a_one_line_error(tmp_path):
    if not ROOT:
        pytest.skip("only a root trainer gives each run a uid of its own")
    private = tmp_path / "private"  # pytest's base folder is 0700
    private.mkdir()
    with pytest.raises(ValueError, match="out of reach of the per-run uids.*pass a tmp_root"):
        _ = Sandbox(LIMITS, isolation="plain", tmp_root=str(private)).isolation


@pytest.mark.parametrize("arch", sorted(confine.SYSCALLS))
def test_seccomp_syscall_numbers_match_the_kernel_headers(arch):
    if not os.path.exists(HEADERS[arch]):
        pytest.skip(f"{HEADERS[arch]} is not installed here")
    with open(HEADERS[arch], encoding="utf-8") as f:
        header = {k: int(v) for k, v in re.findall(r"#define __NR_(\w+)\s+(\d+)\n", f.read())}
    assert {n: header.get(n) for n in confine.SYSCALLS[arch]} == confine.SYSCALLS[arch]


def test_seccomp_program_layout():
    """Hand-counted: 4 (arch load+check, number load, x32 check) + 51 refused syscalls + clone3 and
    clone dispatch + allow = 58; clone-flags block 2; 3 returns: 63. Limiting signals adds 2 refused
    (tkill, pidfd_send_signal), 4 dispatches, the pid block (load, 3 compares, ja) and the tgid block
    (load, compare): 76. Every jump lands inside the program, on a load, a compare or a return."""
    for limit, length in ((False, 63), (True, 76)):
        prog = confine.seccomp_program("x86_64", 4242, limit)
        ins = [prog[i : i + 8] for i in range(0, len(prog), 8)]
        assert len(ins) == length and len(confine.DENIED) == 51
        codes = [int.from_bytes(x[:2], "little") for x in ins]
        for i, x in enumerate(ins):
            if codes[i] == 0x05:  # ja: offset in k
                targets = [int.from_bytes(x[4:], "little")]
            elif codes[i] in (0x15, 0x35, 0x45):  # jeq, jge, jset: offsets in jt, jf
                targets = list(x[2:4])
            else:
                continue
            for off in targets:
                assert codes[i + 1 + off] in (0x06, 0x20, 0x15, 0x35, 0x05), (i, off)
        rets = [int.from_bytes(x[4:], "little") for x, c in zip(ins, codes) if c == 0x06]
        assert rets == [0x7FFF0000, 0x7FFF0000, 0x00050001, 0x00050026]  # allow x2, EPERM, ENOSYS
        pid_checks = [int.from_bytes(x[4:], "little") for x, c in zip(ins, codes) if c == 0x15]
        assert (4242 in pid_checks and (-4242 & 0xFFFFFFFF) in pid_checks) == limit
