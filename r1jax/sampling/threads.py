"""The sampler as K calls on K parts of the prompts, run at once from K host threads.

Why: on a CPU host a decode step multiplies ~64 rows by each weight matrix, and XLA:CPU spreads
each such small matmul over the cores with a synchronisation per op, well below its large-matmul
rate (`benchmarks/decode_floor.py`). K executions of the same program on K parts of the rows,
each called from its own thread, keep the cores busy with independent work instead: on the 2-core
VM the peer benchmark's sampler ran 1.24x faster in 2 threads than in one call (README). Dispatched
from one thread the same K calls run one after another (slower than one call: smaller matmuls).

Exactness: part i decodes prompts [i * B/K, (i + 1) * B/K) with the columns of the WHOLE batch's
uniforms (`filters.draw_uniforms(key, T, N)`) that belong to its rows, so every row gets the draws
it gets in one call; the tokens equal the one-call sampler's and the log-probs agree to float32
rounding (a matmul over fewer rows may round differently). tests/test_sampler_threads.py.

Used by the GRPO step (`rl.sampler_threads`) and by `sampler.Sampler` (evaluation, rejection
sampling, preference data); both default to 0, "auto" (`resolve`): threads on a CPU host only.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jax
import jax.numpy as jnp

from r1jax.sampling.filters import draw_uniforms
from r1jax.sampling.sample import SampleOutput
from r1jax.train.host_memory import CompileFirst

# what `0` ("auto") means on a CPU host: the one count measured to pay (README, 2-core VMs: 2
# threads 1.24-1.56x over one call, 4 threads 1.11x); more cores were never measured
AUTO_THREADS = 2


def resolve(requested: int, prompts: int | None, mesh: jax.sharding.Mesh) -> int:
    """The thread count to run: `requested` when it is > 0; for 0 ("auto") AUTO_THREADS on a CPU
    host's one device in one process with that many cores, when the prompts split evenly (None:
    a caller that checks each batch itself), else 1 (an accelerator's sampler is not limited by
    per-op synchronisation on a few cores)."""
    if requested > 0:
        return requested
    one_device = jax.process_count() == 1 and mesh.size == 1
    cpu_host = one_device and mesh.devices.flat[0].platform == "cpu"
    k = AUTO_THREADS
    if not cpu_host or _cores() < k or (prompts is not None and prompts % k):
        return 1
    return k


def _cores() -> int:
    """The cores this process may run on (macOS has no affinity call: all of them)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class ThreadedSampler:
    """Called as the one-call sampler, `(params, prompt_BxP, valid_BxP, key) -> SampleOutput`.

    `part` is the jitted sampler of one part, `(params, prompt, valid, key, uniforms_TxN) ->
    SampleOutput` (the key is used only when greedy, where no uniforms are drawn);
    `whole` the one-call jitted sampler, kept for `jitted` (the step takes the rollouts' abstract
    shapes from it: `jax.eval_shape`, nothing runs). `mesh` is entered on each thread (jax's mesh
    context is per thread). The part's program compiles once, before the threads start
    (`host_memory.CompileFirst`), and the threads run the compiled function itself. The calling
    thread runs part 0, a pool of K - 1 threads the others (one thread and one glibc heap arena
    fewer than a pool of K: peak RSS 890 against 916 MiB in the peer benchmark, README).
    """

    def __init__(
        self,
        part: Callable,
        whole: Any,
        threads: int,
        group: int,
        new_tokens: int,
        greedy: bool,
        mesh: jax.sharding.Mesh,
    ):
        if threads < 2:
            raise ValueError(f"ThreadedSampler needs >= 2 threads, got {threads}")
        self.part = part if isinstance(part, CompileFirst) else CompileFirst(part)
        self.jitted, self.threads = whole, threads
        self.group, self.new_tokens, self.greedy, self.mesh = group, new_tokens, greedy, mesh
        self._draw = jax.jit(draw_uniforms, static_argnums=(1, 2))
        # the calling thread runs part 0 itself: one thread (and glibc heap arena) fewer
        self._pool = ThreadPoolExecutor(threads - 1, thread_name_prefix="r1jax-sampler")

    def _run(self, args: tuple) -> SampleOutput:
        with jax.set_mesh(self.mesh):
            out = self.part.jitted(*args)  # compiled in __call__, before the threads start
            jax.block_until_ready(out.tokens_NxT)  # this thread executes it, not a later one
            return out

    def __call__(
        self, params: Any, prompt_BxP: jax.Array, valid_BxP: jax.Array, key: jax.Array
    ) -> SampleOutput:
        b, k = prompt_BxP.shape[0], self.threads
        if b % k:
            raise ValueError(f"{b} prompts do not split into {k} sampler threads; use a divisor")
        rows, n = b // k, b * self.group
        u_TxN = None if self.greedy else self._draw(key, self.new_tokens, n)
        parts = []
        for i in range(k):
            cut = slice(i * rows, (i + 1) * rows)
            cols = slice(i * rows * self.group, (i + 1) * rows * self.group)
            u_part = None if u_TxN is None else u_TxN[:, cols]
            parts.append((params, prompt_BxP[cut], valid_BxP[cut], key, u_part))
        with jax.set_mesh(self.mesh):  # the context the threads run it in (part of jit's key)
            self.part.ensure_compiled(*parts[0])  # the parts share one signature: one compile
        rest = [self._pool.submit(self._run, a) for a in parts[1:]]
        outs = [self._run(parts[0])] + [f.result() for f in rest]
        return jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=0), *outs)
