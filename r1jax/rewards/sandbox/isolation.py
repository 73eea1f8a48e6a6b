"""Which isolation the code sandbox can use on this machine, verified by a probe.

Modes, strongest first:
- "root": the trainer is root. Namespaces (PID, network, mount, IPC, UTS), a chroot jail, and a
  distinct unprivileged uid per concurrent run, so RLIMIT_NPROC counts that run's processes only and
  no run can signal another or own the trainer's files.
- "userns": not root, but unprivileged user namespaces work. The same namespaces and jail, inside a
  user namespace where the candidate is uid 1000 (the trainer's uid outside); exec drops every
  capability. RLIMIT_NPROC then counts all processes and threads of the trainer's uid.
- "plain": no namespaces (user namespaces off, e.g. Ubuntu 24.04's AppArmor default, or a container
  without CAP_SYS_ADMIN). The launcher confines itself before exec with what the kernel lets an
  unprivileged process use (confine.py): Landlock (files, TCP, signal and abstract-unix scopes by
  ABI), a seccomp filter, and, when the trainer is root, a uid of its own per run. A layer that
  the kernel lacks, or that fails to set up in the probe run, is left out with the reason
  (`Isolation.layers`, in the log's info line); the warning lists each protection then missing.

A mode, and each protection, counts only if a probe program run under it shows that it holds
(probe.py): it cannot read a world-readable canary file outside the sandbox, leave a file outside
its folder, reach a TCP, UDP or unix socket the trainer opens, or (plain mode) signal the trainer or
leave its process group; with namespaces it is PID 2 of its own PID namespace (PID 1 is the
launcher's init, see child.py).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from r1jax.rewards.sandbox import confine, probe
from r1jax.rewards.sandbox.launch import blocked_parent, python, uid_for

log = logging.getLogger("r1jax.rewards.sandbox.runner")

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
_NPROC_ROOT = "RLIMIT_NPROC (not enforced for uid 0: a fork bomb is bounded by the wall limit only)"
_PLAIN_GAPS = (
    "files hidden (no chroot jail: names and metadata outside its folder stay visible)",
    "own PID namespace (other processes stay visible by pid; their permissions and the scopes "
    "above apply)",
    "disk space (files in the run directory are capped one by one, not in total)",
)


@dataclasses.dataclass(frozen=True)
class Plan:
    """Plain mode's self-confinement (confine.py), as set up by the launcher for every run.

    landlock: the ABI used (0: none); seccomp: the filter's architecture (None: none);
    limit_signals: the filter confines kill() to the candidate's process group (only where Landlock
    cannot scope signals); drop: the trainer is root and each run gets a uid of its own; via_fd:
    the interpreter's prefix, reached through an inherited O_PATH descriptor because the run's uid
    cannot search the path to it (e.g. a pyenv Python under root's 0700 home), else "". The
    candidate's sys.executable is then /proc/self/fd/N/bin/...: a subprocess that closes its
    inherited descriptors (subprocess's default) cannot exec sys.executable.
    """

    landlock: int = 0
    seccomp: str | None = None
    limit_signals: bool = False
    drop: bool = False
    via_fd: str = ""


@dataclasses.dataclass(frozen=True)
class Isolation:
    """The mode in force, what protects the trainer, and what does not (with why).

    layers: plain mode's self-confinement in force and the layers left out, with why.
    """

    mode: str
    active: tuple[str, ...]
    missing: tuple[str, ...]
    layers: tuple[str, ...] = ()
    plan: Plan = Plan()


_CACHE: dict[tuple[str, int | None], Isolation] = {}
_CACHE_LOCK = threading.Lock()


def get(
    request: str, runner: Callable[[str, str, Plan], Any], landlock_max: int | None = None
) -> Isolation:
    """The isolation for `request` ("auto" or a mode), probing once per process.

    `runner(mode, program, plan)` runs `program` in the sandbox and returns its Result.
    landlock_max: use at most this Landlock ABI (None: the kernel's), to reproduce an older kernel.
    """
    if request not in ("auto", "root", "userns", "plain"):
        raise ValueError(f"isolation must be auto, root, userns or plain, got {request!r}")
    with _CACHE_LOCK:
        if (request, landlock_max) in _CACHE:
            return _CACHE[(request, landlock_max)]
        modes = (
            [request]
            if request != "auto"
            else (["root"] if os.geteuid() == 0 else []) + ["userns", "plain"]
        )
        reasons = []
        for mode in modes:
            try:
                if mode == "plain":
                    out = _plain(runner, landlock_max)
                else:
                    facts = probe.run(mode, functools.partial(_with_plan, runner, Plan()))
                    out = _namespaces(mode, facts)
                break
            except probe.Unavailable as e:
                reasons.append(f"{mode} unavailable ({e})")
        else:
            raise ValueError(
                f"code sandbox: isolation {request!r} does not work here: {'; '.join(reasons)}"
            )
        layers = f"; layers: {'; '.join(out.layers)}" if out.layers else ""
        log.info(
            "code sandbox: isolation %r%s; active: %s", out.mode, layers, "; ".join(out.active)
        )
        if out.missing:
            why = f" ({'; '.join(reasons)})" if reasons else ""
            log.warning("code sandbox: NOT protected: %s%s", "; ".join(out.missing), why)
        _CACHE[(request, landlock_max)] = out
        return out


def _namespaces(mode: str, facts: dict) -> Isolation:
    checks = probe.namespace_checks(mode, facts, facts["uid"] >= uid_for(0))
    if not all(checks.values()):
        failed = [k for k, ok in checks.items() if not ok]
        raise probe.Unavailable(f"probe shows these do not hold: {failed}")
    active = list(ALWAYS) + list(checks)
    missing = []
    if os.geteuid() == 0 and mode != "root":  # the kernel exempts (namespaced) host uid 0
        missing.append(_NPROC_ROOT)
    elif mode == "root":
        active.append("RLIMIT_NPROC")
    else:
        active.append("RLIMIT_NPROC (counts all processes of the trainer's uid)")
    return Isolation(mode, tuple(active), tuple(missing))


def _plain(runner: Callable[[str, str, Plan], Any], landlock_max: int | None) -> Isolation:
    """Probes plain mode with every layer the kernel offers, dropping one that fails to set up."""
    abi = confine.landlock_abi()
    ll = abi if landlock_max is None else min(abi, landlock_max)
    arch = confine.seccomp_arch()
    drop = os.geteuid() == 0
    prefix = os.path.realpath(sys.base_prefix)
    fd_ok = python().startswith(prefix + "/")  # else a drop may fail to exec: the probe shows it
    reachable = not blocked_parent(python()) and not blocked_parent(
        os.path.join(prefix, "lib", "x")
    )
    via = "" if not drop or reachable or not fd_ok else prefix
    plan = Plan(ll, arch, arch is not None and ll < 6, drop, via)
    off = [f"Landlock ABI {abi} capped at {ll} (landlock_max)"] if ll < abi else []
    if not abi:
        off.append("Landlock: not in this kernel or not enabled (needs Linux 5.13+)")
    if 0 < ll < 4:
        off.append(f"Landlock TCP rules: need ABI 4 (Linux 6.7+), have {ll}")
    if 0 < ll < 6:
        off.append(f"Landlock signal/abstract-unix scopes: need ABI 6 (Linux 6.12+), have {ll}")
    if arch is None:
        off.append(f"seccomp: no filter support or no syscall table for {os.uname().machine}")
    while True:
        try:
            facts = probe.run("plain", functools.partial(_with_plan, runner, plan))
            break
        except probe.Unavailable as e:  # the launcher names the failed layer as "[layer]"
            off_fields = {
                "landlock": dict(landlock=0, limit_signals=plan.seccomp is not None),
                "seccomp": dict(seccomp=None, limit_signals=False),
                "uid drop": dict(drop=False, via_fd=""),
            }
            layer = next((k for k in off_fields if f"[{k}]" in str(e)), None)
            on_now = {
                "landlock": plan.landlock > 0,
                "seccomp": bool(plan.seccomp),
                "uid drop": plan.drop,
            }
            if layer is None or not on_now[layer]:
                raise
            off.append(f"{layer}: set-up failed here ({str(e)[-200:]})")
            plan = dataclasses.replace(plan, **off_fields[layer])
    active, missing = probe.plain_checks(facts, plan)
    fds = "no inherited file descriptors but an O_PATH handle of the Python installation"
    active = [fds if a == ALWAYS[2] and plan.via_fd else a for a in ALWAYS] + active
    if drop and not plan.drop:
        missing.append("runs as root: the uid drop failed here (see the layers)")
    if drop and not facts["uid"]:
        missing.append(_NPROC_ROOT)
    else:
        active.append(
            f"RLIMIT_NPROC ({'per run' if drop else 'counts all processes of the trainer uid'})"
        )
    on = [f"Landlock ABI {plan.landlock}"] if plan.landlock else []
    on += [f"seccomp filter ({plan.seccomp})"] if plan.seccomp else []
    if plan.drop:
        on.append(
            "a uid of its own per run" + (" (interpreter via O_PATH fd)" if plan.via_fd else "")
        )
    layers = tuple(on + [f"NOT in force: {o}" for o in off])
    return Isolation("plain", tuple(active), tuple(missing) + _PLAIN_GAPS, layers, plan)


def _with_plan(runner: Callable[[str, str, Plan], Any], plan: Plan, mode: str, prog: str) -> Any:
    return runner(mode, prog, plan)
