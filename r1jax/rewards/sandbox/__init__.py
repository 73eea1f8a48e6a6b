"""The code sandbox: runs untrusted programs (model completions) in subprocesses with
rlimits, namespaces where available, and a wall-clock kill.

May import: nothing in r1jax outside this package (the child side imports only the standard library).
"""
