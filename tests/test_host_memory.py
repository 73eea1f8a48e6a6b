"""CompileFirst compiles each input signature once (ahead of its run) and returns the same numbers."""

import contextlib
import sys
import threading

import jax
import jax.numpy as jnp
import numpy as np
from jax import monitoring

from r1jax.train import host_memory

# one event per program, whether XLA compiled it or the persistent cache held it (on a cache hit
# jax reports the hit and this duration both)
EVENTS: list[str] = []
THREADS: list[str] = []  # the thread each of those compiles ran on
monitoring.register_event_duration_secs_listener(
    lambda name, _secs, **_: (
        (EVENTS.append(name), THREADS.append(threading.current_thread().name))
        if name == "/jax/core/compile/backend_compile_duration"
        else None
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


def _f(x, y):
    return jnp.sin(x @ y).sum(axis=1) - 0.5


def test_compile_in_background_is_the_only_compile_and_gives_the_same_result():
    wrapped = host_memory.CompileFirst(jax.jit(_f))
    # committed arrays (placed on a device, as the train state and the sampler's outputs are): an
    # abstract argument with a sharding stands for a committed array, not for a bare jnp.asarray
    dev = jax.devices()[0]
    x = jax.device_put(np.arange(15.0, dtype=np.float32).reshape(5, 3) / 11, dev)
    y = jax.device_put(np.ones((3, 2), np.float32), dev)
    abstract = [jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding) for a in (x, y)]
    before = len(EVENTS)
    assert wrapped.compile_in_background(*abstract) is True
    assert wrapped.compile_in_background(x, y) is False  # the same signature: already compiling
    out = jax.block_until_ready(wrapped(x, y))
    assert THREADS[before:] == ["r1jax-compile"]  # compiled once, on the thread
    np.testing.assert_array_equal(np.asarray(out), np.asarray(jax.jit(_f)(x, y)))
    assert wrapped.compile_in_background(*abstract) is False  # compiled: nothing to start


def test_a_failed_background_compile_leaves_the_call_to_compile_itself():
    @contextlib.contextmanager
    def broken():
        raise RuntimeError("no mesh here")
        yield

    wrapped = host_memory.CompileFirst(jax.jit(_f))
    x, y = jnp.ones((4, 3), jnp.float32), jnp.ones((3, 2), jnp.float32)
    assert wrapped.compile_in_background(x, y, context=broken) is True
    before = len(EVENTS)
    out = jax.block_until_ready(wrapped(x, y))
    assert THREADS[before:] == [threading.current_thread().name]
    np.testing.assert_allclose(np.asarray(out), np.sin(3.0) * 2 - 0.5, rtol=1e-6)


def test_release_reports_whether_it_could_trim():
    assert host_memory.release_freed_heap() is (sys.platform == "linux")
