"""The code sandbox: runs untrusted programs (model completions) in subprocesses with
rlimits, namespaces where available (else Landlock, seccomp and a uid drop), and a wall-clock kill.

runner.py: the supervisor; child.py: the launcher's side; isolation.py and probe.py: which mode and
protections work here, verified; confine.py: Landlock and seccomp; launch.py: one run's config;
process.py: reading and killing the child.

May import: nothing in r1jax outside this package (the child side imports only the standard library).
"""
