"""Host-side conveniences around `sampling.sample`: bucketed left padding and a jitted `Sampler`.

Letters: B prompts, P bucketed prompt length, N = B * G rows, T max new tokens.

Prompt lengths are rounded up to a bucket so that a stream of prompt batches compiles a handful of
programs, not one per longest prompt: `Sampler` compiles once per (B, P bucket, G, SamplingConfig),
and counts its compilations (`num_compilations`) so tests and logs can catch a recompile.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from r1jax import sharding
from r1jax.sampling import SampleOutput, SamplingConfig, sample


def bucket_length(n: int, multiple: int = 0, minimum: int = 8, max_len: int = 0) -> int:
    """The padded length for a longest prompt of n tokens.

    multiple > 0: the next multiple of `multiple`; otherwise the next power of two >= `minimum`.
    max_len > 0 caps the bucket (a prompt longer than max_len is an error, never silently cut).
    """
    if n < 1:
        raise ValueError(f"every prompt needs at least one token (longest has {n}).")
    if max_len and n > max_len:
        raise ValueError(f"a prompt has {n} tokens, more than max_len={max_len}; shorten it.")
    if multiple > 0:
        length = -(-n // multiple) * multiple
    else:
        length = max(minimum, 1 << (n - 1).bit_length())
    return min(length, max_len) if max_len else length


def pad_prompts(
    prompts: Sequence[Sequence[int]],
    pad_id: int = 0,
    multiple: int = 0,
    minimum: int = 8,
    max_len: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Left-pads token-id lists to a bucketed length: (prompt_BxP int32, valid_BxP bool).

    Left padding keeps every row's last real token in the last column, which is where the sampler
    reads the first next-token distribution; positions come from the valid mask.
    """
    if not prompts:
        raise ValueError("pad_prompts needs at least one prompt.")
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token (got an empty one).")
    p = bucket_length(max(len(x) for x in prompts), multiple, minimum, max_len)
    prompt_BxP = np.full((len(prompts), p), pad_id, np.int32)
    valid_BxP = np.zeros((len(prompts), p), bool)
    for i, ids in enumerate(prompts):
        prompt_BxP[i, p - len(ids) :] = np.asarray(ids, np.int32)
        valid_BxP[i, p - len(ids) :] = True
    return prompt_BxP, valid_BxP


class Sampler:
    """`sample` jitted over a mesh, with explicit shardings, for callers outside a bigger jit.

    Params keep the shardings they were created with; prompts, keys-in and every output row are
    split over the rules' batch axes (B must be a multiple of `sharding.data_parallel_size`).
    Nothing is donated: params outlive the call, and no input has an output of its shape to alias.
    The KV cache, the one large buffer, lives inside the program and the while loop updates it in
    place (tests check the program's temporary memory).
    """

    def __init__(
        self,
        graphdef: nnx.GraphDef,
        param_shardings: Any,
        mesh: jax.sharding.Mesh,
        rules: sharding.Rules = sharding.DEFAULT_RULES,
    ):
        self.graphdef = graphdef
        self.mesh = mesh
        self.rules = tuple(rules)
        self.param_shardings = param_shardings
        self.num_compilations = 0  # incremented at trace time: one trace per compiled program
        self._fns: dict[tuple[int, SamplingConfig], Any] = {}

    def _build(self, num_samples: int, cfg: SamplingConfig) -> Any:
        rows = sharding.batch_sharding(self.mesh, self.rules, 1)  # a prefix for [N] and [N, T]
        prompts = sharding.batch_sharding(self.mesh, self.rules, 2)
        replicated = NamedSharding(self.mesh, PartitionSpec())

        def traced(params, prompt_BxP, valid_BxP, key) -> SampleOutput:
            self.num_compilations += 1
            with nnx.logical_axis_rules(self.rules):
                return sample(self.graphdef, params, prompt_BxP, valid_BxP, key, num_samples, cfg)

        return jax.jit(
            traced,
            in_shardings=(self.param_shardings, prompts, prompts, replicated),
            out_shardings=rows,
        )

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
        fn = self._fns.get((num_samples, cfg))
        if fn is None:
            fn = self._fns[(num_samples, cfg)] = self._build(num_samples, cfg)
        with jax.set_mesh(self.mesh):
            return fn(params, prompt_BxP, valid_BxP, key)
