"""The supervisor's side of one child process group: bounded reads of its output, and kills.

Output is read without blocking and capped, so a program that floods stdout cannot stall or exhaust
the trainer; a kill takes the whole process group (and, with a PID namespace, its init) so nothing
is left behind.
"""

from __future__ import annotations

import logging
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time

log = logging.getLogger("r1jax.rewards.sandbox.runner")


def collect(proc: subprocess.Popen, deadline: float, cap: int) -> tuple[bytes, bytes, str]:
    """Reads stdout/stderr until both close and `proc` exits (left unreaped, see `exited`); returns
    early with "timeout" or "output_limit"."""
    bufs = {"out": bytearray(), "err": bytearray()}
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ, "out")
        sel.register(proc.stderr, selectors.EVENT_READ, "err")
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                return bytes(bufs["out"]), bytes(bufs["err"]), "timeout"
            for key, _ in sel.select(left):
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                bufs[key.data] += chunk
                if len(bufs["out"]) + len(bufs["err"]) > cap:
                    return bytes(bufs["out"][:cap]), bytes(bufs["err"][:cap]), "output_limit"
    if not exited(proc, deadline):
        return bytes(bufs["out"]), bytes(bufs["err"]), "timeout"
    return bytes(bufs["out"]), bytes(bufs["err"]), ""


def exited(proc: subprocess.Popen, deadline: float) -> bool:
    """Waits until `proc` has exited, WITHOUT reaping it: while it is a zombie its pid (and so its
    process-group id) cannot be reused, so killing the group afterwards hits only its own processes.
    """
    delay = 0.0005
    while os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(delay, left))
        delay = min(2 * delay, 0.02)
    return True


def read_nb(fd: int, buf: bytearray) -> None:
    """Appends what the status pipe holds now (never blocks: init may still hold a write end)."""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            return
        if not chunk:
            return
        buf += chunk


def init_pid(status: bytearray) -> int | None:
    for line in status.decode("utf-8", "replace").splitlines():
        if line.startswith("pid ") and line[4:].isdigit():
            return int(line[4:])
    return None


def killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill(proc: subprocess.Popen, status_fd: int, status: bytearray) -> None:
    """SIGKILLs the candidate's process group, then the launcher's if it does not exit by itself.

    With namespaces the candidate's group is led by the namespace's init (the launcher reports its
    pid); the launcher outlives the kill to reap init, so no zombie is left behind, and init's death
    makes the kernel kill every process of the namespace, even ones that left the group. Without
    namespaces the candidate is the launcher itself, leader of the session's group.
    """
    read_nb(status_fd, status)
    init = init_pid(status)
    killpg(init if init is not None else proc.pid)
    try:
        proc.wait(timeout=2.0)
    except subprocess.TimeoutExpired:
        killpg(proc.pid)
        proc.wait()
    read_nb(status_fd, status)
    if init is None and init_pid(status) is not None:  # forked just as we looked
        killpg(init_pid(status))


def wait_group_dead(pgid: int, timeout_s: float) -> None:
    """After the group's SIGKILL: waits (briefly) until no member is alive, so a run returns only
    when every process it started is dead. Dead members stay zombies until init reaps them (a
    slow init may take a second). The first check is one syscall: nothing left, nothing to scan."""
    try:
        os.killpg(pgid, 0)  # signal 0 only: harmless even if the id was reused
    except (ProcessLookupError, PermissionError):
        return
    end = time.monotonic() + timeout_s
    while _alive_in_group(pgid):
        if time.monotonic() > end:
            log.error("code sandbox: process group %d alive %.1fs after the kill", pgid, timeout_s)
            return
        time.sleep(0.005)


def _alive_in_group(pgid: int) -> bool:
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", encoding="utf-8", errors="replace") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] not in "ZX":
                return True
    return False


def drain(proc: subprocess.Popen, deadline: float) -> None:
    """Reads the pipes to EOF (discarding): EOF means every process holding them has died."""
    for pipe in (proc.stdout, proc.stderr):
        os.set_blocking(pipe.fileno(), False)
        while time.monotonic() < deadline:
            try:
                if not os.read(pipe.fileno(), 1 << 16):
                    break
            except BlockingIOError:
                time.sleep(0.01)


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
