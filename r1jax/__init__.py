"""r1jax: the DeepSeek-R1 recipe (GRPO, cold-start SFT, rejection sampling, distillation) in JAX."""

__version__ = "0.1.0"
