"""Test set-up: 8 simulated CPU devices for every test, strict rank promotion, shared tiny model.

XLA_FLAGS must be set before jax is imported anywhere, which is why it lives here. Single-device
tests build a (1, 1, 1) mesh on `jax.devices()[:1]`; sharding tests use all 8.
"""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_default_matmul_precision", "highest")


@pytest.fixture(scope="session")
def one_device_mesh():
    from r1jax.parallel import sharding

    return sharding.make_mesh((1, 1, 1), jax.devices()[:1])


@pytest.fixture(scope="session")
def tiny_model_cfg():
    from r1jax.model import ModelConfig

    return ModelConfig(
        vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, mlp_dim=48, max_len=64
    )
