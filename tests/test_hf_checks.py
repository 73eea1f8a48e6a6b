"""HF import/export checks of issue 12: which rope settings win, one rope form on export, and clear
errors for corrupt or truncated safetensors files and for integer weights.

The tiny transformers-built folders are those of tests/test_hf.py (its MODELS, built the same way).
"""

import dataclasses
import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the `hf` extra is not installed")
transformers = pytest.importorskip("transformers", reason="the `hf` extra is not installed")

from test_hf import COMMON, MODELS, RULES, _randomise, _rewrite  # noqa: E402

from r1jax.model import hf  # noqa: E402
from r1jax.model.hf_files import read_tensor  # noqa: E402

# the llama3 scaling of test_hf's scaled model (its SCALING dict is mutated by transformers)
SCALING = {
    "rope_type": "llama3",
    "factor": 4.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 32,
}

YARN = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}  # Qwen's docs


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory):
    """name -> folder written by transformers (as test_hf's fixture of the same name)."""
    root, built = tmp_path_factory.mktemp("hf"), {}

    def get(name: str) -> str:
        if name not in built:
            cls_name, kw, shard = MODELS[name]
            kw = {k: dict(v) if isinstance(v, dict) else v for k, v in kw.items()}
            cfg = getattr(transformers, cls_name)(**COMMON, **kw, bos_token_id=1, eos_token_id=2)
            model = transformers.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
            _randomise(model, seed=len(built))
            built[name] = str(root / name)
            model.save_pretrained(built[name], max_shard_size=shard)
        return built[name]

    return get


def _write_config(folder: str, config: dict) -> str:
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f)
    return folder


def _hf_rope(folder: str) -> dict:
    """What transformers 5 itself makes of the folder's rope settings."""
    return dict(transformers.AutoConfig.from_pretrained(folder).rope_parameters)


def test_rope_scaling_wins_like_transformers(hf_dirs, tmp_path):
    base = hf.read_config(hf_dirs("llama_gqa4_scaled"))
    base.pop("rope_parameters", None)
    # 1. rope_parameters without a type next to a llama3 rope_scaling: the scaling is used, and the
    #    theta is the one transformers 5 uses too (the top-level rope_theta)
    cfg = dict(base, rope_theta=500000.0, rope_scaling=SCALING, rope_parameters={"rope_theta": 5e5})
    ours = hf.config_from_hf(cfg)
    want = _hf_rope(_write_config(str(tmp_path), cfg))
    assert want["rope_type"] == "llama3"
    assert ours.rope_scaling is not None and ours.rope_scaling.factor == want["factor"] == 4.0
    assert ours.rope_theta == want["rope_theta"] == 500000.0
    # 2. both given and equal (a transformers 5 save of a legacy config): loads, scaled
    both = dict(base, rope_scaling=SCALING, rope_parameters=dict(SCALING, rope_theta=10000.0))
    assert hf.config_from_hf(both).rope_scaling.original_max_position == 32
    # 3. legacy "type" spelling and a null rope_scaling next to rope_parameters
    legacy = {k: v for k, v in SCALING.items() if k != "rope_type"} | {"type": "llama3"}
    assert hf.config_from_hf(dict(base, rope_scaling=legacy)).rope_scaling.factor == 4.0
    plain = dict(
        base, rope_scaling=None, rope_parameters={"rope_type": "default", "rope_theta": 7.0}
    )
    assert (hf.config_from_hf(plain).rope_scaling, hf.config_from_hf(plain).rope_theta) == (
        None,
        7.0,
    )


def test_rope_disagreement_is_an_error_naming_both(hf_dirs):
    qwen = hf.read_config(hf_dirs("qwen2_gqa2"))  # transformers 5 wrote rope_parameters only
    assert qwen["rope_parameters"]["rope_type"] == "default"
    with pytest.raises(
        ValueError, match=r"rope_parameters=.*rope_scaling=.*disagree on \['rope_type'\]"
    ):
        hf.config_from_hf(qwen | {"rope_scaling": YARN})
    llama = hf.read_config(hf_dirs("llama_gqa4_scaled"))
    with pytest.raises(ValueError, match=r"disagree on \['factor'\]"):
        hf.config_from_hf(llama | {"rope_scaling": dict(SCALING, factor=8.0)})
    # only rope_scaling: it is read (and YaRN, which r1jax lacks, is refused, not ignored)
    no_params = {k: v for k, v in qwen.items() if k != "rope_parameters"}
    with pytest.raises(ValueError, match="'yarn' is not supported"):
        hf.config_from_hf(no_params | {"rope_scaling": YARN})


@pytest.mark.parametrize("name, theta", [("qwen2_gqa2", 1e6), ("llama_gqa4_scaled", 500000.0)])
def test_export_writes_one_rope_form(name, theta, hf_dirs, one_device_mesh, tmp_path):
    """config.json gets rope_theta + rope_scaling only; transformers 5 and r1jax read the same."""
    _, params, cfg = hf.load_hf(hf_dirs(name), one_device_mesh, RULES)
    cfg = dataclasses.replace(cfg, rope_theta=theta)
    out = str(tmp_path / "export")
    hf.save_hf(out, params, cfg)
    written = hf.read_config(out)
    assert "rope_parameters" not in written and written["rope_theta"] == theta
    got = _hf_rope(out)
    assert got["rope_theta"] == theta
    if cfg.rope_scaling is None:
        assert written["rope_scaling"] is None and got["rope_type"] == "default"
    else:
        assert got == dict(SCALING, rope_theta=theta)
    assert hf.load_hf(out, one_device_mesh, RULES)[2] == cfg
    # the trap: Qwen's documented YaRN line added to the export is not silently ignored
    _write_config(out, written | {"rope_scaling": YARN})
    with pytest.raises(ValueError, match="'yarn'"):
        hf.load_hf(out, one_device_mesh, RULES)


def _damage(path: str, how: str) -> None:
    data = open(path, "rb").read()
    if how == "truncated":
        data = data[: len(data) // 2]
    else:  # a header length far past the end of the file
        data = (2**40).to_bytes(8, "little") + data[8:]
    with open(path, "wb") as f:
        f.write(data)


@pytest.mark.parametrize("how", ["truncated", "bad_header"])
@pytest.mark.parametrize("name", ["qwen2_gqa2", "qwen2_mha_tied"])  # one file; several + an index
def test_corrupt_safetensors_name_the_file(name, how, hf_dirs, one_device_mesh, tmp_path):
    import shutil

    folder = shutil.copytree(hf_dirs(name), str(tmp_path / "copy"))
    files = sorted(set(hf.weight_map(folder).values()))
    assert (len(files) > 1) == (name == "qwen2_mha_tied")
    victim = files[-1]
    _damage(victim, how)
    with pytest.raises(
        ValueError, match=f"cannot read safetensors file {victim}.*corrupt or trunc"
    ):
        hf.load_hf(folder, one_device_mesh, RULES)


@pytest.mark.parametrize("dtype", [np.int32, np.int8, np.uint8, np.bool_])
def test_integer_weights_are_refused(dtype, hf_dirs, one_device_mesh, tmp_path):
    name = "model.layers.0.mlp.up_proj.weight"
    folder = hf_dirs("qwen2_gqa2")
    w = read_tensor(hf.weight_map(folder)[name], name)
    bad = _rewrite(folder, str(tmp_path / "int"), drop=[name], add={name: w.astype(dtype)})
    want = rf"tensor '{name}' in .*model\.safetensors has dtype {np.dtype(dtype)}.*floating-point"
    with pytest.raises(ValueError, match=want):
        hf.load_hf(bad, one_device_mesh, RULES)
