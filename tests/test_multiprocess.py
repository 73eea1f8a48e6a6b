"""Two local processes over gloo train the tiny model like one process does.

tests/mp_worker.py is launched twice (2 CPU devices each, `jax.distributed` through
`r1jax.parallel.distributed.initialize`, a (1, 2, 2) mesh whose fsdp axis spans the two processes, so the
parameters and the batch are split across processes). Each feeds only its own rows of every global
batch. The loss trajectory and the final parameters equal a one-process run of the same steps on
the same global batches, done here on one device.
"""

import json
import os
import signal
import socket
import subprocess
import sys

import jax
import mp_worker
import numpy as np
import pytest

from r1jax.parallel import sharding

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 420  # two cold JAX starts + compiles on a busy 2-core machine
TOL = dict(rtol=1e-5, atol=1e-5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _child_env() -> dict:
    """Each process gets 2 CPU devices, not the 8 that conftest gives this process."""
    env = dict(os.environ)
    flags = env.get("XLA_FLAGS", "").split()
    flags = [f for f in flags if not f.startswith("--xla_force_host_platform_device_count")]
    env["XLA_FLAGS"] = " ".join(flags + ["--xla_force_host_platform_device_count=2"])
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join(
        [ROOT, os.path.join(ROOT, "tests"), env.get("PYTHONPATH", "")]
    )
    for k in ("R1JAX_COORDINATOR", "R1JAX_NUM_PROCESSES", "R1JAX_PROCESS_ID"):
        env.pop(k, None)
    return env


def _launch(n: int, out: str) -> list[subprocess.CompletedProcess]:
    """Runs n workers to completion; on timeout or failure kills every one (its process group)."""
    coord = f"127.0.0.1:{_free_port()}"
    procs, logs = [], []
    try:
        for i in range(n):
            log = open(f"{out}.{i}.log", "w+")
            logs.append(log)
            cmd = [sys.executable, os.path.join(ROOT, "tests", "mp_worker.py")]
            cmd += [f"--process-id={i}", f"--num-processes={n}", f"--coordinator={coord}"]
            cmd += [f"--out={out}"]
            procs.append(
                subprocess.Popen(
                    cmd,
                    cwd=ROOT,
                    env=_child_env(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        for p in procs:
            p.wait(timeout=TIMEOUT_S)
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        texts = []
        for log in logs:
            log.seek(0)
            texts.append(log.read())
            log.close()
    for i, p in enumerate(procs):
        assert p.returncode == 0, f"worker {i} exited {p.returncode}:\n{texts[i][-4000:]}"
    return texts


@pytest.mark.slow
def test_two_processes_over_gloo_match_one_process(tmp_path, one_device_mesh):
    out = str(tmp_path / "mp")
    _launch(2, out)
    got = [json.load(open(f"{out}.{i}.json")) for i in range(2)]
    assert [g["process_index"] for g in got] == [0, 1]
    assert all(g["local_devices"] == 2 and g["global_devices"] == 4 for g in got)
    assert got[0]["losses"] == got[1]["losses"]  # every process sees the same global loss

    losses, params = mp_worker.train(one_device_mesh)
    np.testing.assert_allclose(got[0]["losses"], losses, **TOL)
    assert losses[-1] < losses[0]  # the steps trained
    saved = np.load(f"{out}.params.npz")
    flat = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(params)}
    assert set(saved.files) == set(flat)
    for k, v in flat.items():
        np.testing.assert_allclose(saved[k], v, **TOL, err_msg=k)


def test_process_rows_and_global_batch_on_one_process(one_device_mesh):
    """The single-process path: all rows, and global_batch is a plain batch-sharded device_put."""
    from r1jax.parallel import distributed

    assert distributed.process_rows(8) == (0, 8)
    mesh = sharding.make_mesh((4, 2, 1))
    x = np.arange(8 * 3).reshape(8, 3)
    arr = distributed.global_batch(x, mesh, sharding.DEFAULT_RULES)
    np.testing.assert_array_equal(np.asarray(arr), x)
    assert {s.data.shape for s in arr.addressable_shards} == {(1, 3)}
    distributed.initialize("", 1, 0)  # one process: a no-op, no coordinator needed
