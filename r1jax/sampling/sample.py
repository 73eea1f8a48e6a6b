"""Sampling completions for GRPO: prefill each prompt once, then a `lax.while_loop` decode.

Letters: B prompts, G samples per prompt, N = B * G rows, P prompt length (bucketed), T max new
tokens, S = P + T - 1 cache slots, V vocab.

`sample` is a pure, traceable function of (graphdef, params, prompts, key): the GRPO trainer calls it
inside its own jit (the fused step), and `Sampler` (sampler.py) jits it alone with shardings. One XLA
program covers prefill and decode, so the KV cache never crosses a program boundary: it is created in
the program and updated in place as the while loop's carry.

Row b * G + g is sample g of prompt b, so a batch-sharded prompt's samples land on the same
devices as its prefill (no communication). The G rows of a prompt read ONE copy of its keys and
values (`decode.DecodeCache`): cache memory O(P + G * T) per prompt, not O(G * (P + T)). The hot
loop is `decode.decode_step`; token choice, log-probs and entropy are `filters`; host-side padding
and the jitted `Sampler` are in `sampler.py`. The loop may run in pieces (`cache_pieces`), each
attending only to the completion slots written by its end, the cache grown between them.
"""

from __future__ import annotations

import dataclasses
import functools
import logging

import jax
import jax.numpy as jnp
from flax import nnx, struct

from r1jax.model import api
from r1jax.model.kv_cache import KVCache, init_cache
from r1jax.parallel.sharding import constrain
from r1jax.sampling.decode import (
    DecodeCache,
    decode_step,
    fuse_weights,
    rope_table,
    unsupported,
)
from r1jax.sampling.filters import choose_tokens, draw_uniforms, token_stats


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """Static sampling options (hashable: one compiled program per distinct config).

    `temperature` also defines the distribution of the returned log-probs and entropy, even when
    `greedy` (which takes the argmax and ignores top_k/top_p). top_k 0 and top_p 1.0 mean off.
    """

    max_new_tokens: int
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    greedy: bool = False
    eos_id: int = 3
    pad_id: int = 0
    return_entropy: bool = False
    # further ids that end a row like EOS (a chat model's end-of-turn and end-of-text tokens)
    stop_ids: tuple[int, ...] = ()
    # A model with stacked layers (`scan_layers`) samples in the unrolled layout (`api.unrolled`:
    # L layer modules, one copy of the layer weights per call); None: on a GPU only. The same
    # arithmetic; on an H200 the unrolled layout decoded 1.73x faster than the scan (README).
    unroll_layers: bool | None = None
    # The decode loop in this many pieces, each a while loop whose steps attend to only the
    # completion slots written by the piece's end (the cache grows between pieces): the cache reads
    # fall from T^2 towards T^2 / 2 slot-steps, at one compiled loop body per piece (compile time
    # and compile memory). None: on a CPU one piece per 32 new tokens from 128 tokens on, at most
    # 8 (at 192 tokens its 6 pieces sampled 1.35x faster; at 64 tokens 4 pieces gave 1.1x for
    # +1.4 s of compile and +146 MiB peak RSS in the peer benchmark, so 1 there: README);
    # elsewhere 1.
    cache_pieces: int | None = None

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={self.max_new_tokens} must be >= 1.")
        if not self.temperature > 0:
            raise ValueError(
                f"temperature={self.temperature} must be > 0; use greedy=True for argmax decoding."
            )
        if self.top_k < 0:
            raise ValueError(f"top_k={self.top_k} must be >= 0 (0 = off).")
        if self.cache_pieces is not None and self.cache_pieces < 1:
            raise ValueError(f"cache_pieces={self.cache_pieces} must be >= 1 (1 = one loop).")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p={self.top_p} must be in (0, 1] (1.0 = off).")


@struct.dataclass
class SampleOutput:
    """What the trainer needs; every array has N = B * G rows grouped by prompt."""

    tokens_NxT: jax.Array  # int32; pad_id after EOS; EOS itself kept
    mask_NxT: jax.Array  # bool: generated tokens up to and including EOS
    logp_NxT: jax.Array  # f32 log softmax(logits / temperature)[token], full vocab; 0 off mask
    truncated_N: jax.Array  # bool: no EOS within max_new_tokens
    lengths_N: jax.Array  # int32: generated tokens, EOS included
    entropy_NxT: jax.Array | None = None  # f32 full-distribution entropy; 0 off mask


@struct.dataclass
class DecodeState:
    """The while loop's carry. Step t samples token t from the logits of token t - 1."""

    step: jax.Array  # int32 scalar: the next token index to sample
    cache: DecodeCache | KVCache  # N rows; token `step - 1` is not in it yet
    last_N: jax.Array  # int32: token step - 1, the next model input
    done_N: jax.Array  # bool: row has emitted EOS
    length_N: jax.Array  # int32: tokens emitted while live (EOS included)
    tokens_NxT: jax.Array
    logp_NxT: jax.Array
    entropy_NxT: jax.Array | None


def _is_stop(tok_N: jax.Array, cfg: SamplingConfig) -> jax.Array:
    """EOS or any of the extra stop ids."""
    stop_N = tok_N == cfg.eos_id
    for i in cfg.stop_ids:
        stop_N = stop_N | (tok_N == i)
    return stop_N


def _record(
    state: DecodeState, logits_NxV: jax.Array, u_TxN: jax.Array | None, cfg: SamplingConfig
) -> DecodeState:
    """Samples token `state.step` for every row and writes it (pad_id for finished rows)."""
    u_N = None if u_TxN is None else jax.lax.dynamic_index_in_dim(u_TxN, state.step, 0, False)
    tok_N = choose_tokens(logits_NxV, u_N, cfg.temperature, cfg.top_k, cfg.top_p)
    logp_N, ent_N = token_stats(logits_NxV, tok_N, cfg.temperature, cfg.return_entropy)
    live_N = ~state.done_N
    tok_N = jnp.where(live_N, tok_N, cfg.pad_id)
    put = lambda buf_NxT, x_N: jax.lax.dynamic_update_slice(
        buf_NxT, x_N[:, None].astype(buf_NxT.dtype), (0, state.step)
    )
    entropy = state.entropy_NxT
    if ent_N is not None:
        entropy = put(entropy, jnp.where(live_N, ent_N, 0.0))
    return state.replace(
        step=state.step + 1,
        last_N=tok_N,
        done_N=state.done_N | _is_stop(tok_N, cfg),
        length_N=state.length_N + live_N.astype(jnp.int32),
        tokens_NxT=constrain(put(state.tokens_NxT, tok_N), ("batch", None)),
        logp_NxT=put(state.logp_NxT, jnp.where(live_N, logp_N, 0.0)),
        entropy_NxT=entropy,
    )


def _fusable() -> bool:
    """Whether the decode step may run fused projections (`decode.fuse_weights`): not when the
    weights are split over a `tensor` mesh axis, where side-by-side matrices of differently sharded
    heads would be gathered every call."""
    mesh = jax.sharding.get_abstract_mesh()
    return mesh.empty or dict(zip(mesh.axis_names, mesh.axis_sizes)).get("tensor", 1) == 1


def _unroll(cfg: SamplingConfig) -> bool:
    """`cfg.unroll_layers`, None resolved by the backend (see SamplingConfig)."""
    if cfg.unroll_layers is None:
        return jax.default_backend() == "gpu"
    return cfg.unroll_layers


def num_pieces(cfg: SamplingConfig) -> int:
    """`cfg.cache_pieces`, None resolved by the backend and length (see SamplingConfig)."""
    if cfg.cache_pieces is not None:
        return cfg.cache_pieces
    if jax.default_backend() != "cpu":
        return 1
    if cfg.max_new_tokens < 128:
        return 1
    return min(8, -(-(cfg.max_new_tokens - 1) // 32))


def decode(
    graphdef: nnx.GraphDef,
    params: dict,
    prompt_BxP: jax.Array,
    prompt_valid_BxP: jax.Array,
    key: jax.Array,
    num_samples: int,
    cfg: SamplingConfig,
    fast: bool | None = None,
    fuse: bool | None = None,
    uniforms_TxN: jax.Array | None = None,
) -> DecodeState:
    """Prefill + decode; returns the final loop state (`sample` wraps it into a SampleOutput).

    `fast` picks `sampling_decode.decode_step` (None: whenever it supports the model) over the
    model's own cached call, which is the slower but always-correct fallback. `fuse` runs that
    step with `decode.fuse_weights` (None: unless the weights are split over a tensor axis).
    `uniforms_TxN` replaces the draws from `key` (a part of the rows draws its columns of the
    whole batch's `draw_uniforms`: `sampling/threads.py`).
    """
    b, p = prompt_BxP.shape
    g, t = num_samples, cfg.max_new_tokens
    n = b * g
    if _unroll(cfg):
        graphdef, params = api.unrolled(graphdef, params)
    model = nnx.merge(graphdef, params)
    model_cfg = model.cfg
    if fast is None:
        why = unsupported(model, params)
        if why is not None:
            logging.warning("sampling: using the model's generic cached call: %s", why)
        fast = why is None
    ends = piece_ends(t, num_pieces(cfg) if fast else 1)  # the step at which each decode loop stops
    # (1) Prefill the B prompts once (the generic path leaves room for the T - 1 fed-back tokens).
    cache = init_cache(model_cfg, b, p if fast else p + t - 1)
    hidden_BxPxD, cache = model(prompt_BxP, prompt_valid_BxP, cache, return_hidden=True)
    logits_BxV = model.logits(hidden_BxPxD[:, -1:])[:, 0]  # left padding: last column is real
    # (2) Share each prompt's cache and next-token logits among its G samples.
    if fast:  # one prompt copy, read by its G rows; completion slots per row
        # room for the first piece's tokens only; `resize` grows it between pieces
        cache = DecodeCache.from_prefill(cache, g, max(ends[0] - 1, 1))
        rope_LxH2 = rope_table(model_cfg, p + t)  # positions < P + T - 1
        fused = fuse_weights(model) if (_fusable() if fuse is None else fuse) else None
    else:  # the generic cached call needs every row's whole sequence: G copies of the prompt
        cache = cache.repeat(g)
    logits_NxV = jnp.repeat(logits_BxV, g, axis=0)
    zeros = lambda dt: constrain(jnp.zeros((n, t), dt), ("batch", None))
    state = DecodeState(
        step=jnp.zeros((), jnp.int32),
        cache=cache,
        last_N=jnp.zeros((n,), jnp.int32),
        done_N=jnp.zeros((n,), bool),
        length_N=jnp.zeros((n,), jnp.int32),
        tokens_NxT=jnp.full((n, t), cfg.pad_id, jnp.int32),
        logp_NxT=zeros(jnp.float32),
        entropy_NxT=zeros(jnp.float32) if cfg.return_entropy else None,
    )
    u_TxN = uniforms_TxN if uniforms_TxN is not None else draw_uniforms(key, t, n)
    u_TxN = None if cfg.greedy else constrain(u_TxN, (None, "batch"))
    state = _record(state, logits_NxV, u_TxN, cfg)

    # (3) Decode: feed token step - 1, sample token step; stop when all rows are done or at T.
    def cond(s: DecodeState, end: int) -> jax.Array:
        return (s.step < end) & ~jnp.all(s.done_N)

    def body(s: DecodeState) -> DecodeState:
        model = nnx.merge(graphdef, params)
        if fast:
            logits_NxV, new_cache = decode_step(model, s.cache, s.last_N, rope_LxH2, fused)
        else:
            logits_Nx1xV, new_cache = model(s.last_N[:, None], None, s.cache)
            logits_NxV = logits_Nx1xV[:, 0]
        return _record(s.replace(cache=new_cache), logits_NxV, u_TxN, cfg)

    for i, end in enumerate(ends):
        if i:
            state = state.replace(cache=state.cache.resize(end - 1))
        state = jax.lax.while_loop(functools.partial(cond, end=end), body, state)
    return state


def piece_ends(t: int, pieces: int) -> tuple[int, ...]:
    """The step at which each decode piece stops (the last is T), steps 1..T - 1 split evenly.

    Step s feeds token s - 1, which writes completion slot s - 1 (token 0 is sampled from the
    prefill), so a piece that stops before step e has written slots 0..e - 2: e - 1 slots.
    """
    pieces = max(1, min(pieces, t - 1))
    return tuple(1 + -(-(t - 1) * j // pieces) for j in range(1, pieces + 1)) if t > 1 else (t,)


def sample(
    graphdef: nnx.GraphDef,
    params: dict,
    prompt_BxP: jax.Array,
    prompt_valid_BxP: jax.Array,
    key: jax.Array,
    num_samples: int,
    cfg: SamplingConfig,
    uniforms_TxN: jax.Array | None = None,
) -> SampleOutput:
    """G = num_samples completions of each left-padded prompt (each needs >= 1 real token).

    Pure and traceable: no jit inside, no host logic, the key (or `uniforms_TxN`) the only
    randomness.
    """
    args = (graphdef, params, prompt_BxP, prompt_valid_BxP, key, num_samples, cfg)
    state = decode(*args, uniforms_TxN=uniforms_TxN)
    t = state.tokens_NxT.shape[1]
    return SampleOutput(
        tokens_NxT=state.tokens_NxT,
        mask_NxT=jnp.arange(t)[None, :] < state.length_N[:, None],
        logp_NxT=state.logp_NxT,
        truncated_N=~state.done_N,
        lengths_N=state.length_N,
        entropy_NxT=state.entropy_NxT,
    )
