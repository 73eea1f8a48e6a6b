"""Runs untrusted Python programs (model completions) in sandboxed subprocesses, many at a time.

Model output is hostile input: under RL the policy will find any crack, so a candidate program
must not be able to stall the trainer, exhaust the machine, leave processes behind, read the
trainer's files, write outside its own directory, or reach the network. Each run gets:

- always: a fresh temporary directory (deleted after), a minimal environment, no inherited file
  descriptors, stdin from an anonymous memfd, `python -I -S -B`, rlimits on CPU time, address space,
  open files, file size, processes and core size, no_new_privs, a wall-clock limit after which the
  whole process group is SIGKILLed, and stdout+stderr read incrementally with a size cap;
- with namespaces where the platform allows (see `isolation`, probed once per process and
  *verified* by a probe program, probe.py): new PID, network, mount, IPC and UTS namespaces, a
  chroot jail on a size-capped tmpfs that holds only read-only binds of the system and Python
  directories, and, when the trainer is root, a distinct unprivileged uid per concurrent run (so
  RLIMIT_NPROC counts that run only). Without root but with user namespaces, the same jail runs
  inside a user namespace;
- without namespaces ("plain", e.g. user namespaces off by AppArmor, or a container without
  CAP_SYS_ADMIN), what an unprivileged process can put on itself (confine.py): Landlock (writes
  only in its folder, reads only of the system/Python dirs and its folder, no TCP; from Linux 6.12
  no signal to the trainer or other runs, no abstract unix socket outside), a seccomp filter (no
  socket(), ptrace, namespaces, mounts, io_uring, SysV IPC, setsid/setpgid, so its process group,
  killed after the run, holds every process it starts), and under a root trainer a uid of its own
  per run. The log says once which layers and protections are in force on this kernel, and each
  protection missing here, with why.
The set-up happens in `child.py` (the child side). Nothing here ever evaluates model text.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import marshal
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence

from r1jax.rewards.sandbox import isolation as iso
from r1jax.rewards.sandbox import launch, process

log = logging.getLogger(__name__)

_CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "child.py")
_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/work", "TMPDIR": "/tmp"}
STATUSES = ("ok", "exit", "signal", "cpu_limit", "timeout", "output_limit", "budget", "skipped")


@dataclasses.dataclass(frozen=True)
class Limits:
    """Per-run limits; small by default since test programs for RL are small and fast.

    RLIMIT_AS bounds each process, so a run can hold at most about
    processes * memory_bytes + tmpfs_bytes of memory (2 GiB + 16 MiB by default); no cgroup is used.
    """

    wall_s: float = 4.0
    cpu_s: int = 2
    memory_bytes: int = 512 << 20  # RLIMIT_AS (address space, not resident memory)
    output_bytes: int = 1 << 16  # stdout + stderr, kill when over
    file_bytes: int = 1 << 20  # RLIMIT_FSIZE: largest file the program may write
    open_files: int = 64
    processes: int = 4  # RLIMIT_NPROC, threads included (per run where each run has its own uid)
    tmpfs_bytes: int = 16 << 20  # the jail's whole writable space


@dataclasses.dataclass(frozen=True)
class Job:
    """One run: `program` is main.py; `files` are extra (name, text) files next to it."""

    program: str
    stdin: str = ""
    files: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class Result:
    """What a run did. `status` is one of STATUSES (plus "setup_error", an infrastructure fault)."""

    status: str
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    wall_s: float = 0.0
    detail: str = ""
    passed: bool | None = None  # set by run_many's judge


class Sandbox:
    """Runs jobs under `limits`; `run_many` uses up to `workers` processes at once.

    isolation: "auto" (the strongest that works here), or "root" / "userns" / "plain" to demand one
    (ValueError if it does not work here). tmp_root: where per-run directories are made (with a uid
    per run in plain mode, its parents must be searchable by others for the run's TMPDIR to work).
    landlock_max: plain mode uses at most this Landlock ABI (None: the kernel's), to reproduce
    an older kernel's fallback here.
    """

    def __init__(
        self,
        limits: Limits = Limits(),
        workers: int = 2,
        isolation: str = "auto",
        tmp_root: str | None = None,
        landlock_max: int | None = None,
    ):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.limits, self.workers, self.request = limits, workers, isolation
        self.tmp_root = tmp_root or tempfile.gettempdir()
        self.landlock_max = landlock_max
        self._iso: iso.Isolation | None = None

    @property
    def isolation(self) -> iso.Isolation:
        """The isolation in force (probed and verified once per process and request)."""
        if self._iso is None:
            root = tempfile.gettempdir()  # the probe is about the machine, not this tmp_root
            probe = lambda mode, prog, plan: self._run(Job(prog), 10.0, mode, plan, root)  # noqa: E731
            out = iso.get(self.request, probe, self.landlock_max)
            launch.check_tmp_root(self.tmp_root, out.plan.drop)
            self._iso = out
        return self._iso

    def run(self, job: Job, wall_s: float | None = None) -> Result:
        """Runs one job (blocking) with wall limit `wall_s` (default: limits.wall_s)."""
        wall_s = self.limits.wall_s if wall_s is None else wall_s
        return self._run(job, wall_s, self.isolation.mode, self.isolation.plan)

    def run_many(
        self,
        jobs: Sequence[Job],
        budget_s: float,
        judge: Callable[[int, Result], bool] | None = None,
        groups: Sequence[int] | None = None,
    ) -> list[Result]:
        """Runs all jobs, at most `workers` at once, returning within about `budget_s` seconds.

        Jobs still running at the budget are killed (status "budget"); jobs not started by then get
        status "budget" too. With `judge` and `groups`, a job whose group already has a failed job
        is "skipped" (so a binary reward stops at a candidate's first failing test).
        """
        mode, plan = self.isolation.mode, self.isolation.plan
        deadline = time.monotonic() + budget_s
        results: list[Result | None] = [None] * len(jobs)
        failed: set[int] = set()
        lock = threading.Lock()
        counter = iter(range(len(jobs)))

        def worker() -> None:
            while True:
                with lock:
                    i = next(counter, None)
                    if i is None:
                        return
                    skip = groups is not None and groups[i] in failed
                left = deadline - time.monotonic()
                if skip:
                    results[i] = Result("skipped", passed=False)
                    continue
                if left < 0.05:
                    results[i] = Result("budget", detail="not started before the budget ran out")
                    continue
                wall = min(self.limits.wall_s, left)
                try:
                    res = self._run(jobs[i], wall, mode, plan)
                except Exception as e:  # noqa: BLE001 - e.g. disk full: the trainer's fault, not the candidate's
                    res = Result("setup_error", detail=f"{type(e).__name__}: {e}")
                if res.status == "timeout" and wall < self.limits.wall_s:
                    res = dataclasses.replace(res, status="budget", detail="killed at the budget")
                if judge is not None:
                    res = dataclasses.replace(res, passed=bool(judge(i, res)))
                    if not res.passed and groups is not None:
                        with lock:
                            failed.add(groups[i])
                results[i] = res

        threads = [
            threading.Thread(target=worker, daemon=True)
            for _ in range(min(self.workers, len(jobs)))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return [r if r is not None else Result("budget") for r in results]

    def _run(
        self, job: Job, wall_s: float, mode: str, plan: iso.Plan, root: str | None = None
    ) -> Result:
        t0 = time.monotonic()
        deadline = t0 + wall_s
        host = tempfile.mkdtemp(prefix="r1jax-sbx-", dir=root or self.tmp_root)
        slot = launch.acquire_slot() if mode == "root" or plan.drop else None
        try:
            return self._spawn(job, mode, plan, host, slot, t0, deadline)
        finally:
            if slot is not None:
                launch.release_slot(slot)
            process.remove_tree(host)

    def _spawn(
        self,
        job: Job,
        mode: str,
        plan: iso.Plan,
        host: str,
        slot: int | None,
        t0: float,
        deadline: float,
    ) -> Result:
        indir = os.path.join(host, "in")
        os.mkdir(indir)
        for name, text in (("main.py", job.program), *job.files):
            if not name or "/" in name or name.startswith("."):
                raise ValueError(f"bad sandbox file name {name!r}")
            with open(os.path.join(indir, name), "w", encoding="utf-8") as f:
                f.write(text)
        cfg = launch.child_config(mode, self.limits, host, slot, plan)
        env = dict(_ENV, HOME="/work" if cfg["jail"] else indir)
        if mode == "plain":  # its own TMPDIR, the only other place Landlock lets it write
            env["TMPDIR"] = cfg["write"][1]
        stdin = os.memfd_create("r1jax-stdin", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        r, w = os.pipe()
        try:
            os.write(stdin, job.stdin.encode("utf-8"))
            os.lseek(stdin, 0, os.SEEK_SET)
            seals = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
            fcntl.fcntl(stdin, fcntl.F_ADD_SEALS, seals)  # the candidate cannot write to its stdin
            cfg.update(status_fd=w, ppid=os.getpid(), indir=indir)
            cfg["argv"] = [launch.python(), "-I", "-S", "-B", "-X", "utf8", "main.py"]
            cfg["env"] = env
            argv = [launch.python(), "-I", "-S", "-B", _CHILD, marshal.dumps(cfg).hex()]
            proc = subprocess.Popen(
                argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, close_fds=True,
                pass_fds=(w,), start_new_session=True, env=dict(_ENV), cwd=indir,
            )  # fmt: skip
        finally:
            os.close(stdin)
            os.close(w)
        os.set_blocking(r, False)
        status = bytearray()
        try:
            out, err, why = process.collect(proc, deadline, self.limits.output_bytes)
            if why:
                process.kill(proc, r, status)
                process.drain(proc, time.monotonic() + 1.0)
                if slot is not None and mode == "root":
                    process.wait_uid_gone(cfg["uid"], timeout_s=2.0)
            elif mode == "plain":  # exited, not yet reaped: its group id cannot be reused yet
                process.killpg(proc.pid)  # whatever it left running (setsid is refused to it)
            proc.wait()
            if mode == "plain":
                process.wait_group_dead(proc.pid, timeout_s=2.0)
            process.read_nb(r, status)
        except BaseException:
            process.kill(proc, r, status)  # e.g. KeyboardInterrupt: never leave a run behind
            raise
        finally:
            os.close(r)
            proc.stdout.close()
            proc.stderr.close()
        res = dict(stdout=out.decode("utf-8", "replace"), stderr=err.decode("utf-8", "replace"))
        res["wall_s"] = time.monotonic() - t0
        if why:
            return Result(why, **res)
        return _classify(status.decode("utf-8", "replace"), proc.returncode, cfg["ns"], res)


def _classify(status: str, returncode: int, ns: bool, res: dict) -> Result:
    """The run's status from the launcher's report (namespaces) or the return code (plain)."""
    lines = [line for line in status.splitlines() if not line.startswith("pid ")]
    first = lines[0] if lines else ""
    if first.startswith("setup"):
        return Result("setup_error", detail=status, **res)
    if ns:
        kind, _, value = first.partition(" ")
        if kind not in ("exit", "signal") or not value.isdigit():
            return Result(
                "setup_error", detail=f"launcher said {status!r} (rc {returncode})", **res
            )
        code = int(value) if kind == "exit" else -int(value)
    else:
        code = returncode
    if code == 0:
        return Result("ok", exit_code=0, **res)
    if code > 0:
        return Result("exit", exit_code=code, **res)
    if -code == signal.SIGXCPU:
        return Result("cpu_limit", exit_code=code, **res)
    return Result("signal", exit_code=code, detail=signal.Signals(-code).name, **res)
