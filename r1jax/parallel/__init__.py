"""Parallelism: the device mesh from the config, logical-axis rules, sharded init (sharding.py),
`jax.distributed` start-up, cluster detection and peer failures (distributed.py), and which rows of
a global batch each process feeds and scores, with the gathers between hosts (rows.py).

May import: nothing in r1jax except config_check (errors).
"""
