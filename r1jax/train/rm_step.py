"""Bradley-Terry training of the reward model: the pure pair loss and the jitted sharded step.

Letters: B pairs, T tokens per sequence, A gradient-accumulation micro-batches.

Under the Bradley-Terry model a rater prefers response c over r with probability
sigmoid(r_c - r_r); the maximum-likelihood loss over labelled pairs is

    loss = mean_b  -log sigmoid(r_c[b] - r_r[b] - margin[b])          (= softplus(-z))

with an optional per-pair margin (Llama 2: a larger margin for pairs rated as clearly different).
The loss is a pure function of the two score vectors; the step runs the reward model on the chosen
and rejected sequences as ONE batch of 2B rows (one forward, one backward). Gradients are summed over
micro-batches and divided once by B, so accumulation never changes the result. A non-finite loss or
gradient skips the update, as in the LM step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from r1jax.model import reward_head
from r1jax.parallel import sharding
from r1jax.train import host_memory

BATCH_KEYS = ("chosen", "chosen_valid", "rejected", "rejected_valid", "margin")


def bt_loss(
    r_chosen_B: jax.Array, r_rejected_B: jax.Array, margin_B: jax.Array | None = None
) -> tuple[jax.Array, dict]:
    """(mean Bradley-Terry loss, aux) over B pairs.

    aux: accuracy (share of pairs with r_c > r_r; ties count as wrong), margin_mean (mean r_c - r_r,
    the margin argument not subtracted) and loss_sum (the sum over pairs, for accumulation).
    """
    diff_B = r_chosen_B.astype(jnp.float32) - r_rejected_B.astype(jnp.float32)
    z_B = diff_B if margin_B is None else diff_B - margin_B.astype(jnp.float32)
    per_pair = -jax.nn.log_sigmoid(z_B)
    aux = {
        "accuracy": jnp.mean((diff_B > 0).astype(jnp.float32)),
        "margin_mean": jnp.mean(diff_B),
        "loss_sum": jnp.sum(per_pair),
    }
    return jnp.mean(per_pair), aux


def pair_scores(graphdef: nnx.GraphDef, params: dict, batch: dict) -> tuple[jax.Array, jax.Array]:
    """(r_chosen [B], r_rejected [B]) from one forward over the 2B sequences."""
    b = batch["chosen"].shape[0]
    tokens = jnp.concatenate([batch["chosen"], batch["rejected"]], axis=0)
    valid = jnp.concatenate([batch["chosen_valid"], batch["rejected_valid"]], axis=0)
    r = reward_head.score(graphdef, params, tokens, valid)
    return r[:b], r[b:]


def make_train_step(
    graphdef: nnx.GraphDef,
    tx: optax.GradientTransformation,
    lr_fn: Callable[[Any], Any],
    grad_accum: int,
    state_shardings: dict,
    batch_shardings: dict,
) -> Callable[[dict, dict], tuple[dict, dict]]:
    """The jitted step: state {"params", "opt_state", "step"} and a pair batch -> (state, metrics)."""

    def step(state: dict, batch: dict) -> tuple[dict, dict]:
        params = state["params"]
        b = batch["chosen"].shape[0]
        micro = lambda x: x.reshape(grad_accum, b // grad_accum, *x.shape[1:])  # noqa: E731

        def loss_sum(p, mb):
            rc, rr = pair_scores(graphdef, p, mb)
            _, aux = bt_loss(rc, rr, mb["margin"])
            return aux["loss_sum"], (jnp.sum((rc - rr > 0).astype(jnp.float32)), jnp.sum(rc - rr))

        def accumulate(carry, mb):
            g_acc, l_acc, c_acc, m_acc = carry
            (ls, (c, m)), g = jax.value_and_grad(loss_sum, has_aux=True)(params, mb)
            return (jax.tree.map(jnp.add, g_acc, g), l_acc + ls, c_acc + c, m_acc + m), None

        zero = jnp.zeros((), jnp.float32)
        init = (jax.tree.map(jnp.zeros_like, params), zero, zero, zero)
        mbs = {k: micro(batch[k]) for k in BATCH_KEYS}
        (g_sum, l_sum, correct, margin_sum), _ = jax.lax.scan(accumulate, init, mbs)
        grads = jax.tree.map(lambda g: g / b, g_sum)
        loss = l_sum / b
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
            "accuracy": correct / b,
            "margin_mean": margin_sum / b,
            "grad_norm": grad_norm,
            "lr": lr_fn(state["step"]),
            "nonfinite": 1 - ok.astype(jnp.int32),
        }
        return new_state, metrics

    jitted = jax.jit(
        step,
        in_shardings=(state_shardings, batch_shardings),
        out_shardings=(state_shardings, None),
        donate_argnums=(0,),
    )
    return host_memory.CompileFirst(jitted)  # compiled ahead of its first run: lower peak RSS


def make_score_fn(
    graphdef: nnx.GraphDef, param_shardings: Any, mesh: Any, rules: sharding.Rules
) -> Callable[[dict, Any, Any], jax.Array]:
    """Jitted (params, tokens_BxT, valid_BxT) -> scores [B], batch-sharded over the mesh."""
    rows = sharding.batch_sharding(mesh, rules, 2)
    rules = tuple(rules)

    def traced(params, tokens_BxT, valid_BxT):
        with nnx.logical_axis_rules(rules):
            return reward_head.score(graphdef, params, tokens_BxT, valid_BxT)

    fn = jax.jit(traced, in_shardings=(param_shardings, rows, rows))

    def call(params: dict, tokens_BxT: Any, valid_BxT: Any) -> jax.Array:
        with jax.set_mesh(mesh):
            return fn(params, tokens_BxT, valid_BxT)

    return call


def batch_shardings(mesh: Any, rules: sharding.Rules) -> dict:
    two = sharding.batch_sharding(mesh, rules, 2)
    return {
        "chosen": two,
        "chosen_valid": two,
        "rejected": two,
        "rejected_valid": two,
        "margin": sharding.batch_sharding(mesh, rules, 1),
    }
