"""Next-token training (pretraining and SFT): packed rows, masked loss, a jitted sharded step.

Letters: B rows, T tokens per row, A gradient-accumulation micro-batches, V vocab.

Batches are pure functions of (seed, step, row), so resuming at step s reproduces exactly the data an
uninterrupted run would have seen, with no iterator state. The step accumulates gradients over A
micro-batches as *sums* of token losses and divides once by the total number of loss tokens, so
accumulation never changes the result. A non-finite loss or gradient skips the update (state kept,
`nonfinite` = 1 in the metrics).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from r1jax import model as model_lib
from r1jax.model.vocab_head import chunked_logprobs_NxT
from r1jax.parallel import sharding
from r1jax.train import host_memory

# A document is (ids, loss_mask): loss_mask marks the tokens that are predicted (trained on).
DocFn = Callable[[int], tuple[list[int], list[bool]]]


def pack_row(doc_fn: DocFn, seq_len: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Fills one row of seq_len + 1 tokens with whole documents (the last one cut).

    `doc_fn(j)` returns the j-th document of this row. Returns (tokens [T+1], loss_mask [T+1]) where
    loss_mask[t] says whether token t is a training target.
    """
    toks = np.full(seq_len + 1, pad_id, np.int32)
    mask = np.zeros(seq_len + 1, bool)
    pos, j = 0, 0
    while pos < seq_len + 1:
        ids, m = doc_fn(j)
        j += 1
        n = min(len(ids), seq_len + 1 - pos)
        toks[pos : pos + n] = ids[:n]
        mask[pos : pos + n] = m[:n]
        pos += n
        if j > 10_000:
            raise ValueError("pack_row: documents are empty; check the data source.")
    return toks, mask


def make_batch(
    doc_fn: Callable[[int, int, int], tuple[list[int], list[bool]]],
    step: int,
    rows: tuple[int, int],
    seq_len: int,
    pad_id: int,
) -> dict[str, np.ndarray]:
    """Rows [start, stop) of the global batch of `step`; doc_fn(step, row, j) gives documents."""
    toks, masks = zip(
        *(pack_row(lambda j, r=r: doc_fn(step, r, j), seq_len, pad_id) for r in range(*rows))
    )
    return {"tokens": np.stack(toks), "loss_mask": np.stack(masks)}


VOCAB_CHUNK = 8192  # a vocabulary larger than this is scored in chunks (as the RL update does)


def loss_sum(
    graphdef: nnx.GraphDef,
    params: dict,
    tokens_BxT1: jax.Array,
    mask_BxT1: jax.Array,
    vocab_chunk: int = VOCAB_CHUNK,
) -> tuple[jax.Array, jax.Array]:
    """(sum of target-token NLL, number of target tokens) for one micro-batch.

    A vocabulary larger than `vocab_chunk` (> 0) is scored one chunk at a time
    (`model/vocab_head.py`): at Qwen's V = 151,936 the whole [B, T, V] float32 logits of 8 x 2048
    tokens are ~10 GB, and the plain path keeps more than one such tensor (log-softmax, gradient).
    """
    inputs, targets = tokens_BxT1[:, :-1], tokens_BxT1[:, 1:]
    weight = mask_BxT1[:, 1:].astype(jnp.float32)
    model = nnx.merge(graphdef, params)
    if 0 < vocab_chunk < model.cfg.vocab_size:
        hidden, _ = model_lib.apply(graphdef, params, inputs, return_hidden=True)
        logp, _ = chunked_logprobs_NxT(
            hidden, model.head_weight(), targets, 1.0, vocab_chunk, False
        )
    else:
        logits, _ = model_lib.apply(graphdef, params, inputs)
        logp = model_lib.token_logprobs(logits, targets)
    return -(logp * weight).sum(), weight.sum()


# loss_fn(params, micro-batch) -> (sum of token losses, number of loss tokens, {name: sum}); the
# step divides every sum by the step's total number of loss tokens (sft_step.py defines one).
LossFn = Callable[[dict, dict], tuple[jax.Array, jax.Array, dict]]


def make_train_step(
    graphdef: nnx.GraphDef,
    tx: optax.GradientTransformation,
    lr_fn: Callable[[Any], Any],
    grad_accum: int,
    state_shardings: dict,
    batch_shardings: dict,
    loss_fn: LossFn | None = None,
    aux_names: tuple[str, ...] = (),
) -> Callable[[dict, dict], tuple[dict, dict]]:
    """The jitted step: state {"params", "opt_state", "step"} and batch -> (state, metrics).

    Without `loss_fn`, next-token NLL on batch["tokens"] weighted by batch["loss_mask"]; with it,
    any per-token loss over any batch arrays (each is split into the A micro-batches along rows),
    whose `aux_names` sums are reported per loss token.
    """
    if loss_fn is None:
        loss_fn = lambda p, mb: (*loss_sum(graphdef, p, mb["tokens"], mb["loss_mask"]), {})  # noqa: E731

    def step(state: dict, batch: dict) -> tuple[dict, dict]:
        params = state["params"]
        b = batch["tokens"].shape[0]
        micro = lambda x: x.reshape(grad_accum, b // grad_accum, *x.shape[1:])  # noqa: E731

        def accumulate(carry, mb):
            g_acc, l_acc, n_acc, a_acc = carry

            def objective(p):
                total, n, aux = loss_fn(p, mb)
                return total, (n, aux)

            (loss_mb, (n, aux)), g = jax.value_and_grad(objective, has_aux=True)(params)
            a_acc = {k: a_acc[k] + aux[k] for k in aux_names}
            return (jax.tree.map(jnp.add, g_acc, g), l_acc + loss_mb, n_acc + n, a_acc), None

        zeros = jax.tree.map(jnp.zeros_like, params)
        zero = jnp.zeros((), jnp.float32)
        init = (zeros, zero, zero, {k: zero for k in aux_names})
        mbs = jax.tree.map(micro, batch)
        (g_sum, l_sum, n_tok, a_sum), _ = jax.lax.scan(accumulate, init, mbs)
        denom = jnp.maximum(n_tok, 1.0)
        grads = jax.tree.map(lambda g: g / denom, g_sum)
        loss = l_sum / denom
        grad_norm = optax.tree.norm(grads)
        ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        updates, new_opt = tx.update(grads, state["opt_state"], params)
        new_params = optax.apply_updates(params, updates)
        keep = lambda new, old: jax.tree.map(lambda a, c: jnp.where(ok, a, c), new, old)  # noqa: E731
        new_state = dict(state)
        new_state["params"] = keep(new_params, params)
        new_state["opt_state"] = keep(new_opt, state["opt_state"])
        new_state["step"] = state["step"] + 1
        metrics = {
            "loss": loss,
            "grad_norm": grad_norm,
            "lr": lr_fn(state["step"]),
            "tokens": n_tok,
            "nonfinite": 1 - ok.astype(jnp.int32),
        }
        metrics.update({k: v / denom for k, v in a_sum.items()})
        return new_state, metrics

    jitted = jax.jit(
        step,
        in_shardings=(state_shardings, batch_shardings),
        out_shardings=(state_shardings, None),
        donate_argnums=(0,),
    )
    return host_memory.CompileFirst(jitted)  # compiled ahead of its first run: lower peak RSS


def init_state(
    graphdef: nnx.GraphDef,
    params: dict,
    param_shardings: dict,
    tx: optax.GradientTransformation,
    mesh: Any,
) -> tuple[dict, dict]:
    """(state, state shardings) with optimizer moments sharded like their parameters."""
    abstract_opt = jax.eval_shape(tx.init, params)
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    opt_shardings = optax.tree_map_params(
        tx, lambda _, s: s, abstract_opt, param_shardings, transform_non_params=lambda _: replicated
    )
    with jax.set_mesh(mesh):
        opt_state = jax.jit(tx.init, out_shardings=opt_shardings)(params)
    state = {
        "params": params,
        "opt_state": opt_state,
        "step": jax.device_put(jnp.int32(0), replicated),
    }
    return state, {"params": param_shardings, "opt_state": opt_shardings, "step": replicated}


def batch_shardings(mesh: Any, rules: sharding.Rules) -> dict:
    return {
        "tokens": sharding.batch_sharding(mesh, rules, 2),
        "loss_mask": sharding.batch_sharding(mesh, rules, 2),
    }
