"""Test set-up: 8 simulated CPU devices for every test, strict rank promotion, shared tiny model, and
a guard that fails any test during which XLA compiles an involuntary full rematerialization.

XLA_FLAGS must be set before jax is imported anywhere, which is why it lives here. Single-device
tests build a (1, 1, 1) mesh on `jax.devices()[:1]`; sharding tests use all 8.
"""

import os
import tempfile

# One persistent compilation cache for the whole run, shared by the in-process tests, both xdist
# workers and every subprocess a test starts (they inherit the environment): a program that several
# tests compile (the tiny experiments, a killed run and its resume, the stages of the tiny pipeline)
# compiles once. Cached executables are XLA's own, so no result changes. Set either variable to
# choose another place or threshold.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "r1jax_test_jax_cache")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
# This process logs XLA's warnings (the rematerialization guard below reads them); the level is read
# when the backend starts, so it is set back for the subprocesses tests start, which stay quiet.
_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "1"

import jax  # noqa: E402
import pytest  # noqa: E402

jax.devices()
os.environ["TF_CPP_MIN_LOG_LEVEL"] = _LOG_LEVEL

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


REMAT = "Involuntary full rematerialization"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A test whose compiles make XLA replicate a whole tensor to reshard it fails (issue 13).

    XLA logs "[SPMD] Involuntary full rematerialization" on stderr while compiling; pytest's fd
    capture (the default) holds that text, so every multi-device test is checked without asking.
    """
    outcome = yield
    report = outcome.get_result()
    if report.when in ("setup", "call") and report.passed and REMAT in report.capstderr:
        lines = [ln for ln in report.capstderr.splitlines() if REMAT in ln]
        report.outcome = "failed"
        report.longrepr = f"XLA compiled {len(lines)} involuntary full rematerialization(s):\n" + (
            "\n".join(ln[:600] for ln in lines[:3])
        )
