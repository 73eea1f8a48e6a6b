"""Process-table and file-system checks shared by the code sandbox tests.

A sandboxed run must leave nothing behind: no process (found by the sandbox's uid range, by a
marker string the hostile programs put in their children's command lines, or by the sandbox's own
command lines) and no file outside its directory. `leftovers()` finds such processes; `kill()` ends
exactly those (by pid), so a failing test still cleans up after itself.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import uuid

import psutil

SANDBOX_UID_MIN, SANDBOX_UID_MAX = 1_700_000_000, 2**31 - 1  # see sandbox_isolation.uid_for
MARKER = f"r1jax_test_marker_{uuid.uuid4().hex}"


def _is_ours(info: dict) -> bool:
    cmd = info.get("cmdline") or []
    uids = info.get("uids")
    if uids is not None and SANDBOX_UID_MIN <= uids.real <= SANDBOX_UID_MAX:
        return True
    joined = " ".join(cmd)
    return (
        MARKER in joined
        or "sandbox_child.py" in joined
        or (cmd[-1:] == ["main.py"] and "-I" in cmd)
    )


def leftovers() -> list[dict]:
    """Live (non-zombie) processes a sandboxed run started, and zombies among them."""
    out = []
    for p in psutil.process_iter(["pid", "ppid", "uids", "status", "cmdline", "name"]):
        try:
            if p.info["pid"] != os.getpid() and _is_ours(p.info):
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
    """No sandbox process alive (killing any found, then failing) and no run directory left."""
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
