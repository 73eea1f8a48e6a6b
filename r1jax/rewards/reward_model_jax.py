"""The reward model as a reward over token ids, traceable inside the fused GRPO step.

Letters: N rollouts (B prompts x G samples, rows grouped by prompt), P the reward model's prompt
length (left padded), T completion length, S = P + T.

The reward model scores (prompt + completion) exactly as the host form does (reward_model.py), but
from the sampler's arrays, so it can run inside one XLA program with sampling and the update. The
prompt is the reward model's own rendering of the question (its template, its tokenizer), built on
the host per rollout row like any jittable reward's targets (`RewardModelScorer.targets_fn`); only
the completion ids come from the sampler, which is why fusing needs the policy's tokenizer:

1. which completion tokens the judge reads (`completion_keep`): the sampled tokens up to EOS, minus
   the special ids that decoding drops (pad, BOS, EOS, extra stop ids), and for on="summary" only
   those after the last `</think>` (none while a `<think>` is still open): the token form of
   `data.preference.response_view`;
2. the rows [prompt | completion] with that validity mask (`rm_inputs`): holes in the mask are
   fine, since the transformer takes positions from cumsum(valid);
3. the scalar head at the last valid token (`model.reward_head`), then
4. the running normalisation (`stats_update`, `normalise`): the reward is
   clip((r - mean) / sqrt(var + eps), -clip, clip) with mean/var over every score seen so far,
   this batch included (Chan et al.'s parallel update of count, mean and sum of squared
   deviations). The statistics are state of the reward: a run checkpoints them with its other
   state so a resumed run normalises exactly as an uninterrupted one.

The two forms agree when the sampled ids are the tokenizer's own encoding of their decoded text (the
encoding the reward model was trained on); a sampled non-canonical split of a word is scored as
sampled here and as re-encoded on the host.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from r1jax.model import reward_head

EPS = 1e-6


@dataclasses.dataclass(frozen=True)
class ViewIds:
    """The token ids the judge's view depends on (static: part of the compiled program)."""

    dropped: tuple[int, ...]  # ids decoding drops: pad, BOS, EOS, stop ids
    think_open: int = -1  # -1: the tokenizer has no single `<think>` piece
    think_close: int = -1


def view_ids(tokenizer: Any) -> ViewIds:
    dropped = {tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id}
    dropped |= set(getattr(tokenizer, "stop_ids", ()) or ())
    tag = lambda t: tokenizer.tag_id(t) if tokenizer.tag_id(t) is not None else -1  # noqa: E731
    return ViewIds(
        tuple(sorted(int(i) for i in dropped if i is not None and i >= 0)),
        tag("<think>"),
        tag("</think>"),
    )


def completion_keep(
    completion_NxT: jax.Array, mask_NxT: jax.Array, ids: ViewIds, on: str
) -> jax.Array:
    """bool [N, T]: the completion tokens the judge reads (see the module docstring)."""
    tok = completion_NxT
    keep = mask_NxT & ~jnp.isin(tok, jnp.asarray(ids.dropped, tok.dtype))
    if on == "all":
        return keep
    if on != "summary":
        raise ValueError(f"on={on!r} is not 'summary' or 'all'")
    if ids.think_close < 0 or ids.think_open < 0:
        raise ValueError("on='summary' over token ids needs single-token <think> and </think>")
    t_T = jnp.arange(tok.shape[1])
    close_NxT = (tok == ids.think_close) & mask_NxT
    last_close_N = jnp.max(jnp.where(close_NxT, t_T[None], -1), axis=1)
    open_N = jnp.any((tok == ids.think_open) & mask_NxT, axis=1)
    unfinished_N = open_N & (last_close_N < 0)  # reasoning never closed: nothing to read
    return keep & (t_T[None] > last_close_N[:, None]) & ~unfinished_N[:, None]


def rm_inputs(
    prompt_NxP: jax.Array,
    prompt_valid_NxP: jax.Array,
    completion_NxT: jax.Array,
    keep_NxT: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """(tokens [N, S], valid [N, S]): each row's prompt, then its completion."""
    tokens = jnp.concatenate([prompt_NxP.astype(jnp.int32), completion_NxT.astype(jnp.int32)], 1)
    valid = jnp.concatenate([prompt_valid_NxP, keep_NxT], axis=1)
    return tokens, valid


def stats_init() -> dict:
    """Running statistics of raw scores: count, mean, m2 (sum of squared deviations)."""
    z = jnp.zeros((), jnp.float32)
    return {"count": z, "mean": z, "m2": z}


def stats_update(stats: dict, x_N: jax.Array) -> dict:
    """Merges a batch into the running statistics (Chan et al.'s parallel algorithm). NaN scores
    (inputs the reward model could not read) are left out; a batch of only NaN changes nothing."""
    x = x_N.astype(jnp.float32)
    ok = jnp.isfinite(x)
    n_b = jnp.sum(ok).astype(jnp.float32)
    mean_b = jnp.sum(jnp.where(ok, x, 0.0)) / jnp.maximum(n_b, 1.0)
    m2_b = jnp.sum(jnp.where(ok, jnp.square(x - mean_b), 0.0))
    n = stats["count"] + n_b
    delta = mean_b - stats["mean"]
    share = n_b / jnp.maximum(n, 1.0)
    return {
        "count": n,
        "mean": stats["mean"] + delta * share,
        "m2": stats["m2"] + m2_b + jnp.square(delta) * stats["count"] * share,
    }


def normalise(stats: dict, x_N: jax.Array, clip: float) -> jax.Array:
    """(x - mean) / sqrt(var + eps), clipped to [-clip, clip] (clip <= 0: no clipping)."""
    var = stats["m2"] / jnp.maximum(stats["count"], 1.0)
    z = (x_N.astype(jnp.float32) - stats["mean"]) * jax.lax.rsqrt(var + EPS)
    return jnp.clip(z, -clip, clip) if clip > 0 else z


def update_and_normalise(stats: dict, raw_N: jax.Array, clip: float) -> tuple[jax.Array, dict]:
    new = stats_update(stats, raw_N)
    return normalise(new, raw_N, clip), new


def score_rollouts(
    graphdef: nnx.GraphDef,
    params: dict,
    stats: dict,
    prompt_NxP: jax.Array,
    prompt_valid_NxP: jax.Array,
    completion_NxT: jax.Array,
    mask_NxT: jax.Array,
    ids: ViewIds,
    on: str,
    normalize: bool = True,
    clip: float = 5.0,
    max_len: int = 0,
) -> tuple[jax.Array, jax.Array, dict]:
    """(reward [N], raw RM score [N], new statistics); pure and traceable. A row longer than
    `max_len` real tokens (0: no limit) scores NaN, as the host form scores it."""
    keep = completion_keep(completion_NxT, mask_NxT, ids, on)
    tokens, valid = rm_inputs(prompt_NxP, prompt_valid_NxP, completion_NxT, keep)
    raw = reward_head.score(graphdef, params, tokens, valid)
    if max_len > 0:
        raw = jnp.where(jnp.sum(valid, axis=1) > max_len, jnp.nan, raw)
    if not normalize:
        return raw, raw, stats
    reward, new = update_and_normalise(stats, raw, clip)
    return reward, raw, new
