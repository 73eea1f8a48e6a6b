"""Hugging Face Qwen2 / Llama checkpoints -> r1jax: config.json -> ModelConfig, safetensors -> params.

Letters: D d_model, N query heads, K kv heads, H head dim, F mlp dim, V vocab, L layers.

Weights stream from the safetensors files one tensor at a time: read in the stored dtype, viewed in
the r1jax layout (a reshape + transpose, no copy), and each device's shard is cast to the param dtype
and placed by `jax.make_array_from_callback`. Besides the placed parameters the host holds one tensor
as read plus one converted shard of it, never the whole model, so a 7B checkpoint loads onto
accelerators from a host with less RAM than the model (benchmarks/hf_load_memory.py measures it).
Every file is opened per tensor, so its memory-mapped pages are released as soon as the tensor is read.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from flax import nnx

from r1jax.model.config import ModelConfig, RopeScaling
from r1jax.model.hf_files import INDEX_FILE, read_config, read_tensor, weight_map  # noqa: F401
from r1jax.model.layers import is_stacked, stack_layers_sharded
from r1jax.model.transformer import Transformer
from r1jax.parallel import sharding

ARCHITECTURES = {"qwen2": "Qwen2ForCausalLM", "llama": "LlamaForCausalLM"}
# Tensors some checkpoints carry that r1jax recomputes (rotary tables) are skipped, not errors.
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


@dataclasses.dataclass(frozen=True)
class HFTensor:
    """One parameter: r1jax value = HF tensor.reshape(split_shape).transpose(perm)."""

    path: tuple[str | int, ...]  # key path in the r1jax params dict
    name: str  # HF tensor name
    hf_shape: tuple[int, ...]
    split_shape: tuple[int, ...]
    perm: tuple[int, ...]

    def to_r1jax(self, w: np.ndarray) -> np.ndarray:
        """A view of the HF tensor in r1jax layout (no copy)."""
        return w.reshape(self.split_shape).transpose(self.perm)

    def to_hf(self, x: np.ndarray) -> np.ndarray:
        """The r1jax array in HF layout (the inverse of `to_r1jax`)."""
        return np.asarray(x).transpose(np.argsort(self.perm)).reshape(self.hf_shape)


def _need(c: Mapping[str, Any], key: str) -> Any:
    if c.get(key) is None:
        raise ValueError(
            f"config.json has no {key!r}; it is needed to build the r1jax model config."
        )
    return c[key]


def _rope_entries(d: Mapping[str, Any]) -> dict[str, Any]:
    """A rope dict with the legacy key "type" spelled "rope_type"."""
    d = dict(d)
    if "type" in d:
        d.setdefault("rope_type", d.pop("type"))
    return d


def _rope_from_hf(c: Mapping[str, Any]) -> tuple[float, RopeScaling | None]:
    """(rope_theta, scaling) from transformers 5 `rope_parameters` and/or legacy `rope_scaling`.

    A non-null `rope_scaling` wins, as in transformers 5 (so a YaRN line added to a folder that also
    has `rope_parameters` is not ignored); when both are given, any entry they both set must agree,
    or the folder is ambiguous and loading it is an error naming both.
    """
    params, legacy = c.get("rope_parameters"), c.get("rope_scaling")
    if isinstance(params, Mapping) and isinstance(legacy, Mapping) and params and legacy:
        a, b = _rope_entries(params), _rope_entries(legacy)
        clash = sorted(k for k in set(a) & set(b) if a[k] != b[k])
        if clash:
            raise ValueError(
                f"config.json rope_parameters={dict(params)} and rope_scaling={dict(legacy)} "
                f"disagree on {clash}; transformers 5 would use rope_scaling. Delete the wrong one."
            )
    p = _rope_entries(legacy or params or {})
    theta = float(p.get("rope_theta", c.get("rope_theta", 10000.0)))
    kind = p.get("rope_type", "default")
    if float(p.get("partial_rotary_factor", c.get("partial_rotary_factor", 1.0))) != 1.0:
        raise ValueError("config.json partial_rotary_factor != 1 is not supported by r1jax.")
    if kind == "default":
        return theta, None
    if kind != "llama3":
        raise ValueError(
            f"config.json rope type {kind!r} is not supported; r1jax implements 'default' and "
            "'llama3' rotary embeddings."
        )
    return theta, RopeScaling(
        factor=float(p["factor"]),
        low_freq_factor=float(p["low_freq_factor"]),
        high_freq_factor=float(p["high_freq_factor"]),
        original_max_position=int(p["original_max_position_embeddings"]),
    )


def config_from_hf(
    config_json: Mapping[str, Any],
    dtype: str = "float32",
    param_dtype: str | None = None,
    max_len: int | None = None,
    remat: bool = False,
    **options: Any,
) -> ModelConfig:
    """The r1jax ModelConfig of a Qwen2 or Llama config.json; anything r1jax cannot run is an error.

    `options` are further ModelConfig fields that config.json does not decide (`scan_layers`,
    `remat_policy`).

    Qwen2 always has q/k/v biases (hard-coded in transformers); Llama's `attention_bias` would also
    add an o_proj bias, which r1jax lacks, so it is refused rather than silently dropped.
    """
    c = dict(config_json)
    kind = c.get("model_type")
    if kind not in ARCHITECTURES:
        raise ValueError(
            f"config.json model_type={kind!r} (architectures={c.get('architectures')}) is not "
            f"supported; r1jax imports {sorted(ARCHITECTURES)}."
        )
    if c.get("hidden_act", "silu") != "silu":
        raise ValueError(f"config.json hidden_act={c['hidden_act']!r}; r1jax only has silu.")
    if kind == "llama":
        for key in ("attention_bias", "mlp_bias"):
            if c.get(key):
                raise ValueError(
                    f"config.json {key}=true is not supported by r1jax (no such bias)."
                )
    elif c.get("use_sliding_window"):
        raise ValueError("config.json use_sliding_window=true is not supported by r1jax.")
    theta, scaling = _rope_from_hf(c)
    d, n = int(_need(c, "hidden_size")), int(_need(c, "num_attention_heads"))
    return ModelConfig(
        vocab_size=int(_need(c, "vocab_size")),
        d_model=d,
        n_layers=int(_need(c, "num_hidden_layers")),
        n_heads=n,
        n_kv_heads=int(c.get("num_key_value_heads") or n),
        head_dim=int(c.get("head_dim") or d // n),
        mlp_dim=int(_need(c, "intermediate_size")),
        rope_theta=theta,
        rope_scaling=scaling,
        norm_eps=float(c.get("rms_norm_eps", 1e-6)),
        qkv_bias=kind == "qwen2",
        tie_embeddings=bool(c.get("tie_word_embeddings", False)),
        max_len=int(max_len or c.get("max_position_embeddings") or 4096),
        dtype=dtype,
        param_dtype=param_dtype or dtype,
        remat=remat,
        **options,
    )


def hf_tensors(cfg: ModelConfig) -> list[HFTensor]:
    """Every r1jax parameter with its HF name and layout, in HF's order."""
    d, n, k, h = cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
    f, v = cfg.mlp_dim, cfg.vocab_size
    same = lambda path, name, shape: HFTensor(path, name, shape, shape, tuple(range(len(shape))))
    # a Linear's [out, in] weight -> r1jax's [in, out]
    t2 = lambda path, name, a, b: HFTensor(path, name, (a, b), (a, b), (1, 0))
    out = [same(("embed",), "model.embed_tokens.weight", (v, d))]
    for i in range(cfg.n_layers):
        p, a, m = f"model.layers.{i}.", ("layers", i, "attn"), ("layers", i, "mlp")
        for x, heads in (("q", n), ("k", k), ("v", k)):  # [M*H, D] -> [D, M, H]
            name = f"{p}self_attn.{x}_proj.weight"
            out.append(HFTensor(a + (f"{x}_proj",), name, (heads * h, d), (heads, h, d), (2, 0, 1)))
        name = f"{p}self_attn.o_proj.weight"  # [D, N*H] -> [N, H, D]
        out.append(HFTensor(a + ("o_proj",), name, (d, n * h), (d, n, h), (1, 2, 0)))
        for x, heads in (("q", n), ("k", k), ("v", k)) if cfg.qkv_bias else ():  # [M*H] -> [M, H]
            name = f"{p}self_attn.{x}_proj.bias"
            out.append(HFTensor(a + (f"{x}_bias",), name, (heads * h,), (heads, h), (0, 1)))
        out += [
            t2(m + ("gate_proj",), f"{p}mlp.gate_proj.weight", f, d),
            t2(m + ("up_proj",), f"{p}mlp.up_proj.weight", f, d),
            t2(m + ("down_proj",), f"{p}mlp.down_proj.weight", d, f),
            same(("layers", i, "attn_norm", "scale"), f"{p}input_layernorm.weight", (d,)),
            same(("layers", i, "mlp_norm", "scale"), f"{p}post_attention_layernorm.weight", (d,)),
        ]
    out.append(same(("final_norm", "scale"), "model.norm.weight", (d,)))
    if not cfg.tie_embeddings:
        out.append(t2(("lm_head",), "lm_head.weight", v, d))
    return out


def _check_names(specs: list[HFTensor], files: Mapping[str, str], cfg: ModelConfig) -> None:
    """Missing and unexpected tensors are errors before any weight is read."""
    wanted = {s.name for s in specs}
    missing = [s.name for s in specs if s.name not in files]
    if missing:
        raise ValueError(
            f"checkpoint lacks tensor {missing[0]!r} ({len(missing)} missing in all) that config.json "
            "implies."
        )
    tied_copy = "lm_head.weight" if cfg.tie_embeddings else None  # some tied checkpoints keep one
    extra = [
        n for n in files if n not in wanted and not n.endswith(_IGNORED_SUFFIXES) and n != tied_copy
    ]
    if extra:
        raise ValueError(
            f"unexpected tensor {extra[0]!r} in {os.path.basename(files[extra[0]])} ({len(extra)} "
            "unexpected in all): r1jax has no parameter for it; check config.json."
        )


def _set(tree: dict, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def _get(tree: Any, path: tuple) -> Any:
    """The leaf at an unrolled path ("layers", i, ...); a stacked tree gives layer i's slice."""
    if len(path) > 2 and path[0] == "layers" and isinstance(path[1], int) and is_stacked(tree):
        return _get(tree["layers"], path[2:])[path[1]]
    for key in path:
        tree = tree[key]
    return tree


def abstract_model(cfg: ModelConfig) -> tuple[nnx.GraphDef, dict, dict]:
    """(graphdef, param ShapeDtypeStructs, param logical names) without allocating any weight."""
    with nnx.use_eager_sharding(False):
        abstract = nnx.eval_shape(lambda: Transformer(cfg, nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    return graphdef, nnx.to_pure_dict(state), sharding.param_names(state)


def load_hf(
    folder: str,
    mesh: Any,
    rules: sharding.Rules,
    dtype: str = "float32",
    param_dtype: str | None = None,
    max_len: int | None = None,
    remat: bool = False,
    **options: Any,
) -> tuple[nnx.GraphDef, dict, ModelConfig]:
    """Loads a Qwen2 / Llama folder straight into its shards: (graphdef, params, model_cfg).

    `dtype` is the compute dtype, `param_dtype` (default: `dtype`) the storage dtype the weights are
    cast to. Sharding follows `rules` exactly as `api.create` would shard a fresh model. With
    `scan_layers=True` (in `options`, see `config_from_hf`) the layers are read one by one as
    usual, then stacked parameter by parameter.
    """
    cfg = config_from_hf(read_config(folder), dtype, param_dtype, max_len, remat, **options)
    graphdef, shapes, names = abstract_model(dataclasses.replace(cfg, scan_layers=False))
    shardings = sharding.tree_shardings(shapes, names, mesh, rules)
    specs = hf_tensors(cfg)
    files = weight_map(folder)
    _check_names(specs, files, cfg)
    target = np.dtype(cfg.weight_dtype)
    params: dict = {}
    for spec in specs:
        path = files[spec.name]
        w = read_tensor(path, spec.name)  # opened per tensor: pages released after
        if w.dtype.kind in "biuc":  # bfloat16 (an ml_dtypes type) has kind "V"
            raise ValueError(
                f"tensor {spec.name!r} in {path} has dtype {w.dtype}; r1jax loads floating-point "
                "weights only (a quantized checkpoint? dequantize it to float first)."
            )
        if tuple(w.shape) != spec.hf_shape:
            raise ValueError(
                f"tensor {spec.name!r} in {os.path.basename(path)} has shape {tuple(w.shape)} but "
                f"config.json implies {spec.hf_shape}."
            )
        view = spec.to_r1jax(w)
        expect = _get(shapes, spec.path)
        assert view.shape == expect.shape, (spec.name, view.shape, expect.shape)
        arr = jax.make_array_from_callback(
            view.shape,
            _get(shardings, spec.path),
            lambda idx, view=view: np.ascontiguousarray(view[idx], dtype=target),
        )
        _set(params, spec.path, arr)
        del w, view
    if cfg.scan_layers:
        graphdef, stacked, stacked_names = abstract_model(cfg)
        target = sharding.tree_shardings(stacked, stacked_names, mesh, rules)["layers"]
        params = stack_layers_sharded(params, target)
    return graphdef, params, cfg
