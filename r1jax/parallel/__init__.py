"""Parallelism: the device mesh from the config, logical-axis rules, sharded init and
`jax.distributed` with per-process rows of the batch.

May import: nothing in r1jax except config_check (errors).
"""
