"""Local multi-process launcher: N copies of `python -m r1jax.main`, as N hosts of a pod would run.

    python -m r1jax.launch --processes=2 --devices_per_process=4 -- \
        --config=experiments/r1_zero_countdown.py:tiny --workdir=/tmp/r1jax/mp \
        --config.mesh.shape='(2,2,2)'

For development and tests on one machine (CPU devices, gloo collectives). Each process gets
R1JAX_COORDINATOR / R1JAX_NUM_PROCESSES / R1JAX_PROCESS_ID (read by `parallel.distributed`) and
`--xla_force_host_platform_device_count=K`; its output lines are prefixed `[pI]` (gloo's
"[Gloo] Rank i is connected to ..." lines are dropped). When a process exits non-zero the others
get `--grace_s` seconds to stop by themselves (a peer's death stops them within
`distributed.heartbeat_timeout_s`), then SIGTERM, then SIGKILL. The launcher returns the first
non-zero exit code (a signal N as 128 + N), or 0. On a pod or a cluster, do not use it: run the
same command on every host (docs/multihost.md).
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time

DEVICE_FLAG = "--xla_force_host_platform_device_count"
GLOO_NOISE = re.compile(
    r"\[Gloo\] Rank \d+ is connected to \d+ peer ranks\. Expected number of connected peer ranks is : \d+\n?"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_env(
    i: int,
    n: int,
    coordinator: str,
    devices: int,
    base: dict | None = None,
    extra: dict | None = None,
) -> dict:
    """The environment of local process i of n: the R1JAX_* variables and K simulated CPU devices."""
    env = dict(os.environ if base is None else base)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith(DEVICE_FLAG)]
    env["XLA_FLAGS"] = " ".join(flags + [f"{DEVICE_FLAG}={devices}"])
    env["JAX_PLATFORMS"] = "cpu"
    env["R1JAX_COORDINATOR"] = coordinator
    env["R1JAX_NUM_PROCESSES"] = str(n)
    env["R1JAX_PROCESS_ID"] = str(i)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def _pump(stream, prefix: str, out) -> None:
    for raw in iter(stream.readline, b""):
        line = GLOO_NOISE.sub("", raw.decode("utf-8", "replace"))  # one per gloo connection
        if line.strip():
            out.write(prefix + line)
            out.flush()
    stream.close()


def _code(rc: int) -> int:
    return 128 - rc if rc < 0 else rc


def run(
    processes: int,
    devices_per_process: int,
    args: list[str],
    module: str = "r1jax.main",
    grace_s: float = 120.0,
    process_env_extra: dict[int, dict] | None = None,
    out=None,
) -> int:
    """Starts the processes, streams their prefixed output, returns the first non-zero exit code."""
    out = out or sys.stdout
    coordinator = f"127.0.0.1:{free_port()}"
    procs, pumps = [], []
    for i in range(processes):
        env = process_env(
            i, processes, coordinator, devices_per_process, extra=(process_env_extra or {}).get(i)
        )
        p = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a signal to the launcher's group does not hit them twice
        )
        procs.append(p)
        t = threading.Thread(target=_pump, args=(p.stdout, f"[p{i}] ", out), daemon=True)
        t.start()
        pumps.append(t)
    first, failed_at = 0, None

    def stop(sig: int) -> None:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, sig)

    old = {
        s: signal.signal(s, lambda *_: stop(signal.SIGTERM))
        for s in (signal.SIGINT, signal.SIGTERM)
    }
    t0 = time.monotonic()
    # One waiter per process: exits are seen in the order they happened (to the millisecond), so
    # a SIGKILLed process is reported before the peer that stopped because it lost it, even when
    # both end within one polling interval.
    exits: queue.Queue = queue.Queue()
    for i, p in enumerate(procs):
        threading.Thread(target=lambda i=i, p=p: exits.put((i, p.wait())), daemon=True).start()
    try:
        done = 0
        while done < processes:
            try:
                i, rc = exits.get(timeout=0.2)
            except queue.Empty:
                i = None
            if i is not None:
                done += 1
                code = _code(rc)
                out.write(
                    f"[launch] process {i} exited with {code} after {time.monotonic() - t0:.1f} s\n"
                )
                if code and not first:
                    first, failed_at = code, time.monotonic()
            if failed_at is not None and time.monotonic() - failed_at > grace_s:
                out.write(f"[launch] stopping the others {grace_s:.0f} s after the first failure\n")
                stop(signal.SIGTERM)
                time.sleep(5)
                stop(signal.SIGKILL)
                failed_at = float("inf")
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        stop(signal.SIGKILL)
        for t in pumps:
            t.join(timeout=5)
    out.flush()
    return first


def main(argv: list[str]) -> int:
    if "--" in argv:
        cut = argv.index("--")
        ours, rest = argv[:cut], argv[cut + 1 :]
    else:
        ours, rest = argv, []
    p = argparse.ArgumentParser(prog="python -m r1jax.launch", description=__doc__.split("\n\n")[0])
    p.add_argument("--processes", type=int, required=True)
    p.add_argument("--devices_per_process", type=int, default=1)
    p.add_argument("--module", default="r1jax.main", help="module each process runs (-m)")
    p.add_argument("--grace_s", type=float, default=120.0)
    p.add_argument(
        "--process_env",
        action="append",
        default=[],
        metavar="I:KEY=VALUE",
        help="an extra environment variable for process I only (repeatable)",
    )
    a = p.parse_args(ours)
    if a.processes < 1 or a.devices_per_process < 1:
        p.error("--processes and --devices_per_process must be >= 1")
    extra: dict[int, dict] = {}
    for item in a.process_env:
        who, _, kv = item.partition(":")
        key, sep, value = kv.partition("=")
        if not (who.isdigit() and sep and key):
            p.error(f"--process_env={item!r}: expected I:KEY=VALUE")
        extra.setdefault(int(who), {})[key] = value
    return run(a.processes, a.devices_per_process, rest, a.module, a.grace_s, extra)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
