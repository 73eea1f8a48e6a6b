"""Reward functions, registered by name (see registry.py)."""

from r1jax.rewards.registry import Reward, build, names, parse, register

__all__ = ["Reward", "build", "names", "parse", "register"]
