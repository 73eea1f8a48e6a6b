"""The model's hyper-parameters as one frozen dataclass.

Only the stage runner reads the ml-collections config; it builds a `ModelConfig` from `config.model`
(`ModelConfig.from_dict`) and hands that to the model, the sampler and the checkpoint code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
# jax.checkpoint_policies by name: what a rematerialised layer keeps from its forward pass.
REMAT_POLICIES = (
    "nothing_saveable",  # keep only the layer input: least memory, one extra forward
    "dots_saveable",  # keep every matmul output: the elementwise ops are recomputed
    "dots_with_no_batch_dims_saveable",  # keep the weight matmuls, recompute attention scores
    "everything_saveable",  # keep all (remat off, but through the same code path)
)

ATTENTION_KERNELS = ("blocked", "cudnn")  # see ModelConfig's docstring


@dataclasses.dataclass(frozen=True)
class RopeScaling:
    """Llama-3 style frequency-dependent rope scaling (`rope_type: llama3` in HF config.json)."""

    factor: float = 8.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position: int = 8192


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """A decoder-only Llama/Qwen2-family transformer.

    `head_dim` defaults to d_model // n_heads. `dtype` is the compute dtype (activations, matmuls);
    `param_dtype` the storage dtype of the parameters. Norms, softmax and logits are always float32.

    `scan_layers` stores the layers' parameters stacked on a leading axis and runs them with one
    `jax.lax.scan` (compile time flat in depth; `model/layers.py` converts between the layouts).
    `remat` recomputes each layer's activations in the backward pass; `remat_policy` names what it
    keeps (`REMAT_POLICIES`).

    `attention` picks the kernel of the uncached calls (training, reference and log-prob forwards):
    "blocked" (any device; causal query blocks, tuned on the CPU) or "cudnn" (a CUDA GPU with a
    16-bit compute dtype: the fused flash kernel through `jax.nn.dot_product_attention`, which keeps
    no [T, S] score tensor). Cached calls (prefill into a cache, decode) always use "blocked".
    "cudnn" ran on an H200 (2026-12-04): its bf16 logits and gradients are as close to blocked
    float32 as blocked bf16's, and the train step took 0.65x the blocked kernel's time at 39 GiB
    against 90 (two runs, README, Performance); its mask is tested on the CPU ("xla" kernel).
    """

    vocab_size: int = 512
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int = 2
    head_dim: int = 0
    mlp_dim: int = 688
    rope_theta: float = 10000.0
    rope_scaling: RopeScaling | None = None
    norm_eps: float = 1e-6
    qkv_bias: bool = False
    tie_embeddings: bool = False
    max_len: int = 512
    dtype: str = "float32"
    param_dtype: str = "float32"
    remat: bool = False
    remat_policy: str = "nothing_saveable"
    scan_layers: bool = False
    attention: str = "blocked"

    def __post_init__(self):
        if self.head_dim == 0:
            if self.d_model % self.n_heads:
                raise ValueError(
                    f"model.d_model={self.d_model} is not divisible by model.n_heads={self.n_heads}; "
                    "set model.head_dim explicitly or change one of them."
                )
            object.__setattr__(self, "head_dim", self.d_model // self.n_heads)
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"model.n_heads={self.n_heads} must be a multiple of model.n_kv_heads={self.n_kv_heads} "
                "(grouped-query attention shares each kv head among n_heads // n_kv_heads query heads)."
            )
        if self.head_dim % 2:
            raise ValueError(f"model.head_dim={self.head_dim} must be even for rotary embeddings.")
        if self.remat_policy not in REMAT_POLICIES:
            raise ValueError(
                f"model.remat_policy={self.remat_policy!r} is not one of {list(REMAT_POLICIES)}."
            )
        if self.attention not in ATTENTION_KERNELS:
            raise ValueError(
                f"model.attention={self.attention!r} is not one of {list(ATTENTION_KERNELS)}."
            )
        if self.attention == "cudnn" and (
            self.dtype == "float32" or self.head_dim % 8 or self.head_dim > 128
        ):
            raise ValueError(
                f"model.attention='cudnn' needs model.dtype bfloat16 or float16 and a head_dim that "
                f"is a multiple of 8 up to 128 (got {self.dtype}, {self.head_dim}); "
                "use model.attention='blocked'."
            )
        for name in ("dtype", "param_dtype"):
            if getattr(self, name) not in _DTYPES:
                raise ValueError(
                    f"model.{name}={getattr(self, name)!r} is not one of {sorted(_DTYPES)}."
                )

    @property
    def compute_dtype(self) -> Any:
        return _DTYPES[self.dtype]

    @property
    def weight_dtype(self) -> Any:
        return _DTYPES[self.param_dtype]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelConfig:
        """Builds from a plain mapping (a ConfigDict's `to_dict()`); unknown keys are an error."""
        d = dict(d)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(
                f"unknown model config key(s) {unknown}; valid keys are {sorted(names)}."
            )
        scaling = d.get("rope_scaling")
        if scaling is not None and not isinstance(scaling, RopeScaling):
            d["rope_scaling"] = RopeScaling(**dict(scaling))
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def num_params(self) -> int:
        """Parameter count (embedding and head included)."""
        d, h, k, hd, m = self.d_model, self.n_heads, self.n_kv_heads, self.head_dim, self.mlp_dim
        attn = d * (h + 2 * k) * hd + h * hd * d + (self.qkv_bias * (h + 2 * k) * hd)
        layer = attn + 3 * d * m + 2 * d
        head = 0 if self.tie_embeddings else d * self.vocab_size
        return self.vocab_size * d + self.n_layers * layer + d + head

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token (forward + backward = 3x forward), attention included.

        The matmul FLOPs of the non-embedding parameters and the head, 2 per multiply-add, plus the
        causal attention score/value products (2 * 2 * T/2 * n_heads * head_dim per layer, forward).
        """
        d, h, k, hd, m = self.d_model, self.n_heads, self.n_kv_heads, self.head_dim, self.mlp_dim
        matmul_params = self.n_layers * (d * (h + 2 * k) * hd + h * hd * d + 3 * d * m)
        matmul_params += d * self.vocab_size
        attn = self.n_layers * 2 * seq_len * h * hd  # QK^T and AV over ~T/2 keys, 2 flops each
        return 3 * (2 * matmul_params + attn)
