"""Host-side conveniences around `sampling.sample`: bucketed left padding and a jitted `Sampler`.

Letters: B prompts, P bucketed prompt length, N = B * G rows, T max new tokens.

Prompt lengths are rounded up to a bucket so that a stream of prompt batches compiles a handful of
programs, not one per longest prompt: `Sampler` compiles once per (B, P bucket, G, SamplingConfig),
and counts its compilations (`num_compilations`) so tests and logs can catch a recompile.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from r1jax.parallel import sharding
from r1jax.sampling import threads as threads_lib
from r1jax.sampling.sample import SampleOutput, SamplingConfig, sample


class Sampler:
    """`sample` jitted over a mesh, with explicit shardings, for callers outside a bigger jit.

    Params keep the shardings they were created with; prompts, keys-in and every output row are
    split over the rules' batch axes (B must be a multiple of `sharding.data_parallel_size`).
    Nothing is donated: params outlive the call, and no input has an output of its shape to alias.
    The KV cache, the one large buffer, lives inside the program and the while loop updates it in
    place (tests check the program's temporary memory).

    `threads` K > 1 runs a call as K parts of the prompts at once from K host threads
    (`threads.ThreadedSampler`: the same tokens) whenever the prompts split into K; 0 (auto)
    picks K with `threads.resolve` from this mesh (2 on a CPU host's one device, else 1).
    """

    def __init__(
        self,
        graphdef: nnx.GraphDef,
        param_shardings: Any,
        mesh: jax.sharding.Mesh,
        rules: sharding.Rules = sharding.DEFAULT_RULES,
        threads: int = 0,
    ):
        self.graphdef = graphdef
        self.mesh = mesh
        self.rules = tuple(rules)
        self.param_shardings = param_shardings
        self.threads = threads_lib.resolve(threads, None, mesh)  # batches split in __call__
        self.num_compilations = 0  # incremented at trace time: one trace per compiled program
        self._fns: dict[tuple[int, SamplingConfig], Any] = {}

    def _build(self, num_samples: int, cfg: SamplingConfig) -> tuple[Any, Any]:
        """(the one-call jitted sampler, its threaded form or None)."""
        rows = sharding.batch_sharding(self.mesh, self.rules, 1)  # a prefix for [N] and [N, T]
        prompts = sharding.batch_sharding(self.mesh, self.rules, 2)
        replicated = NamedSharding(self.mesh, PartitionSpec())

        def traced(params, prompt_BxP, valid_BxP, key, uniforms_TxN=None) -> SampleOutput:
            self.num_compilations += 1
            with nnx.logical_axis_rules(self.rules):
                return sample(
                    self.graphdef,
                    params,
                    prompt_BxP,
                    valid_BxP,
                    key,
                    num_samples,
                    cfg,
                    uniforms_TxN,
                )

        in_shardings = (self.param_shardings, prompts, prompts, replicated)
        whole = jax.jit(traced, in_shardings=in_shardings, out_shardings=rows)
        if self.threads < 2:
            return whole, None
        part = jax.jit(traced, in_shardings=(*in_shardings, replicated), out_shardings=rows)
        threaded = threads_lib.ThreadedSampler(
            part, whole, self.threads, num_samples, cfg.max_new_tokens, cfg.greedy, self.mesh
        )
        return whole, threaded

    def __call__(
        self,
        params: dict,
        prompt_BxP: np.ndarray | jax.Array,
        valid_BxP: np.ndarray | jax.Array,
        key: jax.Array,
        num_samples: int,
        cfg: SamplingConfig,
    ) -> SampleOutput:
        """G = num_samples completions per prompt; see `sampling.sample`."""
        ways = sharding.data_parallel_size(self.mesh, self.rules)
        if prompt_BxP.shape[0] % ways:
            raise ValueError(
                f"{prompt_BxP.shape[0]} prompts cannot be split {ways} ways over the mesh's batch "
                f"axes; pass a multiple of {ways} prompts (pad the batch with dummy prompts)."
            )
        fns = self._fns.get((num_samples, cfg))
        if fns is None:
            fns = self._fns[(num_samples, cfg)] = self._build(num_samples, cfg)
        whole, threaded = fns
        if threaded is not None and prompt_BxP.shape[0] % self.threads == 0:
            return threaded(params, prompt_BxP, valid_BxP, key)
        with jax.set_mesh(self.mesh):
            return whole(params, prompt_BxP, valid_BxP, key)
