"""Sampling: jitted prefill, the `lax.while_loop` decode over a donated KV cache, token filters
(temperature, top-k, top-p) with exact log-probs, the `Sampler` with explicit shardings, and the
sampler in host threads (threads.py).

May import: model, parallel, train (host_memory: a program compiled before the threads run it).
"""
