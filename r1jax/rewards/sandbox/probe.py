"""The probe that decides which protections count as active: a program run under the sandbox that
tries each escape, and the trainer's reading of what it managed.

A protection is listed as active only if the probe shows it holds on this machine, never because
the code meant to set it up. The probe (as the trainer's uid, or the run's uid after a drop) tries
to: read a world-readable canary file outside its folder; write a file into the host's /tmp and
into the canary's folder; connect to a TCP port, send to a UDP port and connect to a unix socket
the trainer opens; in plain mode also signal the trainer (signal 0: the permission check without a
signal) and move a child out of its process group with setsid().
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from typing import Any

PROGRAM = """\
import json, os, socket
f = {{"uid": os.getuid(), "pid": os.getpid()}}
def works(fn):
    try:
        fn()
        return True
    except OSError:
        return False
def read():
    with open({canary!r}, encoding="utf-8") as fh:
        f["canary"] = fh.read()
f["canary"] = None
works(read)
for mark in {marks!r}:
    works(lambda: open(mark, "w").close())
f["own"] = works(lambda: open("own", "w").close())
f["tcp"] = works(lambda: socket.create_connection(("127.0.0.1", {port}), timeout=1).close())
def udp():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"probe", ("127.0.0.1", {udp_port}))
works(udp)
def unix():
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(1)
        s.connect({unix!r})
f["unix"] = works(unix)
if {signals}:
    f["signal"] = works(lambda: os.kill({trainer}, 0)) or works(lambda: os.killpg({group}, 0))
    def setsid():
        pid = os.fork()
        if pid == 0:
            os._exit(0 if works(os.setsid) else 1)
        return os.waitpid(pid, 0)[1] == 0
    f["setsid"] = setsid()
print(json.dumps(f))
"""


class Unavailable(Exception):
    """The mode (or layer) does not work here; the message says why."""


def run(mode: str, runner: Callable[[str, str], Any]) -> dict:
    """Runs the probe under `mode` with `runner(mode, program) -> Result`; returns what it did.

    Keys: uid, pid, canary (its text or None), own (could write in its folder), leaked (wrote a
    file outside), tcp, udp, unix (reached the trainer's sockets), and in plain mode signal (could
    signal the trainer) and setsid (a child left the process group).
    """
    token = os.urandom(8).hex()
    canary_dir = tempfile.mkdtemp(prefix="r1jax-canary-")
    marks = [
        os.path.join(tempfile.gettempdir(), f"r1jax-probe-{token}"),
        os.path.join(canary_dir, "mark"),
    ]
    unix_path = os.path.join(canary_dir, "sock")
    tcp, udp = socket.socket(), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    unix = socket.socket(socket.AF_UNIX)
    try:
        os.chmod(canary_dir, 0o777)  # a run with a dropped uid is held back by the sandbox only
        with open(os.path.join(canary_dir, "canary"), "w", encoding="utf-8") as f:
            f.write(token)
        os.chmod(os.path.join(canary_dir, "canary"), 0o644)
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(4)
        udp.bind(("127.0.0.1", 0))
        udp.setblocking(False)
        unix.bind(unix_path)
        os.chmod(unix_path, 0o777)
        unix.listen(4)
        program = PROGRAM.format(
            canary=os.path.join(canary_dir, "canary"), marks=marks, port=tcp.getsockname()[1],
            udp_port=udp.getsockname()[1], unix=unix_path, signals=mode == "plain",
            trainer=os.getpid(), group=os.getpgrp(),
        )  # fmt: skip
        res = runner(mode, program)
        if res.status != "ok":
            raise Unavailable(f"{res.status}: {(res.detail or res.stderr)[-300:]}")
        facts = json.loads(res.stdout)
        facts["leaked"] = any(os.path.exists(m) for m in marks)
        facts["canary"] = facts["canary"] == token
        try:
            facts["udp"] = udp.recv(64) == b"probe"
        except BlockingIOError:
            facts["udp"] = False
    finally:
        for s in (tcp, udp, unix):
            s.close()
        shutil.rmtree(canary_dir, ignore_errors=True)
        if os.path.exists(marks[0]):
            os.remove(marks[0])
    return facts


def namespace_checks(mode: str, facts: dict, own_uid: int) -> dict[str, bool]:
    """Protections of the "root" and "userns" modes, each with whether the probe shows it holds."""
    checks = {
        "own PID namespace (every process dies with the candidate)": facts["pid"] == 2,
        "network blocked (new network namespace, no interface up)": not (
            facts["tcp"] or facts["udp"] or facts["unix"]
        ),
        "files hidden (chroot jail of read-only system/Python binds on a size-capped tmpfs)": (
            not facts["canary"] and not facts["leaked"]
        ),
    }
    if mode == "root":
        checks["runs as an unprivileged uid of its own (RLIMIT_NPROC per run)"] = own_uid
    else:
        checks["user namespace (uid 1000 inside, no capabilities after exec)"] = (
            facts["uid"] == 1000
        )
    return checks


def plain_checks(facts: dict, plan: Any) -> tuple[list[str], list[str]]:
    """(active, missing) for plain mode: each protection with the layers that give it here."""
    ll, sc, drop = plan.landlock, plan.seccomp is not None, plan.drop
    out: tuple[list[str], list[str]] = ([], [])

    def check(ok: bool, active: str, missing: str) -> None:
        out[0 if ok else 1].append(active if ok else missing)

    how = [
        ll >= 6 and "Landlock signal scope",
        sc and plan.limit_signals and "seccomp: kill() only inside its own process group",
        drop and "a uid of its own",
    ]  # each also keeps it from other runs, which the probe does not try
    check(
        not facts["signal"],
        f"cannot signal the trainer ({', '.join(h for h in how if h)})",
        "cannot signal the trainer: NOT in force (needs Landlock ABI >= 6, i.e. Linux 6.12+, or "
        "seccomp, or a root trainer for the uid drop)",
    )
    check(
        not facts["leaked"] and facts["own"],
        f"writes confined to its run folder (Landlock ABI {ll})",
        "writes confined to its run folder: NOT in force (needs Landlock, Linux 5.13+)",
    )
    check(
        not facts["canary"],
        f"reads limited to the system/Python dirs and its folder (Landlock ABI {ll}; names "
        "outside stay visible)",
        "reads limited to the system/Python dirs: NOT in force (needs Landlock)",
    )
    reached = [k for k in ("tcp", "udp", "unix") if facts[k]]
    how = [sc and "seccomp: socket() refused", ll >= 4 and "Landlock: no TCP bind/connect"]
    check(
        not reached,
        f"network blocked ({', '.join(h for h in how if h)})",
        f"network blocked: NOT in force, reached: {', '.join(reached)} (needs seccomp; Landlock "
        "ABI >= 4 blocks TCP only)",
    )
    check(
        not facts["setsid"],
        "every process it starts dies with the run (seccomp: setsid/setpgid refused, its process "
        "group is killed after the run)",
        "a child that calls setsid() can outlive the run (needs seccomp)",
    )
    if drop:
        check(
            facts["uid"] != 0,
            "runs as an unprivileged uid of its own (RLIMIT_NPROC per run"
            + (
                "; interpreter reached through an inherited O_PATH descriptor"
                if plan.via_fd
                else ""
            )
            + ")",
            "runs as root (the uid drop failed): RLIMIT_NPROC is not enforced",
        )
    return out
