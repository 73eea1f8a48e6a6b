"""Reinforcement learning: group advantages, the pure GRPO loss, per-token log-probs, the update,
rollouts (sample -> reward -> update, fused or split) and dynamic sampling.

May import: sampling, rewards, data, train, model, tokenizers, text, parallel. Never eval or stages.
"""
