"""The pipeline's compilation cache (stages/compile_cache.py): on by default under the workdir,
inherited by the stage processes, and never over a cache the user chose.

Each case runs in a fresh interpreter: JAX's cache settings are process-wide, and the test suite's
own processes already use the suite's shared cache (tests/conftest.py), which `use` must leave
alone.
"""

import os
import subprocess
import sys
import textwrap

import pytest

from r1jax import config_base

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# compiles one program here, then one in a child process that inherits the environment
SCRIPT = textwrap.dedent(
    """
    import os, subprocess, sys
    import jax, jax.numpy as jnp
    from r1jax.stages import compile_cache
    jax.jit(lambda x: x * 3)(jnp.ones(3)).block_until_ready()  # a compile before the call
    print("path", compile_cache.use(sys.argv[1], sys.argv[2]))
    jax.jit(lambda x: jnp.sin(x) + 2)(jnp.ones(5)).block_until_ready()
    child = "import jax, jax.numpy as jnp; jax.jit(lambda x: jnp.cos(x) * 7)(jnp.ones(4))"
    subprocess.run([sys.executable, "-c", child], check=True)
    """
)


def _run(tmp_path, folder: str, env_cache: str | None) -> tuple[str, list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    env.update(PYTHONPATH=ROOT, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    if env_cache is not None:
        env["JAX_COMPILATION_CACHE_DIR"] = env_cache
    workdir = str(tmp_path / "run")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, folder, workdir],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cache = os.path.join(workdir, "jax_cache")
    return out.split("path ")[1].strip(), sorted(os.listdir(cache)) if os.path.isdir(cache) else []


def test_pipeline_default_is_a_cache_under_the_workdir():
    assert config_base.pipeline().compile_cache == "jax_cache"


def test_stages_and_their_processes_share_the_workdir_cache(tmp_path):
    path, entries = _run(tmp_path, "jax_cache", None)
    assert path == str(tmp_path / "run" / "jax_cache")
    # the program compiled after the call (this process) and the child's; not the one before
    assert any(e.startswith("jit__lambda-") for e in entries)
    assert len([e for e in entries if e.startswith("jit__lambda-")]) == 2, entries


@pytest.mark.parametrize("folder, env_cache", [("", None), ("jax_cache", "USER")])
def test_off_or_a_user_cache_changes_nothing(tmp_path, folder, env_cache):
    user = str(tmp_path / "user_cache") if env_cache else None
    path, entries = _run(tmp_path, folder, user)
    assert path == "None" and entries == []
    if user:  # the user's cache got the programs instead
        assert len([e for e in os.listdir(user) if e.startswith("jit__lambda-")]) == 3


def test_a_cache_configured_in_the_process_reaches_the_stage_processes(tmp_path):
    user = str(tmp_path / "configured")
    script = SCRIPT.replace(
        "from r1jax.stages import compile_cache",
        f"from r1jax.stages import compile_cache; jax.config.update('jax_compilation_cache_dir', {user!r})",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    env.update(PYTHONPATH=ROOT, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    workdir = str(tmp_path / "run")
    out = subprocess.run(
        [sys.executable, "-c", script, "jax_cache", workdir],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "path None" in out and not os.path.exists(os.path.join(workdir, "jax_cache"))
    # all three programs, the child's included, went to the configured cache
    assert len([e for e in os.listdir(user) if e.startswith("jit__lambda-")]) == 3
