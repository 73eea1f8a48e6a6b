"""How multi-process runs start and stop: the local launcher, cluster detection, row ownership,
and a run whose peer is killed.

The launcher tests run a child without JAX (tests/mp_echo.py), so they take a second. The two
kill tests run the pretrain stage on 2 processes x 4 CPU devices and SIGKILL one of them after
its step 2 (R1JAX_FAULTS): once started by the launcher (the victim is process 1) and once as a
SLURM step would start it, with only SLURM_* variables and no r1jax flags, so JAX's cluster
detection sets the run up (the victim is process 0, the coordinator).
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time

import mp_runs
import numpy as np
import pytest

from r1jax import launch
from r1jax.parallel import distributed, rows

HEARTBEAT_S = 10


@pytest.fixture
def echo_path(monkeypatch):
    tests = os.path.join(mp_runs.ROOT, "tests")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")]))


def test_launcher_sets_each_process_up_and_returns_the_first_failure(echo_path):
    out = io.StringIO()
    extra = {1: {"MP_ECHO_EXTRA": "only-p1"}}
    rc = launch.run(2, 3, ["--exit=1:5"], module="mp_echo", grace_s=30, process_env_extra=extra, out=out)  # fmt: skip
    text = out.getvalue()
    assert rc == 5
    lines = {i: [ln[5:] for ln in text.splitlines() if ln.startswith(f"[p{i}] ")] for i in (0, 1)}
    coords = set()
    for i in (0, 1):
        env = dict(kv.split("=", 1) for kv in lines[i][0].split())
        assert (env["R1JAX_NUM_PROCESSES"], env["R1JAX_PROCESS_ID"]) == ("2", str(i))
        assert env["JAX_PLATFORMS"] == "cpu"
        assert lines[i][1].endswith("--xla_force_host_platform_device_count=3")
        assert lines[i][1].count("device_count") == 1  # the pytest process's 8 was replaced
        coords.add(env["R1JAX_COORDINATOR"])
    assert len(coords) == 1 and re.fullmatch(r"127\.0\.0\.1:\d+", coords.pop())
    assert lines[0][2] == "EXTRA=" and lines[1][2] == "EXTRA=only-p1"
    assert re.search(r"\[launch\] process 1 exited with 5", text)


def test_launcher_stops_a_process_that_outlives_the_grace_period(echo_path):
    out = io.StringIO()
    t0 = time.monotonic()
    rc = launch.run(2, 1, ["--exit=1:7", "--hang=0"], module="mp_echo", grace_s=1, out=out)
    assert rc == 7
    assert time.monotonic() - t0 < 30
    text = out.getvalue()
    assert "[launch] stopping the others 1 s after the first failure" in text
    assert re.search(r"\[launch\] process 0 exited with 143", text)  # SIGTERM: 128 + 15


def test_launcher_flags():
    with pytest.raises(SystemExit):
        launch.main(["--processes=2", "--process_env=oops", "--", "--config=x"])
    with pytest.raises(SystemExit):
        launch.main(["--processes=0"])


@pytest.mark.parametrize(
    "env,want",
    [
        ({}, ""),
        (
            {
                "SLURM_JOB_ID": "7",
                "SLURM_STEP_NODELIST": "n[1-2]",
                "SLURM_NTASKS": "4",
                "SLURM_PROCID": "1",
            },
            "slurm",
        ),  # fmt: skip
        (
            {
                "SLURM_JOB_ID": "7",
                "SLURM_STEP_NODELIST": "n1",
                "SLURM_NTASKS": "1",
                "SLURM_PROCID": "0",
            },
            "",
        ),  # fmt: skip
        ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4"}, ""),  # an allocation, not inside srun
        ({"OMPI_MCA_orte_hnp_uri": "x", "OMPI_COMM_WORLD_SIZE": "2"}, "ompi"),
        ({"TPU_WORKER_HOSTNAMES": "h0,h1,h2,h3"}, "tpu"),
        ({"TPU_WORKER_HOSTNAMES": "h0"}, ""),  # a single-host TPU VM
        ({"MEGASCALE_COORDINATOR_ADDRESS": "h0:8080"}, "tpu"),
    ],
)
def test_detect_cluster(env, want):
    assert distributed.detect_cluster(env) == want


def test_initialize_without_settings_is_one_process(monkeypatch):
    for k in ("R1JAX_COORDINATOR", "R1JAX_NUM_PROCESSES", "R1JAX_PROCESS_ID", "SLURM_JOB_ID"):
        monkeypatch.delenv(k, raising=False)
    assert distributed.initialize() == ""
    with pytest.raises(ValueError, match="needs config.distributed.coordinator"):
        distributed.initialize(num_processes=2)


def test_row_blocks_and_owners():
    # 4 processes, tensor parallelism across pairs: processes 0, 1 hold rows [0, 8), 2, 3 [8, 16)
    spans = {0: [(0, 4), (4, 8)], 1: [(4, 8), (0, 4)], 2: [(8, 16)], 3: [(8, 16)]}
    blocks = rows.blocks_from_spans(spans, 16)
    assert blocks == {0: (0, 8), 1: (0, 8), 2: (8, 16), 3: (8, 16)}
    np.testing.assert_array_equal(rows.owners_from_blocks(blocks, 16), np.repeat([0, 1, 2, 3], 4))
    disjoint = rows.blocks_from_spans({0: [(0, 4)], 1: [(4, 8)]}, 8)
    np.testing.assert_array_equal(rows.owners_from_blocks(disjoint, 8), np.repeat([0, 1], 4))
    with pytest.raises(ValueError, match="not one contiguous range"):
        rows.blocks_from_spans({0: [(0, 2), (4, 6)], 1: [(2, 4), (6, 8)]}, 8)
    with pytest.raises(ValueError, match="overlapping but different"):
        rows.blocks_from_spans({0: [(0, 2), (2, 4)], 1: [(2, 4), (4, 6)]}, 6)


def test_one_process_rows_are_all_rows():
    import jax

    from r1jax.parallel import sharding

    mesh = sharding.make_mesh((2, 2, 2))
    assert rows.process_rows(8, mesh) == (0, 8) and rows.owned_rows(8, mesh, sharding.DEFAULT_RULES) == (0, 8)  # fmt: skip
    x = rows.global_from_host(np.arange(16).reshape(8, 2), mesh, sharding.DEFAULT_RULES)
    np.testing.assert_array_equal(rows.pick_rows(x, [1, 6]), [[2, 3], [12, 13]])
    np.testing.assert_array_equal(rows.owned_host_rows(x, mesh, sharding.DEFAULT_RULES), np.asarray(x))  # fmt: skip
    assert rows.split_rows(5) == (0, 5) and jax.process_count() == 1


def _slurm_env(i: int, port: int, cache: str) -> dict:
    env = mp_runs.env(cache, devices=4)
    env.update(SLURM_JOB_ID="4242", SLURM_STEP_NODELIST="localhost", SLURM_NTASKS="2")
    env.update(SLURM_PROCID=str(i), SLURM_LOCALID=str(i), JAX_COORDINATOR_PORT=str(port))
    return env


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """Both kill scenarios, run side by side: {name: (exit codes, exit times, output)}."""
    d = tmp_path_factory.mktemp("kill")
    cache = str(d / "xla_cache")
    args = ["--config=experiments/pretrain_toy.py:tiny,steps=40", "--config.mesh.shape=(2,2,2)"]
    args += [f"--config.distributed.heartbeat_timeout_s={HEARTBEAT_S}"]
    fault = "--process_env=1:R1JAX_FAULTS=kill_after_step=2"
    launched = mp_runs.start(2, [*args, f"--workdir={d}/launch"], str(d / "launch.log"), cache, (fault,))  # fmt: skip
    port, procs = launch.free_port(), []
    for i in (0, 1):
        env = _slurm_env(i, port, cache)
        if i == 0:
            env["R1JAX_FAULTS"] = "kill_after_step=2"
        log = open(d / f"slurm{i}.log", "w")
        cmd = [sys.executable, "-m", "r1jax.main", *args, f"--workdir={d}/slurm"]
        procs.append((subprocess.Popen(cmd, cwd=mp_runs.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True), log))  # fmt: skip
    ended = {}
    deadline = time.monotonic() + 900
    while len(ended) < 2 and time.monotonic() < deadline:
        for i, (p, _) in enumerate(procs):
            if i not in ended and p.poll() is not None:
                ended[i] = time.monotonic()
        time.sleep(0.2)
    for p, log in procs:
        if p.poll() is None:
            os.killpg(p.pid, 9)
            p.wait()
        log.close()
    texts = [open(d / f"slurm{i}.log").read() for i in (0, 1)]
    slurm = ([p.returncode for p, _ in procs], [ended.get(i, float("inf")) for i in (0, 1)], texts)
    return {"launch": mp_runs.finish(launched), "slurm": slurm}


@pytest.mark.slow
def test_killed_process_stops_its_peer_under_the_launcher(killed):
    rc, text, _ = killed["launch"]
    assert rc == 137, text[-3000:]  # the launcher returns the first failure: the SIGKILLed one
    found = re.findall(r"\[launch\] process (\d) exited with (-?\d+) after ([\d.]+) s", text)
    codes = {p: int(c) for p, c, _ in found}
    after = {p: float(t) for p, _, t in found}
    assert codes == {"1": 137, "0": 3}, text[-3000:]
    assert after["0"] - after["1"] < HEARTBEAT_S + 30  # it stopped by itself, not by the launcher
    assert "stopping the others" not in text
    assert re.search(r"\[p0\] r1jax: process 0 of 2 lost a peer process", text), text[-3000:]


@pytest.mark.slow
def test_killed_coordinator_stops_its_peer_in_a_detected_slurm_step(killed):
    codes, ended, texts = killed["slurm"]
    assert "jax.distributed (slurm): process 1 of 2, 4 of 8 devices" in texts[1], texts[1][-3000:]
    assert codes[0] == -9, texts[0][-3000:]
    assert codes[1] not in (0, None) and codes[1] != -9, texts[1][-3000:]
    assert ended[1] - ended[0] < HEARTBEAT_S + 30
    assert "process 1 of 2 lost a peer process" in texts[1] or "another task died" in texts[1]
