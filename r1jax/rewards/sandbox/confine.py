"""What an unprivileged process can put on itself when namespaces are off: Landlock and seccomp.

"plain" mode (see isolation.py) has no namespaces, so the launcher (child.py) confines itself just
before it execs the candidate, and the candidate starts confined with no way to undo it:
- Landlock (Linux 5.13+, ABI probed here): file access only below the allowed paths (read and exec
  of the system/Python dirs, read/write of the run's own folder and a few devices); from ABI 4 no
  TCP bind/connect; from ABI 6 no signal to, and no abstract unix socket of, any process outside
  the candidate's own Landlock domain (the trainer, other runs);
- a seccomp filter (classic BPF, x86_64 and aarch64): socket() refused (socketpair still works), no
  ptrace / process_vm_*, no new namespaces or mounts, no io_uring (it would bypass this filter), no
  SysV IPC (shared memory, semaphores, queues: reachable by guessed id), no keyrings, bpf or perf; setsid/setpgid refused, so every process the candidate starts stays in its
  process group, which the trainer kills after the run. Where Landlock cannot scope signals,
  kill() is limited to the candidate's own process group (not its children by pid).

Both sides import this file: the trainer asks what the kernel offers (`landlock_abi`,
`seccomp_arch`); the launcher applies it (`landlock`, `seccomp`). Standard library only.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import struct

_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.syscall.restype = ctypes.c_long

# Landlock (include/uapi/linux/landlock.h); the syscall numbers are the same on every architecture
# here (444-446, the unified table).
_CREATE, _ADD_RULE, _RESTRICT = 444, 445, 446
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1, 2, 4, 8
FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_FS_FILE_ONLY = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV
NET_BIND_TCP, NET_CONNECT_TCP = 1, 2
SCOPE_ABSTRACT_UNIX, SCOPE_SIGNAL = 1, 2
PR_SET_NO_NEW_PRIVS, PR_GET_SECCOMP, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 21, 22, 2

# seccomp: audit arch and syscall numbers (x86_64: asm/unistd_64.h; aarch64: asm-generic/unistd.h;
# tests/test_sandbox_confine.py checks both tables against the headers where they are installed).
_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
# fmt: off
_NAMES = (
    "socket ptrace process_vm_readv process_vm_writev io_uring_setup io_uring_enter io_uring_register "
    "bpf perf_event_open userfaultfd keyctl add_key request_key unshare setns mount umount2 "
    "pivot_root chroot open_by_handle_at kcmp fanotify_init open_tree move_mount fsopen fsconfig "
    "fsmount fspick mount_setattr pidfd_getfd kexec_load init_module finit_module acct swapon reboot "
    "quotactl shmget shmat shmctl shmdt semget semop semctl semtimedop msgget msgsnd msgrcv msgctl "
    "setsid setpgid clone clone3 kill tkill tgkill rt_sigqueueinfo rt_tgsigqueueinfo "
    "pidfd_send_signal"
).split()
SYSCALLS = {
    "x86_64": dict(zip(_NAMES, (
        41, 101, 310, 311, 425, 426, 427, 321, 298, 323, 250, 248, 249, 272, 308, 165, 166, 155, 161,
        304, 312, 300, 428, 429, 430, 431, 432, 433, 442, 438, 246, 175, 313, 163, 167, 169, 179, 29,
        30, 31, 67, 64, 65, 66, 220, 68, 69, 70, 71, 112, 109, 56, 435, 62, 200, 234, 129, 297, 424))),
    "aarch64": dict(zip(_NAMES, (
        198, 117, 270, 271, 425, 426, 427, 280, 241, 282, 219, 217, 218, 97, 268, 40, 39, 41, 51, 265,
        272, 262, 428, 429, 430, 431, 432, 433, 442, 438, 104, 105, 273, 89, 224, 142, 60, 194, 196,
        195, 197, 190, 193, 191, 192, 186, 189, 188, 187, 157, 154, 220, 435, 129, 130, 131, 138, 240,
        424))),
}
# fmt: on
DENIED = tuple(n for n in _NAMES[: _NAMES.index("clone")])  # always EPERM
_CLONE_NEW = (
    0x00020000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x02000000
)
_ALLOW, _ERRNO = 0x7FFF0000, 0x00050000


def landlock_abi() -> int:
    """The kernel's Landlock ABI version (0: no Landlock: not built, not enabled, or too old)."""
    ret = _LIBC.syscall(_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(0, int(ret))


def seccomp_arch() -> str | None:
    """This machine's architecture if the kernel takes seccomp filters and a table exists for it."""
    arch = os.uname().machine
    if arch not in SYSCALLS or _prctl(PR_GET_SECCOMP, 0) < 0:
        return None
    return arch


def _syscall(what: str, *args) -> int:
    ret = _LIBC.syscall(*args)
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return int(ret)


def fs_rights(abi: int) -> int:
    """Every filesystem right Landlock ABI `abi` can deny."""
    rights = (1 << 13) - 1
    for since, bit in ((2, FS_REFER), (3, FS_TRUNCATE), (5, FS_IOCTL_DEV)):
        if abi >= since:
            rights |= bit
    return rights


def landlock(abi: int, read: list[str], write: list[str], devices: list[str]) -> None:
    """Restricts this process (and what it execs) to: read+exec below `read`, everything below
    `write`, read/write of the `devices`; no TCP (ABI >= 4); signals and abstract unix sockets only
    inside its own domain (ABI >= 6). Needs no_new_privs (or CAP_SYS_ADMIN). Missing paths are
    skipped; any other failure raises (the caller must not exec an unconfined candidate)."""
    handled = fs_rights(abi)
    net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX | SCOPE_SIGNAL if abi >= 6 else 0
    attr = struct.pack("=QQQ", handled, net, scoped)[: 8 if abi < 4 else 16 if abi < 6 else 24]
    ruleset = _syscall("landlock_create_ruleset", _CREATE, attr, ctypes.c_size_t(len(attr)), 0)
    rules = [(p, FS_EXECUTE | FS_READ_FILE | FS_READ_DIR) for p in read]
    rules += [(p, FS_READ_FILE | FS_WRITE_FILE | FS_TRUNCATE | FS_IOCTL_DEV) for p in devices]
    rules += [(p, handled) for p in write]
    try:
        for path, rights in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                if not stat.S_ISDIR(os.fstat(fd).st_mode):  # fstat works on O_PATH
                    rights &= _FS_FILE_ONLY
                rule = struct.pack("=Qi", rights & handled, fd)
                _syscall(f"landlock_add_rule {path}", _ADD_RULE, ruleset, 1, rule, 0)
            finally:
                os.close(fd)
        _syscall("landlock_restrict_self", _RESTRICT, ruleset, 0)
    finally:
        os.close(ruleset)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_program(arch: str, own_pid: int, limit_signals: bool) -> bytes:
    """The filter as packed `struct sock_filter`s (see the module docstring for what it refuses).

    limit_signals: kill/rt_sigqueueinfo only to pid 0, `own_pid` or its group (-own_pid),
    tgkill/rt_tgsigqueueinfo only inside `own_pid`; tkill and pidfd_send_signal refused.
    """
    nr = SYSCALLS[arch]
    deny_sig = ("tkill", "pidfd_send_signal") if limit_signals else ()
    prog: list[tuple[int, object, object, int]] = [(0x20, 0, 0, 4)]  # A = seccomp_data.arch
    prog += [(0x15, 0, "deny", _ARCH[arch]), (0x20, 0, 0, 0)]  # wrong arch -> deny; A = nr
    if arch == "x86_64":
        prog.append((0x35, "deny", 0, 0x40000000))  # the x32 ABI's numbers
    prog += [(0x15, "deny", 0, nr[n]) for n in DENIED + deny_sig]
    prog += [(0x15, "enosys", 0, nr["clone3"]), (0x15, "clone", 0, nr["clone"])]
    if limit_signals:
        prog += [(0x15, "pid", 0, nr[n]) for n in ("kill", "rt_sigqueueinfo")]
        prog += [(0x15, "tgid", 0, nr[n]) for n in ("tgkill", "rt_tgsigqueueinfo")]
    prog.append((0x06, 0, 0, _ALLOW))
    labels = {"clone": len(prog)}
    prog += [(0x20, 0, 0, 16), (0x45, "deny", "allow", _CLONE_NEW)]  # A = flags: new namespaces?
    if limit_signals:
        labels["pid"] = len(prog)
        prog += [(0x20, 0, 0, 16)] + [
            (0x15, "allow", 0, v & 0xFFFFFFFF) for v in (0, own_pid, -own_pid)
        ]
        prog.append((0x05, 0, 0, "deny"))  # ja
        labels["tgid"] = len(prog)
        prog += [(0x20, 0, 0, 16), (0x15, "allow", "deny", own_pid)]
    labels.update(allow=len(prog), deny=len(prog) + 1, enosys=len(prog) + 2)
    prog += [(0x06, 0, 0, _ALLOW), (0x06, 0, 0, _ERRNO | errno.EPERM)]
    prog.append((0x06, 0, 0, _ERRNO | errno.ENOSYS))  # clone3: glibc falls back to clone

    def rel(i: int, target: object) -> int:
        return target if isinstance(target, int) else labels[target] - i - 1

    out = b""
    for i, (code, jt, jf, k) in enumerate(prog):
        out += struct.pack("=HBBI", code, rel(i, jt), rel(i, jf), rel(i, k) if code == 0x05 else k)
    return out


def seccomp(arch: str, limit_signals: bool) -> None:
    """Installs `seccomp_program` on this process (needs no_new_privs); raises on failure."""
    prog = seccomp_program(arch, os.getpid(), limit_signals)
    buf = ctypes.create_string_buffer(prog, len(prog))
    fprog = _SockFprog(len(prog) // 8, ctypes.addressof(buf))
    if _prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp filter: {os.strerror(err)}")


def _prctl(option: int, arg2: int, arg3: int = 0) -> int:
    """prctl with every argument as unsigned long (the kernel checks unused ones are 0)."""
    ulong = ctypes.c_ulong
    return _LIBC.prctl(ctypes.c_int(option), ulong(arg2), ulong(arg3), ulong(0), ulong(0))


def no_new_privs() -> None:
    if _prctl(PR_SET_NO_NEW_PRIVS, 1) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"no_new_privs: {os.strerror(err)}")
