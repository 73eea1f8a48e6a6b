"""Every notebook runs top to bottom (at its tiny size), so the ablations never rot."""

from __future__ import annotations

import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(f for f in os.listdir(os.path.join(ROOT, "notebooks")) if f.endswith(".ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes(name, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("R1JAX_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("R1JAX_NOTEBOOK_DIR", str(tmp_path))
    # the kernel runs on one device, as in a researcher's notebook: drop the 8 simulated devices
    flags = os.environ.get("XLA_FLAGS", "").split()
    keep = [f for f in flags if not f.startswith("--xla_force_host_platform_device_count")]
    monkeypatch.setenv("XLA_FLAGS", " ".join(keep))
    nb = nbformat.read(os.path.join(ROOT, "notebooks", name), as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": os.path.join(ROOT, "notebooks")}},
    )
    client.execute()
    assert os.path.exists(tmp_path / "ablation.png")
