"""Rewards are registered by name and built from strings with call syntax.

    config.rewards = ("countdown_accuracy", "format(weight=0.5)", "language_consistency(lang='en')")

`build(specs)` turns such strings into `Reward`s. The string's arguments are parsed with `ast` as
literals only (never evaluated), and `weight` is taken by the registry, not passed to the factory.

A reward is a host function over decoded completions and their examples, returning one float per
completion in its declared range, or NaN where the completion cannot be scored (the advantage code
gives NaN rewards advantage 0 and counts them). A reward that can be written in `jax.numpy` over token
ids also carries `jax_fn`, which lets the GRPO step fuse sampling, reward and update in one program;
a reward with state (a reward model) carries `jax_stateful` instead, whose state travels through the
fused program as an argument and comes back updated.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from r1jax.config_check import ConfigError

# host form: (completions, examples) -> float32 [N]; examples are dicts with at least
# "task", "question", "answer" and "ground_truth" (a dict, already decoded from JSON).
HostFn = Callable[[Sequence[str], Sequence[Mapping[str, Any]]], np.ndarray]


class StatefulJax(Protocol):
    """A jittable reward that carries state across steps (a reward model's parameters and the
    running statistics that normalise its scores). The state is an argument of the fused program,
    not a constant of it, so that updated parameters (replay) need no recompilation."""

    def place(self, mesh: Any, rules: Any) -> None:
        """Lays the state out on the policy's mesh (once, before the fused step is built)."""

    def state(self) -> dict:
        """The current state, as device arrays (passed into the fused step)."""

    def jax_call(self, state: dict, tokens_NxT, mask_NxT, targets: dict, vt: Any) -> tuple:
        """Traceable: (reward [N] float32, what changed: the part of the state `absorb` takes)."""

    def absorb(self, state: dict) -> None:
        """Takes the new state the fused step returned (host side)."""

    def fuse_problem(self, policy_tokenizer: Any) -> str | None:
        """One line saying why this reward cannot run on the policy's token ids, or None."""


@dataclasses.dataclass(frozen=True)
class Reward:
    """One named reward term: host function, declared range, weight, optional jittable form."""

    name: str
    fn: HostFn
    low: float
    high: float
    weight: float = 1.0
    # jittable form: (tokens_NxT int32, mask_NxT bool, targets: dict of [N, ...] arrays) -> [N] f32
    jax_fn: Callable[..., Any] | None = None
    # names of the per-example target arrays jax_fn needs (built on the host by `targets_fn`)
    targets_fn: Callable[[Sequence[Mapping[str, Any]], Any], dict] | None = None
    # a jittable form with state (a reward model: its parameters and running statistics), see
    # `StatefulJax`; the fused step passes the state in and hands the new state back
    jax_stateful: StatefulJax | None = None

    def fuse_problem(self, tokenizer: Any = None) -> str | None:
        """Why this reward cannot run inside the fused step on `tokenizer`'s ids, or None."""
        if self.jax_stateful is not None:
            return None if tokenizer is None else self.jax_stateful.fuse_problem(tokenizer)
        return None if self.jax_fn is not None else f"reward {self.name} has no jittable form"

    def __call__(
        self, completions: Sequence[str], examples: Sequence[Mapping[str, Any]]
    ) -> np.ndarray:
        out = np.asarray(self.fn(completions, examples), dtype=np.float32)
        if out.shape != (len(completions),):
            raise ValueError(
                f"reward {self.name} returned shape {out.shape}, want ({len(completions)},)"
            )
        return out


_REGISTRY: dict[str, Callable[..., Reward]] = {}


def register(name: str) -> Callable[[Callable[..., Reward]], Callable[..., Reward]]:
    """Decorator: `@register("format")` on a factory `(**kwargs) -> Reward`."""

    def deco(factory: Callable[..., Reward]) -> Callable[..., Reward]:
        if name in _REGISTRY:
            raise ValueError(f"reward {name!r} registered twice")
        _REGISTRY[name] = factory
        return factory

    return deco


def names() -> list[str]:
    _import_all()
    return sorted(_REGISTRY)


def parse(spec: str) -> tuple[str, dict[str, Any]]:
    """'name(a=1, b="x")' -> ('name', {'a': 1, 'b': 'x'}); literals only, keyword arguments only."""
    try:
        node = ast.parse(spec.strip(), mode="eval").body
    except SyntaxError as e:
        raise ConfigError(f"reward spec {spec!r} is not 'name' or 'name(key=value, ...)': {e.msg}")
    if isinstance(node, ast.Name):
        return node.id, {}
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)) or node.args:
        raise ConfigError(f"reward spec {spec!r} must be 'name' or 'name(key=value, ...)'.")
    kwargs = {}
    for kw in node.keywords:
        try:
            kwargs[kw.arg] = ast.literal_eval(kw.value)
        except ValueError:
            raise ConfigError(f"reward spec {spec!r}: argument {kw.arg} must be a literal.")
    return node.func.id, kwargs


def build(specs: Sequence[str]) -> list[Reward]:
    """Builds the configured rewards; an unknown name or argument is a one-line error."""
    _import_all()
    out = []
    for spec in specs:
        name, kwargs = parse(spec)
        if name not in _REGISTRY:
            raise ConfigError(
                f"unknown reward {name!r} in config.rewards; known: {sorted(_REGISTRY)}."
            )
        try:
            weight = float(kwargs.pop("weight", 1.0))
            reward = _REGISTRY[name](**kwargs)
        except (TypeError, ValueError) as e:  # bad argument names or values
            raise ConfigError(f"reward spec {spec!r}: {e}") from None
        out.append(dataclasses.replace(reward, weight=weight))
    return out


def _import_all() -> None:
    """Imports every reward module so that their @register decorators run."""
    import importlib
    import pkgutil

    import r1jax.rewards as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name != "registry":
            importlib.import_module(f"r1jax.rewards.{mod.name}")
