"""Every notebook runs top to bottom at its tiny size, and is committed with full-size outputs.

The tiny run executes a copy in a kernel on one device (R1JAX_NOTEBOOK_TINY=1, outputs discarded);
both notebooks share one tiny base model (R1JAX_NOTEBOOK_BASE), built by the first. The committed
files must carry the outputs of a full-size run, so they read on GitHub without running.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(f for f in os.listdir(os.path.join(ROOT, "notebooks")) if f.endswith(".ipynb"))


def _read(name: str):
    nbformat = pytest.importorskip("nbformat")
    return nbformat.read(os.path.join(ROOT, "notebooks", name), as_version=4)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_with_full_size_outputs(name):
    code = [c for c in _read(name).cells if c.cell_type == "code"]
    missing = [i for i, c in enumerate(code) if not c.get("outputs")]
    assert not missing, f"{name}: code cells {missing} have no saved outputs; run it at full size"
    errors = [o for c in code for o in c.outputs if o.get("output_type") == "error"]
    assert not errors, f"{name} was saved with an error output"
    first = "".join(o.get("text", "") for o in code[0].outputs)
    assert "size: full" in first, f"{name}'s saved outputs are not from a full-size run"
    images = sum("image/png" in o.get("data", {}) for c in code for o in c.outputs)
    assert images >= 2, f"{name} has {images} figures saved"


@pytest.fixture(scope="module")
def shared_base(tmp_path_factory):
    return str(tmp_path_factory.mktemp("notebook_base") / "base")


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes(name, shared_base, tmp_path, monkeypatch):
    pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("R1JAX_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("R1JAX_NOTEBOOK_DIR", str(tmp_path))
    monkeypatch.setenv("R1JAX_NOTEBOOK_BASE", shared_base)
    monkeypatch.delenv("R1JAX_CHECKPOINT", raising=False)
    # the kernel runs on one device, as in a researcher's notebook: drop the 8 simulated devices
    flags = os.environ.get("XLA_FLAGS", "").split()
    keep = [f for f in flags if not f.startswith("--xla_force_host_platform_device_count")]
    monkeypatch.setenv("XLA_FLAGS", " ".join(keep))
    nb = _read(name)
    client = nbclient.NotebookClient(
        nb,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": os.path.join(ROOT, "notebooks")}},
    )
    client.execute()
    if name == "grpo_loss_ablation.ipynb":
        assert os.path.exists(tmp_path / "ablation.png")
        assert os.path.exists(tmp_path / "batch.npz")
        with open(tmp_path / "curves.json", encoding="utf-8") as f:
            curves = {k: np.asarray(v, float) for k, v in json.load(f)["curves"].items()}
        assert len(curves) == 5, sorted(curves)
        names = sorted(curves)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:  # every pair of variants trains differently
                assert not np.allclose(curves[a], curves[b], rtol=0, atol=1e-7, equal_nan=True), (
                    a,
                    b,
                )
    else:
        assert os.path.exists(tmp_path / "rollouts_inspect.png")
