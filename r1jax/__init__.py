"""r1jax: the DeepSeek-R1 recipe in JAX. Today: the toy base model (pretrain), GRPO with verifiable
rewards (R1-Zero) and the R1-protocol evaluation; the later stages are being built (see README)."""

__version__ = "0.1.0"
