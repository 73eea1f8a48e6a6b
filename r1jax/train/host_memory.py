"""Compile a program ahead of its first run and hand the compiler's freed heap back to the OS.

Why: on Linux, glibc keeps memory that a process freed in its own heap instead of returning it.
Compiling the GRPO update on XLA's CPU backend allocates and frees a few hundred MiB (LLVM), and
the program's temporaries (the activations kept for the backward pass) are then allocated on top:
the process's peak resident memory is compile garbage + temporaries. `CompileFirst` wraps a jitted
function: on the first call with a new input signature it compiles ahead of time
(`jit.lower(...).compile()`), trims the heap (`malloc_trim`), then calls the function, which runs
the executable just compiled (jax caches it: no second compile, which `tests/test_compile_count.py`
checks). The numbers are the same program's; only the peak memory drops. Measured in the shared
peer benchmark's GRPO step (README, "Speed"). Elsewhere than glibc the trim is a no-op.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import threading
from collections.abc import Callable
from typing import Any

import jax


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim  # glibc only
    except (OSError, AttributeError):
        return None


def release_freed_heap() -> bool:
    """Returns the heap's free pages to the OS (glibc `malloc_trim(0)`); False where unavailable."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False


def _signature(args: tuple) -> tuple:
    """The tree and each leaf's shape and dtype: what changes between calls of a step function.

    Runs on every call, so it reads nothing slower (a leaf's `sharding` costs 13x as much over a
    train state). A signature it misses (same shapes, another sharding) only makes jit compile
    inside the call, as without the wrapper: the same result, without the trim first."""
    leaves, tree = jax.tree.flatten(args)
    return tree, tuple((x.shape, x.dtype) if hasattr(x, "shape") else type(x) for x in leaves)


class CompileFirst:
    """A jitted function that compiles ahead of each new input signature's first call, then
    releases the compiler's freed heap before running (see the module docstring).

    `compile_in_background` starts a signature's compile on a thread from abstract arguments
    (`jax.ShapeDtypeStruct`s with their shardings), so that it overlaps other work (the GRPO
    step compiles its update while the sampler compiles and runs); the first call with that
    signature waits for it. Attribute access (`.lower`, ...) goes to the wrapped function."""

    def __init__(self, jitted: Any):
        self.jitted = jitted
        self._seen: set = set()
        self._pending: dict = {}  # signature -> (thread, [error])

    def compile_in_background(
        self,
        *args: Any,
        context: Callable[[], Any] = contextlib.nullcontext,
    ) -> bool:
        """Starts compiling for `args`' signature on a daemon thread; False when it is compiled
        or compiling already. `context` is entered on the thread (e.g. `jax.set_mesh`, which is
        per thread). If it fails, the first call compiles as it would have without it (and raises
        what that compile raises)."""
        key = _signature(args)
        if key in self._seen or key in self._pending:
            return False
        error: list = []

        def work() -> None:
            try:
                with context():
                    self.jitted.lower(*args).compile()
            except Exception as e:  # noqa: BLE001 - kept; the first call then compiles itself
                error.append(e)

        thread = threading.Thread(target=work, name="r1jax-compile", daemon=True)
        self._pending[key] = (thread, error)
        thread.start()
        return True

    def ensure_compiled(self, *args: Any) -> None:
        """What a call does before running: compiles for `args`' signature unless done (waiting
        for a background compile of it), then releases the freed heap. Lets callers that run
        the function from several threads at once compile it once first."""
        key = _signature(args)
        if key not in self._seen:
            pending = self._pending.pop(key, None)
            if pending is not None:
                pending[0].join()
            if pending is None or pending[1]:  # none started, or it failed: compile here
                self.jitted.lower(*args).compile()
            release_freed_heap()
            self._seen.add(key)

    def __call__(self, *args: Any) -> Any:
        self.ensure_compiled(*args)
        return self.jitted(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.jitted, name)
