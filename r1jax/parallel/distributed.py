"""Multi-process JAX with plain `jax.distributed`: how a run starts, and how it stops when a peer dies.

The same code runs on 1 CPU, 8 simulated CPU devices, N local processes over gloo
(`python -m r1jax.launch`), a GPU cluster under SLURM or MPI, or a TPU pod slice. Three ways in:

- explicit: `distributed.num_processes > 1` with a coordinator and process id (config or the
  R1JAX_COORDINATOR / R1JAX_NUM_PROCESSES / R1JAX_PROCESS_ID variables the local launcher sets);
- auto: `distributed.auto=True` calls `jax.distributed.initialize()` and lets JAX read the cluster
  (TPU metadata, SLURM, Open MPI, Kubernetes where JAX supports them);
- detected: with neither, a multi-task SLURM step, an Open MPI job or a multi-host TPU environment
  (seen in environment variables only, no network query) is started as if `auto` were set, so the
  same command works on every worker without per-host flags.

Nothing of the above: one process, no coordinator. A dead peer is reported by JAX's heartbeats within
`heartbeat_timeout_s` (the survivor is terminated with "another task died"), and a collective that
loses its peer raises at once; `peer_failure_exit` turns that into one line and a prompt exit.
Which rows each process feeds and scores is in `rows.py` (re-exported here for callers).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Mapping

import jax
from jax.experimental import multihost_utils

from r1jax.parallel.rows import gather_rows, global_batch, process_rows  # noqa: F401 (re-exported)

ENV_COORDINATOR = "R1JAX_COORDINATOR"
ENV_NUM_PROCESSES = "R1JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "R1JAX_PROCESS_ID"


def detect_cluster(env: Mapping[str, str] | None = None) -> str:
    """The multi-process cluster this process runs in, from environment variables alone ("" if none).

    "slurm": inside `srun` with more than one task; "ompi": an Open MPI job of more than one rank;
    "tpu": a TPU VM environment naming more than one worker (GKE's TPU_WORKER_HOSTNAMES) or a
    multislice coordinator. A single task, or a GCE TPU VM that sets no such variable, is not
    detected: there, `distributed.auto=True` asks JAX (which may query the TPU metadata server).
    """
    env = os.environ if env is None else env
    slurm_keys = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID")
    if all(k in env for k in slurm_keys) and _int(env.get("SLURM_NTASKS")) > 1:
        return "slurm"
    if "OMPI_MCA_orte_hnp_uri" in env and _int(env.get("OMPI_COMM_WORLD_SIZE")) > 1:
        return "ompi"
    hosts = env.get("TPU_WORKER_HOSTNAMES") or env.get("TPU_PROCESS_ADDRESSES") or ""
    if len([h for h in hosts.split(",") if h.strip()]) > 1 or env.get(
        "MEGASCALE_COORDINATOR_ADDRESS"
    ):
        return "tpu"
    return ""


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def launch_mode(num_processes: int = 1, auto: bool = False) -> str:
    """How `initialize` would start jax.distributed for these config values: "" (a single
    process), "explicit", "auto" or the detected cluster's name. R1JAX_NUM_PROCESSES overrides
    `num_processes`. Starts nothing, so it may be asked before JAX's backends exist."""
    num_processes = int(os.environ.get(ENV_NUM_PROCESSES, num_processes))
    return "explicit" if num_processes > 1 else ("auto" if auto else detect_cluster())


def initialize(
    coordinator: str = "",
    num_processes: int = 1,
    process_id: int = 0,
    cpu_collectives: str = "gloo",
    auto: bool = False,
    init_timeout_s: int = 300,
    heartbeat_timeout_s: int = 100,
    local_device_ids: tuple[int, ...] = (),
) -> str:
    """Starts jax.distributed when the run has several processes; returns how it started.

    The R1JAX_* variables override empty/default config values (the local launcher sets them).
    Returns "" for a single process, "explicit", "auto" or the detected cluster's name. Calling it
    again in a process that is already initialised (a stage that runs another stage first) is a no-op.
    `local_device_ids` () keeps JAX's default: every local device, except under SLURM or Open MPI
    on GPUs, where JAX gives each process the one GPU of its local rank; a process per node names
    its GPUs here.
    """
    coordinator = coordinator or os.environ.get(ENV_COORDINATOR, "")
    num_processes = int(os.environ.get(ENV_NUM_PROCESSES, num_processes))
    process_id = int(os.environ.get(ENV_PROCESS_ID, process_id))
    if jax.distributed.is_initialized():
        return "initialized"
    how = launch_mode(num_processes, auto)
    if not how:
        return ""
    if how == "explicit" and not coordinator:
        raise ValueError(
            "config.distributed.num_processes > 1 needs config.distributed.coordinator "
            "(host:port of process 0) or R1JAX_COORDINATOR."
        )
    # Only the CPU client reads this option, so it is harmless on GPU/TPU. (Asking
    # jax.default_backend() first would start the backends, and jax.distributed.initialize
    # refuses to run after that.)
    jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    explicit = how == "explicit"
    jax.distributed.initialize(
        coordinator or None,
        num_processes if explicit else None,
        process_id if explicit else None,
        local_device_ids=list(local_device_ids) or None,
        initialization_timeout=int(init_timeout_s),
        heartbeat_timeout_seconds=int(heartbeat_timeout_s),
    )
    return how


def barrier(name: str) -> None:
    """Every process waits here until all have arrived (no-op with one process)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def describe() -> str:
    """One line for the log: this process among how many, with how many devices."""
    return (
        f"process {jax.process_index()} of {jax.process_count()}, "
        f"{jax.local_device_count()} of {jax.device_count()} devices"
    )


def is_peer_failure(e: BaseException) -> bool:
    """An error raised because another process of the run died (its collective lost the peer)."""
    text = f"{type(e).__name__}: {e}"
    marks = ("Connection closed by peer", "Connection reset by peer", "unhealthy", "Gloo ")
    return any(m in text for m in marks)


def exit_after_error(e: BaseException, code: int, show_traceback: bool = False) -> None:
    """In a multi-process run: one line naming this process and the error, then exit at once.

    The regular interpreter exit would wait in `jax.distributed.shutdown` for peers that are gone
    or blocked in a collective with this process (up to the shutdown timeout); `os._exit` skips
    that, so the peers see this process die and stop within their heartbeat timeout. A
    single-process run returns to the caller, which exits as usual.
    """
    if not jax.distributed.is_initialized() or jax.process_count() <= 1:
        return
    if show_traceback:
        traceback.print_exception(e)
    what = "lost a peer process" if is_peer_failure(e) else "stopped on an error"
    first = str(e).splitlines()[0][:300] if str(e) else ""
    print(
        f"r1jax: process {jax.process_index()} of {jax.process_count()} {what} "
        f"({type(e).__name__}: {first}); exiting with code {code}. If a peer died, its own log "
        "holds the first error.",
        file=sys.stderr,
        flush=True,
    )
    sys.stdout.flush()
    os._exit(code)
