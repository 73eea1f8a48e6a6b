"""One persistent XLA compilation cache for a pipeline's stages (`config.compile_cache`).

Why: every stage runs in a fresh process (`workers` > 1) or after a stage that compiled other
shapes, and many stages compile the same programs: the eight `eval_<model>` stages sample the same
model shape with the same batch and length (about 16 s of compiling each on the 2-core VM), the RL
stages share their update and sampler shapes. With a cache on disk the second stage loads the
executable instead of compiling it. A loaded executable is the one XLA compiled for that exact
program, compiler version and options (JAX keys the cache by all of them), so no result changes:
the test suite has shared one cache across its processes since the start (tests/conftest.py).

The cache lives in the workdir (`<workdir>/jax_cache` by default), so it goes away with the run
and never outlives a change of JAX. A cache the user chose wins: when JAX_COMPILATION_CACHE_DIR is
set, or `jax_compilation_cache_dir` is already configured (then exported, so that the stage
processes use it too), nothing else is changed.
"""

from __future__ import annotations

import os

import jax
from jax.experimental.compilation_cache import compilation_cache

ENV = "JAX_COMPILATION_CACHE_DIR"


def use(folder: str, workdir: str) -> str | None:
    """Points this process and the stage processes it starts (they inherit the environment) at
    `folder` (relative: under `workdir`); returns the path, or None when it is off ("") or the
    user chose a cache already."""
    chosen = jax.config.jax_compilation_cache_dir
    if chosen and not os.environ.get(ENV):  # set in this process only: the stages share it too
        os.environ[ENV] = chosen
    if not folder or chosen or os.environ.get(ENV):
        return None
    path = os.path.abspath(os.path.join(workdir, folder))
    os.makedirs(path, exist_ok=True)
    os.environ[ENV] = path
    jax.config.update("jax_compilation_cache_dir", path)
    # JAX decides once per process whether a cache is in use (at its first compile): a process
    # that compiled before this call decides again
    compilation_cache.reset_cache()
    return path
