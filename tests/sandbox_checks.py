"""Process-table and file-system checks shared by the code sandbox tests.

A sandboxed run must leave nothing behind: no process (found by the uids this session's runs get,
by a marker string the hostile programs put in their children's command lines, or by the sandbox's
own command lines below this process) and no file outside its directory. `leftovers()` finds such processes; `kill()` ends
exactly those (by pid), so a failing test still cleans up after itself.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import time
import uuid

import psutil

from r1jax.rewards.sandbox import launch

MARKER = f"r1jax_test_marker_{uuid.uuid4().hex}"
SUPERVISORS: set[int] = set()  # pids of supervisors run as separate processes (sandbox_driver.py)


def _run_uids(supervisor: int) -> range:
    """The uids a supervisor gives its runs (see launch.uid_for): one block per supervisor pid."""
    first = 1_700_000_000 + launch.MAX_SLOTS * (supervisor % 1_000_000)
    return range(first, first + launch.MAX_SLOTS)


def _is_ours(info: dict, supervisors: set[int], ours: set[int]) -> bool:
    """Started by this session's runs: a run uid of ours, the session's marker, or a sandbox
    command line below this process. Other sessions' sandboxes on the same machine are not ours
    (killing their runs would fail their tests)."""
    cmd = info.get("cmdline") or []
    uids = info.get("uids")
    if uids is not None and any(uids.real in _run_uids(s) for s in supervisors):
        return True
    joined = " ".join(cmd)
    sandboxed = "rewards/sandbox/child.py" in joined or (cmd[-1:] == ["main.py"] and "-I" in cmd)
    return MARKER in joined or (sandboxed and info["pid"] in ours)


def leftovers() -> list[dict]:
    """Processes (zombies included) that this session's sandboxed runs started and left."""
    supervisors = {os.getpid(), *SUPERVISORS}
    try:
        ours = {p.pid for p in psutil.Process().children(recursive=True)}
    except psutil.Error:
        ours = set()
    out = []
    for p in psutil.process_iter(["pid", "ppid", "uids", "status", "cmdline", "name"]):
        try:
            if p.info["pid"] != os.getpid() and _is_ours(p.info, supervisors, ours):
                out.append(p.info)
        except (psutil.Error, TypeError):
            continue
    return out


def kill(procs: list[dict]) -> None:
    for info in procs:
        try:
            os.kill(info["pid"], signal.SIGKILL)
        except OSError:
            pass


def assert_clean(tmp_root: str | None = None) -> None:
    """No sandbox process alive (killing any found, then failing) and no run directory left.

    A dead process orphaned to init (a zombie whose parent is pid 1) is init's to reap; some inits
    (this machine's) reap about once a second, so such zombies get up to 3 s to go, then count.
    """
    end = time.monotonic() + 3.0
    left = leftovers()
    while left and all(p["status"] == "zombie" and p["ppid"] == 1 for p in left):
        if time.monotonic() > end:
            break
        time.sleep(0.05)
        left = leftovers()
    kill(left)
    assert not left, f"processes left behind: {left}"
    if tmp_root is not None:
        assert os.listdir(tmp_root) == [], f"files left in {tmp_root}: {os.listdir(tmp_root)}"


@functools.cache
def platform_has_namespaces() -> bool:
    """An oracle independent of r1jax: can util-linux's `unshare` make the namespaces here?

    Where it can, the sandbox must use them, so a security test fails (not skips) when the
    sandbox loses one; where it cannot, the test is skipped with the reason.
    """
    if shutil.which("unshare") is None:
        return False
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    cmd = ["unshare", *user, "--pid", "--net", "--mount", "--ipc", "--uts", "--fork", "true"]
    return subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0


def readable_copy(root: str, repo_root: str) -> str:
    """The sandbox package (standard library only) where every uid can read it: the checkout may
    sit in a folder the unprivileged supervisor cannot enter (a CI clone in a 0700 `mktemp -d`)."""
    repo = os.path.join(root, "repo")
    dst = os.path.join(repo, "r1jax", "rewards", "sandbox")
    if not os.path.isdir(dst):
        src = os.path.join(repo_root, "r1jax", "rewards", "sandbox")
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        for base, _dirs, files in os.walk(repo):
            os.chmod(base, 0o755)
            for f in files:
                os.chmod(os.path.join(base, f), 0o644)
    return repo
