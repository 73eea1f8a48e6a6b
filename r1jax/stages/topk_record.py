"""The teacher's top-k next-token log-probs of each kept sample, for logit distillation.

Letters: B sequences, L tokens (bucketed), V vocab, K top-k.

The sampler returns only the sampled token's log-prob, so the distribution is recorded right after
sampling by one forward pass of the same model over each kept sample, on exactly the token ids
the student will train on (data/sft_batches.encode: BOS + template(prompt) + completion + EOS).
Row t of a sample's arrays is the model's distribution of token t given tokens < t, at temperature 1
(row 0 is unused). Saved as <workdir>/topk.npz: `ids` [N, K] int32, `logp` [N, K] float32 and
`offsets` [n + 1] (sample j's rows are offsets[j]:offsets[j + 1]); each record's provenance holds its
`topk_row` j and the template it was recorded with.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from r1jax import model as model_lib
from r1jax.data import sft_batches

FILENAME = "topk.npz"


@functools.partial(jax.jit, static_argnums=(0, 3))
def _topk(graphdef, params, tokens_BxL: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    logits, _ = model_lib.apply(graphdef, params, tokens_BxL)
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    logp_BxLxK, ids_BxLxK = jax.lax.top_k(logp, k)
    return ids_BxLxK.astype(jnp.int32), logp_BxLxK


def record(
    graphdef,
    params,
    tok: Any,
    records: Sequence[dict],
    template: str,
    k: int,
    batch: int = 16,
    bucket: int = 64,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(offsets [n + 1], ids [N, K], logp [N, K]) over the records, in order."""
    encoded = [sft_batches.encode(tok, template, r)[0] for r in records]
    ids_out, logp_out = [], []
    for s in range(0, len(encoded), batch):
        chunk = encoded[s : s + batch]
        length = -(-max(len(e) for e in chunk) // bucket) * bucket
        toks = np.full((batch, length), tok.pad_id, np.int32)  # fixed B: one compile per bucket
        for i, e in enumerate(chunk):
            toks[i, : len(e)] = e
        ids, logp = jax.device_get(_topk(graphdef, params, toks, k))
        for i, e in enumerate(chunk):
            n = len(e)
            rows_i = np.zeros((n, k), np.int32)
            rows_p = np.zeros((n, k), np.float32)
            rows_i[1:], rows_p[1:] = ids[i, : n - 1], logp[i, : n - 1]  # predicts token t from < t
            ids_out.append(rows_i)
            logp_out.append(rows_p)
    offsets = np.concatenate([[0], np.cumsum([len(e) for e in encoded])]).astype(np.int64)
    return offsets, np.concatenate(ids_out), np.concatenate(logp_out)


def save(workdir: str, offsets: np.ndarray, ids: np.ndarray, logp: np.ndarray) -> str:
    path = os.path.join(workdir, FILENAME)
    if jax.process_index() == 0:
        tmp = path + f".tmp.{os.getpid()}.npz"
        np.savez(tmp, offsets=offsets, ids=ids, logp=logp)
        os.replace(tmp, path)
    return path


def load(workdir: str) -> dict[str, np.ndarray] | None:
    path = os.path.join(workdir, FILENAME)
    if not os.path.exists(path):
        return None
    with np.load(path) as z:
        return {k: z[k] for k in ("offsets", "ids", "logp")}
