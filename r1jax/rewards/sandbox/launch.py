"""What the launcher (child.py) gets for one run: its config, the interpreter, the paths it may
see, and the uid it runs as. A root trainer gives every concurrent run a uid of its own (a "slot"),
so that RLIMIT_NPROC counts that run alone and no run can signal another or own the trainer's files.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import sys
import threading
from typing import Any

USERNS_UID = 1000  # the candidate's uid inside a user namespace
MAX_SLOTS = 256  # concurrent runs per trainer process with a uid per run (root trainer)
_DEVS = ("/dev/null", "/dev/zero", "/dev/random", "/dev/urandom")
_SLOT_LOCK = threading.Lock()
_FREE_SLOTS: set[int] = set(range(MAX_SLOTS))


def check_tmp_root(tmp_root: str, uid_per_run: bool) -> None:
    """Raises a one-line ValueError if runs with a uid of their own could not reach `tmp_root`."""
    blocked = blocked_parent(os.path.join(tmp_root, "x")) if uid_per_run else None
    if blocked:
        raise ValueError(
            f"code sandbox: tmp_root {tmp_root!r} is out of reach of the per-run uids of plain "
            f"mode ({blocked!r} is not searchable by others): pass a tmp_root below a "
            "world-searchable directory, e.g. /tmp"
        )


def blocked_parent(path: str) -> str | None:
    """The first directory above `path` that a uid of no group cannot search (None: all can)."""
    p = os.path.realpath(path)
    while p != "/":
        p = os.path.dirname(p)
        if not os.stat(p).st_mode & stat.S_IXOTH:
            return p
    return None


def child_config(mode: str, limits: Any, host: str, slot: int | None, plan: Any) -> dict:
    """The launcher's config for one run (see child.py). Makes the jail mount point, or in plain
    mode the run's TMPDIR, and with a uid per run hands it the run's folders (host/in, host/tmp)."""
    ns = mode in ("root", "userns")
    uid = uid_for(slot) if slot is not None else USERNS_UID if mode == "userns" else None
    jail = os.path.join(host, "jail") if ns else ""
    write = [os.path.join(host, "in"), os.path.join(host, "tmp")]  # plain mode's Landlock rules
    if jail:
        os.mkdir(jail)
    elif mode == "plain":
        os.mkdir(write[1])
        if uid is not None:
            os.chmod(host, 0o711)
            names = [os.path.join(write[0], n) for n in os.listdir(write[0])]
            for path in (*write, *names):
                os.chown(path, uid, uid)
    rl = {
        "CPU": (limits.cpu_s, limits.cpu_s + 1),
        "AS": (limits.memory_bytes,) * 2,
        "NOFILE": (limits.open_files,) * 2,
        "FSIZE": (limits.file_bytes,) * 2,
        "NPROC": (limits.processes,) * 2,
        "CORE": (0, 0),
    }
    return dict(mode=mode, ns=ns, uid=uid, gid=uid, jail=jail, ro=ro_paths(), dev=list(_DEVS), write=write, tmpfs_bytes=limits.tmpfs_bytes, rlimits=rl, plan=dataclasses.asdict(plan))  # fmt: skip


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
