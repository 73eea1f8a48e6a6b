"""GRPO: advantages, the pure loss, per-token log-probs and the jitted training step."""
