"""A supervisor in a process of its own, for the plain-mode tests: `python sandbox_driver.py SPEC`.

The hostile programs of tests/test_sandbox_supervisor.py try to kill their supervisor, so the
supervisor must not be pytest: this script drops to the uid the spec names (if any) FIRST (and, if
asked, nests itself 16 Landlock domains deep, so that the kernel refuses the runs one more), starts a
sentinel process of that uid (what `kill(-1, SIGKILL)` would also reach), runs the spec's jobs in a
`Sandbox(isolation="plain")` one by one, then its "together" jobs at once, and prints one JSON line: its pid, the isolation report,
each job's result, and whether the sentinel survived. If a program kills it, the line is missing.

The sandbox package is imported without running `r1jax/__init__` and `r1jax/rewards/__init__`
(their imports need numpy, which a system Python run as an ordinary user may lack); the sandbox
itself needs the standard library only.
"""

from __future__ import annotations

import ctypes
import json
import os
import struct
import subprocess
import sys
import types


def main(spec: dict) -> None:
    if spec["uid"] is not None:
        os.setgroups([])
        os.setresgid(spec["uid"], spec["uid"], spec["uid"])
        os.setresuid(spec["uid"], spec["uid"], spec["uid"])
    for name, sub in (("r1jax", ""), ("r1jax.rewards", "rewards")):
        module = types.ModuleType(name)
        module.__path__ = [os.path.join(spec["repo"], "r1jax", sub)]
        sys.modules[name] = module
    from r1jax.rewards.sandbox import confine  # noqa: PLC0415
    from r1jax.rewards.sandbox.runner import Job, Limits, Sandbox  # noqa: PLC0415

    if spec["nest_landlock"]:  # a real refusal: the kernel allows 16 nested Landlock domains
        confine.no_new_privs()
        attr = struct.pack("=Q", 1 << 11)  # handles only mknod of block devices: harmless here
        for _ in range(spec["nest_landlock"]):
            fd = confine._syscall("create", confine._CREATE, attr, ctypes.c_size_t(8), 0)
            confine._syscall("restrict", confine._RESTRICT, fd, 0)
            os.close(fd)

    sentinel = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        limits = Limits(wall_s=3.0, cpu_s=2, memory_bytes=256 << 20, processes=8)
        sb = Sandbox(
            limits, 2, "plain", tmp_root=spec["tmp_root"], landlock_max=spec["landlock_max"]
        )
        iso = sb.isolation
        names = [n for n, _ in spec["jobs"]] + [n for n, _ in spec["together"]]
        runs = [sb.run(Job(program)) for _, program in spec["jobs"]]
        runs += sb.run_many([Job(p) for _, p in spec["together"]], budget_s=30)  # concurrently
        results = {}
        for name, res in zip(names, runs):
            results[name] = dict(status=res.status, stdout=res.stdout, stderr=res.stderr[-800:])
        alive = sentinel.poll() is None
    finally:
        sentinel.kill()
        sentinel.wait()
    report = {"mode": iso.mode, "active": iso.active, "missing": iso.missing, "layers": iso.layers}
    out = {"pid": os.getpid(), "uid": os.getuid(), "python": sys.executable, "isolation": report}
    print(json.dumps(dict(out, results=results, sentinel_alive=alive)))


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as f:
        main(json.load(f))
