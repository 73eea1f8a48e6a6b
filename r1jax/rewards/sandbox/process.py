"""The supervisor's side of one child process group: bounded reads of its output, and kills.

Output is read without blocking and capped, so a program that floods stdout cannot stall or exhaust
the trainer; a kill takes the whole process group (and, with a PID namespace, its init) so nothing
is left behind.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time


def collect(proc: subprocess.Popen, deadline: float, cap: int) -> tuple[bytes, bytes, str]:
    """Reads stdout/stderr until both close; returns early with "timeout" or "output_limit"."""
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
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return bytes(bufs["out"]), bytes(bufs["err"]), "timeout"
    return bytes(bufs["out"]), bytes(bufs["err"]), ""


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
