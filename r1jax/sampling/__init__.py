"""Sampling: jitted prefill, the `lax.while_loop` decode over a donated KV cache, token filters
(temperature, top-k, top-p) with exact log-probs, and the `Sampler` with explicit shardings.

May import: model, parallel.
"""
