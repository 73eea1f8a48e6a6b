"""CompileFirst compiles each input signature once (ahead of its run) and returns the same numbers."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax import monitoring

from r1jax.train import host_memory

# one event per program, whether XLA compiled it or the persistent cache held it (on a cache hit
# jax reports the hit and this duration both)
EVENTS: list[str] = []
monitoring.register_event_duration_secs_listener(
    lambda name, _secs, **_: (
        EVENTS.append(name) if name == "/jax/core/compile/backend_compile_duration" else None
    )
)


def _count(fn) -> int:
    before = len(EVENTS)
    jax.block_until_ready(fn())
    return len(EVENTS) - before


def test_one_compile_per_signature_and_the_same_result():
    def f(x, y):
        return jnp.tanh(x @ y).sum(axis=0) * 1.2345

    wrapped = host_memory.CompileFirst(jax.jit(f))
    plain = jax.jit(f)
    x = np.arange(12.0, dtype=np.float32).reshape(3, 4) / 7
    y = np.ones((4, 5), np.float32)
    xj, yj = jnp.asarray(x), jnp.asarray(y)  # the inputs' own compiles happen here, not below
    assert _count(lambda: wrapped(xj, yj)) == 1  # compiled ahead, then run without recompiling
    x1 = jax.block_until_ready(xj + 1)
    assert _count(lambda: wrapped(x1, yj)) == 0  # new values, the same signature
    np.testing.assert_array_equal(np.asarray(wrapped(xj, yj)), np.asarray(plain(xj, yj)))
    x2 = jnp.ones((6, 4), jnp.float32)
    assert _count(lambda: wrapped(x2, yj)) == 1  # a new shape: one more program
    assert wrapped.lower(xj, yj).as_text() == plain.lower(xj, yj).as_text()  # attributes pass


def test_release_reports_whether_it_could_trim():
    assert host_memory.release_freed_heap() is (sys.platform == "linux")
