"""Which isolation the code sandbox can use on this machine, verified by a probe, and its plumbing.

Modes, strongest first:
- "root": the trainer is root. Namespaces (PID, network, mount, IPC, UTS), a chroot jail, and a
  distinct unprivileged uid per concurrent run, so RLIMIT_NPROC counts that run's processes only and
  no run can signal another or own the trainer's files.
- "userns": not root, but unprivileged user namespaces work. The same namespaces and jail, inside a
  user namespace where the candidate is uid 1000 (the trainer's uid outside); exec drops every
  capability. RLIMIT_NPROC then counts all processes and threads of the trainer's uid.
- "plain": no namespaces. Rlimits, a fresh cwd, a minimal environment, the process-group kill and the
  output cap only: the candidate can read what the trainer's uid can read and reach the network, and
  a child that calls setsid() can outlive the run. A warning says so, once.

A mode counts as working only if a probe program run under it shows that it does: it cannot read a
world-readable canary file outside the sandbox, cannot leave a file in the host's /tmp, cannot
connect to a port the trainer listens on, and is PID 2 of its own PID namespace (PID 1 is the
launcher's init, see child.py).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("r1jax.rewards.sandbox.runner")

USERNS_UID = 1000  # the candidate's uid inside a user namespace
MAX_SLOTS = 256  # concurrent runs per trainer process in "root" mode (one uid each)
ALWAYS = (
    "fresh empty temp dir as cwd",
    "minimal environment",
    "no inherited file descriptors",
    "python -I -S -B",
    "rlimits: cpu, address space, open files, file size, core=0",
    "wall limit + SIGKILL of the process group",
    "output cap",
    "no_new_privs",
)
_DEVS = ("/dev/null", "/dev/zero", "/dev/random", "/dev/urandom")

_PROBE = """\
import json, os, socket
f = {{"uid": os.getuid(), "pid": os.getpid()}}
try:
    with open({canary!r}, encoding="utf-8") as fh:
        f["canary"] = fh.read()
except OSError:
    f["canary"] = None
try:
    with open({mark!r}, "w") as fh:
        fh.write("x")
except OSError:
    pass
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=1).close()
    f["net"] = True
except OSError:
    f["net"] = False
print(json.dumps(f))
"""


@dataclasses.dataclass(frozen=True)
class Isolation:
    """The mode in force, what protects the trainer, and what does not (with why)."""

    mode: str
    active: tuple[str, ...]
    missing: tuple[str, ...]


class _Unavailable(Exception):
    pass


_CACHE: dict[str, Isolation] = {}
_CACHE_LOCK = threading.Lock()
_SLOT_LOCK = threading.Lock()
_FREE_SLOTS: set[int] = set(range(MAX_SLOTS))


def get(request: str, runner: Callable[[str, str], Any]) -> Isolation:
    """The isolation for `request` ("auto" or a mode), probing once per process.

    `runner(mode, program)` runs `program` in the sandbox under `mode` and returns its Result.
    """
    if request not in ("auto", "root", "userns", "plain"):
        raise ValueError(f"isolation must be auto, root, userns or plain, got {request!r}")
    with _CACHE_LOCK:
        if request in _CACHE:
            return _CACHE[request]
        modes = (
            [request]
            if request != "auto"
            else (["root"] if os.geteuid() == 0 else []) + ["userns", "plain"]
        )
        reasons = []
        for mode in modes:
            try:
                out = _probe(mode, runner)
                break
            except _Unavailable as e:
                reasons.append(f"{mode} unavailable ({e})")
        else:
            raise ValueError(
                f"code sandbox: isolation {request!r} does not work here: {'; '.join(reasons)}"
            )
        log.info("code sandbox: isolation %r; active: %s", out.mode, "; ".join(out.active))
        if out.missing:
            why = f" ({'; '.join(reasons)})" if reasons else ""
            log.warning("code sandbox: NOT protected: %s%s", "; ".join(out.missing), why)
        _CACHE[request] = out
        return out


def _probe(mode: str, runner: Callable[[str, str], Any]) -> Isolation:
    token = os.urandom(8).hex()
    canary_dir = tempfile.mkdtemp(prefix="r1jax-canary-")
    mark = os.path.join(tempfile.gettempdir(), f"r1jax-probe-{token}")
    listener = socket.socket()
    try:
        os.chmod(canary_dir, 0o755)
        canary = os.path.join(canary_dir, "canary")
        with open(canary, "w", encoding="utf-8") as f:
            f.write(token)
        os.chmod(canary, 0o644)
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        res = runner(mode, _PROBE.format(canary=canary, mark=mark, port=port))
        if res.status != "ok":
            raise _Unavailable(f"{res.status}: {(res.detail or res.stderr)[-300:]}")
        facts = json.loads(res.stdout)
        tmp_leak = os.path.exists(mark)
    finally:
        listener.close()
        shutil.rmtree(canary_dir, ignore_errors=True)
        if os.path.exists(mark):
            os.remove(mark)
    checks = {
        "own PID namespace (every process dies with the candidate)": facts["pid"] == 2,
        "network blocked (new network namespace, no interface up)": not facts["net"],
        "files hidden (chroot jail of read-only system/Python binds on a size-capped tmpfs)": (
            facts["canary"] is None and not tmp_leak
        ),
    }
    own_uid = facts["uid"] >= uid_for(0)
    if mode == "root":
        checks["runs as an unprivileged uid of its own (RLIMIT_NPROC per run)"] = own_uid
    elif mode == "userns":
        checks["user namespace (uid 1000 inside, no capabilities after exec)"] = (
            facts["uid"] == 1000
        )
    if mode != "plain" and not all(checks.values()):
        failed = [k for k, ok in checks.items() if not ok]
        raise _Unavailable(f"probe shows these do not hold: {failed}")
    active = list(ALWAYS) + [k for k, ok in checks.items() if ok]
    missing = [k for k, ok in checks.items() if not ok]
    if mode == "plain":
        missing.append(
            "disk space (files in the run directory are capped one by one, not in total)"
        )
    if os.geteuid() == 0 and mode != "root":  # the kernel exempts (namespaced) host uid 0
        missing.append(
            "RLIMIT_NPROC (not enforced for uid 0: a fork bomb is bounded by the wall limit only)"
        )
    else:
        active.append(
            "RLIMIT_NPROC"
            + ("" if mode == "root" else " (counts all processes of the trainer's uid)")
        )
    return Isolation(mode, tuple(active), tuple(missing))


def child_config(mode: str, limits: Any, host: str, slot: int | None) -> dict:
    """The launcher's config for one run (see child.py); makes the jail mount point."""
    ns = mode in ("root", "userns")
    uid = uid_for(slot) if mode == "root" else USERNS_UID if mode == "userns" else None
    jail = os.path.join(host, "jail") if ns else ""
    if jail:
        os.mkdir(jail)
    rl = {
        "CPU": (limits.cpu_s, limits.cpu_s + 1),
        "AS": (limits.memory_bytes,) * 2,
        "NOFILE": (limits.open_files,) * 2,
        "FSIZE": (limits.file_bytes,) * 2,
        "NPROC": (limits.processes,) * 2,
        "CORE": (0, 0),
    }
    return dict(mode=mode, ns=ns, uid=uid, gid=uid, jail=jail, ro=ro_paths(), dev=list(_DEVS), tmpfs_bytes=limits.tmpfs_bytes, rlimits=rl)  # fmt: skip


def python() -> str:
    """The interpreter candidates run under: the trainer's own, symlinks resolved."""
    return os.path.realpath(sys.executable)


def ro_paths() -> list[str]:
    """What the jail shows, read-only: the system directories and this Python's installation."""
    paths = ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"]
    for p in (sys.base_prefix, sys.base_exec_prefix, os.path.dirname(python())):
        p = os.path.realpath(p)
        if not any(p == q or p.startswith(q + "/") for q in paths):
            paths.append(p)
    return [p for p in paths if os.path.lexists(p)]


def uid_for(slot: int) -> int:
    """A uid no real account uses, distinct per trainer process (by pid) and per concurrent run."""
    return 1_700_000_000 + MAX_SLOTS * (os.getpid() % 1_000_000) + slot


def acquire_slot() -> int:
    with _SLOT_LOCK:
        if not _FREE_SLOTS:
            raise RuntimeError(f"more than {MAX_SLOTS} concurrent sandbox runs in one process")
        slot = min(_FREE_SLOTS)
        _FREE_SLOTS.remove(slot)
        return slot


def release_slot(slot: int) -> None:
    with _SLOT_LOCK:
        _FREE_SLOTS.add(slot)


def pids_of_uid(uid: int) -> list[int]:
    """Processes whose real uid is `uid` (from /proc; used to wait for a killed run to vanish)."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/status", encoding="utf-8") as f:
                    for line in f:
                        if line.startswith("Uid:"):
                            if int(line.split()[1]) == uid:
                                out.append(int(name))
                            break
            except OSError:
                pass
    return out


def wait_uid_gone(uid: int, timeout_s: float) -> None:
    """After a kill: waits until the kernel has removed every process of the run's uid."""
    end = time.monotonic() + timeout_s
    while pids_of_uid(uid):
        if time.monotonic() > end:
            log.error(
                "code sandbox: processes of uid %d still alive %.1fs after the kill", uid, timeout_s
            )
            return
        time.sleep(0.01)


def remove_tree(path: str) -> None:
    """Deletes a run's directory even if the candidate removed permissions inside it."""

    def fix(func, p, _exc):
        os.chmod(os.path.dirname(p), 0o700)
        func(p)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=fix)
    else:
        shutil.rmtree(path, onerror=fix)
