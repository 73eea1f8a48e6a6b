"""The optimizer: AdamW with warmup and a cosine/linear/constant schedule, and global-norm clipping.

Weight decay applies to matrices only (ndim >= 2): norm scales and biases are not decayed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import optax


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    lr: float = 1e-3
    warmup_steps: int = 100
    schedule: str = "cosine"
    end_lr_fraction: float = 0.1
    b1: float = 0.9
    b2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.1
    clip_norm: float = 1.0
    grad_accum: int = 1

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OptimizerConfig:
        return cls(**dict(d))


def schedule(cfg: OptimizerConfig, total_steps: int) -> Callable[[Any], Any]:
    """Learning rate per optimizer update: linear warmup, then the named decay."""
    warm = optax.linear_schedule(0.0, cfg.lr, max(cfg.warmup_steps, 1))
    rest = max(total_steps - cfg.warmup_steps, 1)
    end = cfg.lr * cfg.end_lr_fraction
    if cfg.schedule == "cosine":
        decay = optax.cosine_decay_schedule(cfg.lr, rest, alpha=cfg.end_lr_fraction)
    elif cfg.schedule == "linear":
        decay = optax.linear_schedule(cfg.lr, end, rest)
    elif cfg.schedule == "constant":
        decay = optax.constant_schedule(cfg.lr)
    else:
        raise ValueError(
            f"optimizer.schedule={cfg.schedule!r} is not one of 'cosine', 'linear', 'constant'."
        )
    if cfg.warmup_steps <= 0:
        return decay
    return optax.join_schedules([warm, decay], [cfg.warmup_steps])


def make(cfg: OptimizerConfig, total_steps: int) -> tuple[optax.GradientTransformation, Callable]:
    """(optax transformation, lr schedule)."""
    lr = schedule(cfg, total_steps)
    decay_mask = lambda params: jax.tree.map(lambda p: p.ndim >= 2, params)  # noqa: E731
    parts = []
    if cfg.clip_norm > 0:
        parts.append(optax.clip_by_global_norm(cfg.clip_norm))
    parts.append(
        optax.adamw(
            lr, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay, mask=decay_mask
        )
    )
    return optax.chain(*parts), lr
