"""Security tests of the code sandbox. Each hostile program is written so that it WOULD pass its test
(print the expected output) if the protection under test were missing, and each test checks the
mechanism (status, errno, counts), that the run scored as failed, that no process is left (process
table) and that no file is left outside the sandbox. A protection this machine cannot provide is
skipped with the reason (see `Sandbox.isolation`), never assumed.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import tempfile
import threading
import time

import pytest
import sandbox_checks as sc

from r1jax.rewards.code import normalize_output, passed
from r1jax.rewards.sandbox import isolation as iso
from r1jax.rewards.sandbox.runner import Job, Limits, Result, Sandbox

LIMITS = Limits(
    wall_s=2.0, cpu_s=1, memory_bytes=256 << 20, output_bytes=64 << 10, file_bytes=1 << 20,
    open_files=32, processes=8, tmpfs_bytes=16 << 20,
)  # fmt: skip


@pytest.fixture(scope="module")
def tmp_root(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("sandbox_runs"))


@pytest.fixture(scope="module")
def sandbox(tmp_root) -> Sandbox:
    return Sandbox(LIMITS, workers=2, tmp_root=tmp_root)


@pytest.fixture(autouse=True)
def clean(tmp_root):
    yield
    sc.assert_clean(tmp_root)


def need(sandbox: Sandbox, protection: str) -> None:
    """Skips where the platform cannot give `protection`; fails where it can but the sandbox lost it."""
    active = any(a.startswith(protection) for a in sandbox.isolation.active)
    if not active and not sc.platform_has_namespaces():
        pytest.skip(f"not possible on this machine ({sandbox.isolation.mode}): {protection}")
    assert active, f"namespaces work here but the sandbox lacks: {protection} ({sandbox.isolation})"


def run(sandbox: Sandbox, program: str, expected: str, stdin: str = "") -> tuple[Result, bool]:
    res = sandbox.run(Job(program, stdin=stdin))
    return res, passed(res, normalize_output(expected))


def test_honest_program_passes_and_sees_only_its_own_files(sandbox):
    res, ok = run(
        sandbox,
        "import os\nprint(sorted(os.listdir('.')), sum(map(int, input().split())))",
        "['main.py'] 6",
        "1 2 3",
    )
    assert ok and res.status == "ok", res


def test_infinite_loop_is_stopped_by_the_cpu_limit(tmp_root):
    slow_wall = Sandbox(dataclasses.replace(LIMITS, wall_s=8.0), tmp_root=tmp_root)  # wall >> cpu
    prog = "import time\nwhile time.process_time() < 3.0:\n    pass\nprint(42)"
    res, ok = run(slow_wall, prog, "42")
    assert res.status == "cpu_limit" and not ok, res


def test_sleeping_past_the_wall_limit_is_killed(sandbox):
    t0 = time.monotonic()
    res, ok = run(sandbox, "import time\ntime.sleep(30)\nprint(42)", "42")
    assert res.status == "timeout" and not ok, res
    assert time.monotonic() - t0 < LIMITS.wall_s + 3.0


def test_fork_bomb_is_capped_and_every_child_dies(sandbox):
    need(sandbox, "RLIMIT_NPROC")
    need(sandbox, "own PID namespace")
    prog = f"""
import os, sys
n = 0
for _ in range(40):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        os.setsid()  # leave the process group: only the PID namespace can still reach it
        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)", "{sc.MARKER}"])
    n += 1
print(n)
"""
    res, ok = run(sandbox, prog, "40")
    assert res.status == "ok" and not ok, res
    assert int(res.stdout) < LIMITS.processes  # RLIMIT_NPROC stopped the forks
    # the `clean` fixture then checks that none of the setsid()'d children survived


def test_memory_hog_hits_the_address_space_limit(sandbox):
    res, ok = run(sandbox, "b = b'x' * (400 << 20)\nprint(len(b) >> 20)", "400")
    assert res.status == "exit" and "MemoryError" in res.stderr and not ok, res


def test_huge_output_is_cut_and_the_program_killed(sandbox):
    t0 = time.monotonic()
    res, ok = run(sandbox, "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)", "x")
    assert res.status == "output_limit" and not ok, res
    assert len(res.stdout) + len(res.stderr) <= LIMITS.output_bytes
    assert time.monotonic() - t0 < LIMITS.wall_s  # killed at the cap, not at the wall limit


def test_big_file_hits_the_file_size_limit(sandbox):
    prog = "with open('big', 'wb') as f:\n    f.write(b'x' * (4 << 20))\nprint('ok')"
    res, ok = run(sandbox, prog, "ok")
    assert res.status == "exit" and "File too large" in res.stderr and not ok, res


def test_writing_outside_the_sandbox_fails(sandbox, tmp_path):
    need(sandbox, "files hidden")
    targets = [
        os.path.join(tempfile.gettempdir(), f"{sc.MARKER}_escape"),  # world-writable /tmp
        str(tmp_path / "escape"),  # the trainer's own directory
        "../escape",  # next to the sandbox's working directory
    ]
    prog = f"""
n = 0
for p in {targets!r}:
    try:
        with open(p, "w") as f:
            f.write("pwned")
        n += 1
    except OSError:
        pass
print(n)
"""
    try:
        res, ok = run(sandbox, prog, "3")
        # /tmp inside the jail is a private tmpfs, so that write may succeed; it never reaches the host
        assert res.status == "ok" and res.stdout.strip() in ("0", "1") and not ok, res
    finally:
        found = [t for t in targets[:2] if os.path.exists(t)]
        for t in found:
            os.remove(t)
    assert not found, f"files written outside the sandbox: {found}"


def test_trainer_files_and_environment_are_unreadable(sandbox, tmp_path, monkeypatch):
    need(sandbox, "files hidden")
    token = f"SECRET_{sc.MARKER}"
    monkeypatch.setenv("R1JAX_TEST_SECRET", token)
    private = tmp_path / "private"
    private.write_text(token)
    private.chmod(0o600)
    public_dir = tempfile.mkdtemp()  # world-readable: only the jail hides it
    try:
        os.chmod(public_dir, 0o755)
        public = os.path.join(public_dir, "public")
        with open(public, "w") as f:
            f.write(token)
        os.chmod(public, 0o644)
        paths = [str(private), public, os.path.abspath(__file__), f"/proc/{os.getpid()}/environ"]
        prog = f"""
import os
for p in {paths!r}:
    try:
        with open(p, "rb") as f:
            print(f.read().decode("latin-1"))
    except OSError as e:
        print("denied", type(e).__name__)
print(os.environ.get("R1JAX_TEST_SECRET"))
"""
        res, ok = run(sandbox, prog, "\n".join([token, token, "x", token, token]))
    finally:
        os.remove(public)
        os.rmdir(public_dir)
    assert res.status == "ok" and not ok, res
    assert token not in res.stdout and "test_code_sandbox" not in res.stdout, res.stdout
    assert res.stdout.count("denied") == len(paths)


def test_network_is_blocked(sandbox):
    need(sandbox, "network blocked")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.settimeout(0.2)
    accepted, done = [], threading.Event()

    def serve():
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            accepted.append(1)
            conn.sendall(b"hello-from-the-trainer\n")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    port = server.getsockname()[1]
    prog = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\nprint(s.recv(100).decode())"
    try:
        res, ok = run(sandbox, prog, "hello-from-the-trainer")
    finally:
        done.set()
        thread.join()
        server.close()
    assert res.status == "exit" and "OSError" in res.stderr and not ok, res
    assert not accepted


def test_no_inherited_descriptors_minimal_environment_sealed_stdin(sandbox, tmp_path):
    held = open(tmp_path / "held", "w")  # an fd the trainer holds open during the run,
    os.set_inheritable(held.fileno(), True)  # inheritable, as C libraries often leave theirs
    prog = """
import os
fds = []
for fd in range(3, 256):
    try:
        os.fstat(fd)
        fds.append(fd)
    except OSError:
        pass
try:
    os.write(0, b"overwrite the test input")
    wrote = True
except OSError:
    wrote = False
print(fds, sorted(os.environ), wrote)
"""
    try:
        res, _ = run(sandbox, prog, "")
    finally:
        held.close()
    assert res.stdout.strip() == "[] ['HOME', 'LANG', 'PATH', 'TMPDIR'] False", res


def test_exit_codes_cannot_forge_a_setup_error(sandbox):
    res, _ = run(sandbox, "import sys\nprint('setup x')\nsys.exit(125)", "")
    assert res.status == "exit" and res.exit_code == 125, res


def test_batch_returns_within_its_budget_and_kills_the_rest(sandbox):
    jobs = [Job("import time\ntime.sleep(30)")] * 6
    t0 = time.monotonic()
    results = sandbox.run_many(jobs, budget_s=1.5)
    assert time.monotonic() - t0 < 1.5 + 1.5
    assert [r.status for r in results] == ["budget"] * 6


def test_namespace_report_is_verified_and_logged_once(sandbox, caplog, tmp_root):
    need(
        sandbox, "own PID namespace"
    )  # skips where namespaces cannot work (plain mode's own tests)
    iso._CACHE.pop(("auto", None), None)
    with caplog.at_level(logging.INFO, logger="r1jax.rewards.sandbox.runner"):
        got = Sandbox(LIMITS, tmp_root=tmp_root).isolation
        again = Sandbox(LIMITS, tmp_root=tmp_root).isolation
    assert again == got and got.mode == sandbox.isolation.mode and got.layers == ()
    assert any(a.startswith("network blocked") for a in got.active)  # TCP, UDP and unix probed
    assert any(a.startswith("files hidden") for a in got.active)
    assert len([r for r in caplog.records if r.getMessage().startswith("code sandbox: iso")]) == 1
