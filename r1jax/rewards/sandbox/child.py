"""The child side of the code sandbox: isolate this process, then exec the candidate program.

The trainer starts this file as `python -I -S -B child.py CONFIG_HEX` (standard library
only, no r1jax import), in a new session, with stdin/stdout/stderr set and one status pipe
(`status_fd`) as its only other descriptor. Doing the set-up here, rather than in a `preexec_fn`,
keeps the trainer's spawn thread-safe (JAX runs many threads) and keeps set-up errors apart from the
candidate's own failures: set-up errors and the candidate's final wait status go through the status
pipe, which the candidate never holds (close-on-exec), so it cannot forge either.

With namespaces (config "ns"): unshare mount, PID, network, IPC and UTS namespaces (and a user
namespace in "userns" mode), fork, and let the child become PID 1 of the new PID namespace, so that
every process the candidate starts dies when it does. The child builds a jail: a size-capped tmpfs
root with read-only bind mounts of the system and Python directories only, a private /tmp, and the
candidate's files in /work; then chroot, resource limits, drop to an unprivileged uid, no_new_privs,
a parent-death signal, exec. The outer process waits and reports the wait status.

Without namespaces ("plain"): this process becomes the candidate. Resource limits, no_new_privs,
then the self-confinement the trainer's probe found working here (confine.py: Landlock, a seccomp
filter), the drop to the run's own uid when the trainer is root, a parent-death signal, exec. The
trainer reads the candidate's exit status from its own wait.
"""

from __future__ import annotations

import ctypes
import marshal
import os
import resource
import signal
import sys

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 1, 4, 38
SETUP_FAILED = 125  # exit code of a failed set-up (the status pipe says which step)

_LIBC = ctypes.CDLL(None, use_errno=True)


def _call(what: str, ret: int) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(src: str | None, dst: str, fstype: str | None, flags: int, data: str | None = None):
    enc = lambda s: None if s is None else s.encode()
    _call(
        f"mount {dst}",
        _LIBC.mount(enc(src), enc(dst), enc(fstype), ctypes.c_ulong(flags), enc(data)),
    )


def _prctl(option: int, arg: int) -> None:
    _call("prctl", _LIBC.prctl(option, ctypes.c_ulong(arg), 0, 0, 0))


def _locked_flags(path: str) -> int:
    """Flags a remount must keep (a user namespace may not clear them)."""
    f = os.statvfs(path).f_flag
    out = 0
    for st, ms in ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC)):
        if f & st:
            out |= ms
    return out


def _mounts_under(root: str) -> list[str]:
    """Mount points strictly below `root`, parents before children (from /proc/self/mountinfo)."""
    out = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            mp = line.split()[4].encode().decode("unicode_escape")
            if mp.startswith(root + "/"):
                out.append(mp)
    return sorted(set(out), key=len)


def _build_jail(cfg: dict) -> None:
    """Private tmpfs root with read-only binds of `ro` and `dev` paths; candidate files in /work."""
    jail, uid, gid = cfg["jail"], cfg["uid"], cfg["gid"]
    os.umask(0o022)
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing below propagates back to the host
    _mount(
        "tmpfs",
        jail,
        "tmpfs",
        MS_NOSUID | MS_NODEV,
        f"size={cfg['tmpfs_bytes']},nr_inodes=4096,mode=755",
    )
    for src in cfg["ro"] + cfg["dev"]:
        dst = jail + src
        if os.path.islink(src):
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if not os.path.lexists(dst):
                os.symlink(os.readlink(src), dst)
            continue
        if not os.path.exists(src) or os.path.lexists(dst):
            continue
        if os.path.isdir(src):
            os.makedirs(dst, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            open(dst, "wb").close()
        _mount(src, dst, None, MS_BIND | MS_REC)
    devs = {jail + d for d in cfg["dev"]}
    for mp in _mounts_under(jail):  # every bind (and submount) read-only, never set-uid
        nodev = 0 if mp in devs else MS_NODEV
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | nodev | _locked_flags(mp)
        _mount(None, mp, None, flags)
    for d, mode in (("/work", 0o700), ("/tmp", 0o1777)):
        os.mkdir(jail + d)
        os.chmod(jail + d, mode)
        os.chown(jail + d, uid, gid)
    for name in os.listdir(cfg["indir"]):
        with open(os.path.join(cfg["indir"], name), "rb") as f:
            data = f.read()
        dst = os.path.join(jail, "work", name)
        with open(dst, "wb") as f:
            f.write(data)
        os.chown(dst, uid, gid)
    os.chroot(jail)
    os.chdir("/work")


def _limit(cfg: dict) -> None:
    for name, value in cfg["rlimits"].items():
        res = getattr(resource, "RLIMIT_" + name)
        _, hard = resource.getrlimit(res)
        soft, new_hard = value
        if hard != resource.RLIM_INFINITY:
            soft, new_hard = min(soft, hard), min(new_hard, hard)
        resource.setrlimit(res, (soft, new_hard))


def _candidate(cfg: dict) -> None:
    """Becomes the candidate: limits, confinement (plain mode), uid drop, exec. Never returns.

    A failed step is reported as "setup [step] ...", so that the trainer can tell which plain-mode
    layer this machine refuses (and never runs the candidate without it unknowingly).
    """
    step = "limits"
    try:
        _limit(cfg)
        argv, env, plan = cfg["argv"], cfg["env"], cfg["plan"]
        _prctl(PR_SET_NO_NEW_PRIVS, 1)  # before Landlock and seccomp, which need it
        if not cfg["ns"]:
            import confine  # noqa: PLC0415 - plain mode only (next to this file, see __main__)

            if plan["via_fd"]:  # the run's uid cannot search the path to the interpreter
                fd = os.open(plan["via_fd"], os.O_PATH | os.O_DIRECTORY)
                os.set_inheritable(fd, True)
                root = f"/proc/self/fd/{fd}"
                argv = [root + argv[0][len(plan["via_fd"]) :], *argv[1:]]
                env = dict(env, LD_LIBRARY_PATH=root + "/lib")  # for an absolute RUNPATH
            if plan["landlock"]:
                step = "landlock"
                confine.landlock(plan["landlock"], cfg["ro"], cfg["write"], cfg["dev"])
            if plan["seccomp"]:
                step = "seccomp"
                confine.seccomp(plan["seccomp"], plan["limit_signals"])
        if cfg["mode"] == "root" or plan["drop"]:
            step = "uid drop"
            os.setgroups([])
            os.setresgid(cfg["gid"], cfg["gid"], cfg["gid"])
            os.setresuid(cfg["uid"], cfg["uid"], cfg["uid"])
            if plan["via_fd"]:
                _prctl(PR_SET_DUMPABLE, 1)  # the uid change cleared it: /proc/self/fd is ours again
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # after the uid change, which clears it
        if not cfg["ns"] and os.getppid() != cfg["ppid"]:  # died before the signal was re-armed
            raise RuntimeError("trainer exited during the sandbox set-up")
        step = "uid drop" if plan["drop"] else "exec"  # a dropped uid may be refused the exec
        os.execve(argv[0], argv, env)
    except BaseException as e:  # noqa: BLE001 - any failure here is a set-up failure
        _fail(cfg["status_fd"], e, step)


def _init(cfg: dict) -> None:
    """PID 1 of the new PID namespace: builds the jail, runs the candidate, reports its status.

    The candidate must not be PID 1 itself: the kernel ignores signals such as SIGXCPU (the CPU
    limit) that reach a namespace's init without a handler. When this process exits, the kernel
    kills every other process of the namespace.
    """
    fd = cfg["status_fd"]
    try:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if cfg["jail"]:
            _build_jail(cfg)
        pid = os.fork()
        if pid == 0:
            _candidate(cfg)
    except BaseException as e:  # noqa: BLE001
        _fail(fd, e)
    _report(fd, os.waitpid(pid, 0)[1])
    os._exit(0)


def _report(fd: int, status: int) -> None:
    if os.WIFSIGNALED(status):
        os.write(fd, f"signal {os.WTERMSIG(status)}\n".encode())
    else:
        os.write(fd, f"exit {os.WEXITSTATUS(status)}\n".encode())


def _fail(fd: int, e: BaseException, step: str = "launcher") -> None:
    try:
        os.write(fd, f"setup [{step}] {type(e).__name__}: {e}".encode()[:2000])
    finally:
        os._exit(SETUP_FAILED)


def _write_map(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii") as f:
        f.write(text)


def main(cfg: dict) -> None:
    fd = cfg["status_fd"]
    try:
        os.set_inheritable(fd, False)  # close-on-exec: the candidate never holds the status pipe
        os.closerange(3, fd)  # belt and braces: subprocess's close_fds already did this
        os.closerange(fd + 1, 1 << 20)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the trainer dies -> so does the sandbox
        if os.getppid() != cfg["ppid"]:
            raise RuntimeError("trainer exited before the sandbox started")
        if not cfg["ns"]:
            _candidate(cfg)
        flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
        if cfg["mode"] == "userns":
            ruid, rgid = os.getuid(), os.getgid()
            _call("unshare", _LIBC.unshare(flags | CLONE_NEWUSER))
            _write_map("/proc/self/setgroups", "deny")
            _write_map("/proc/self/uid_map", f"{cfg['uid']} {ruid} 1")
            _write_map("/proc/self/gid_map", f"{cfg['gid']} {rgid} 1")
        else:
            _call("unshare", _LIBC.unshare(flags))
        pid = os.fork()
        if pid == 0:
            os.setpgid(0, 0)
            _init(cfg)
        os.setpgid(pid, pid)  # the trainer kills this group on timeout; this process survives
        os.write(fd, f"pid {pid}\n".encode())  # to reap init and report, so no zombie is left
    except BaseException as e:  # noqa: BLE001
        _fail(fd, e)
    _, status = os.waitpid(pid, 0)  # returns once every process of the PID namespace is gone
    if status != 0:  # init itself failed (it reports the candidate's status when it succeeds)
        os.write(fd, b"launcher ")
        _report(fd, status)
    os._exit(0)


if __name__ == "__main__":
    sys.path[:0] = [os.path.dirname(os.path.abspath(__file__))]  # confine.py (-I leaves it out)
    main(marshal.loads(bytes.fromhex(sys.argv[1])))  # from the trainer; json would cost 25 ms
