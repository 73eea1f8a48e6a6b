"""The GRPO update: advantages, reference log-probs and mu inner iterations of optimiser updates.

Letters: B prompts, G samples each, N = B * G rollouts, P prompt length, T completion length,
R reward functions, M mini-batches per inner iteration, A micro-batches per mini-batch.

`update` is one pure function of (state, rollouts): the fused step calls it inside the same jit as
sampling and the jittable rewards; the split step jits it alone after host rewards. Both therefore
compute the same numbers from the same rollouts. Each of the mu * M optimiser updates accumulates
gradients over A micro-batches as sums divided by one batch-level normaliser (see grpo_loss), so
accumulation never changes the update. A non-finite loss or gradient skips that update.

No forward pass runs whose result is known: with a single optimiser update (mu = 1, one
mini-batch) the policy has not moved when the loss is taken, so `old_logp="recompute"` is
stop_gradient(logp) of the loss's own forward (ratio exactly 1, the same gradient), and the
reference log-probs are computed micro-batch by micro-batch inside the same scan, never kept for
the whole batch. With several updates both are computed once, before the first. Mini-batches are
visited in a new random order in every inner iteration, drawn from the step's key
(fold_in(key(seed), step), the stage's key for the step), so a resumed run replays the same order.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from r1jax.rl import advantages as adv_lib
from r1jax.rl import grpo_loss as loss_lib
from r1jax.rl import losses
from r1jax.rl.logprobs import completion_logprobs


@dataclasses.dataclass(frozen=True)
class UpdateConfig:
    """Static options of the update (hashable: one compiled program per distinct value)."""

    group_size: int = 8
    mu: int = 1  # inner iterations over each rollout batch
    mini_batches: int = 1  # optimiser updates per inner iteration
    grad_accum: int = 1  # micro-batches per optimiser update
    temperature: float = 1.0  # the sampling temperature (policy log-probs use the same)
    advantage: str | adv_lib.Estimator = "grpo"  # a registered name or an estimator function
    std_ddof: int = 0
    adv_eps: float = 1e-4
    reward_weights: tuple[float, ...] = (1.0,)
    mask_truncated: bool = False  # DAPO overlong filtering: truncated rollouts get no gradient
    share_prefix: bool = True
    old_logp: str = "sampler"  # "sampler" (exact at the sampling temperature) or "recompute"
    loss: loss_lib.LossOptions = loss_lib.LossOptions()  # options of the GRPO loss family
    loss_fn: str | losses.Loss = "grpo"  # a registered loss ("name(key=value)") or a Loss
    vocab_chunk: int = 8192  # a larger vocabulary is scored in chunks of this size (0 = never)
    entropy: bool = True  # the entropy metric (one more pass over each logits chunk)
    seed: int = 0  # the run's seed: the mini-batch order is drawn from fold_in(key(seed), step)

    def policy_loss(self) -> losses.Loss:
        return losses.build(self.loss_fn, self.loss)

    def check(self, prompts: int) -> None:
        per = self.mini_batches * self.grad_accum
        if prompts % per:
            raise ValueError(
                f"{prompts} prompts per step cannot be split into mini_batches * grad_accum = {per} "
                "equal parts of whole groups; make rl.prompts_per_step a multiple of it."
            )
        if self.old_logp not in ("sampler", "recompute"):
            raise ValueError(f"rl.old_logp={self.old_logp!r} must be 'sampler' or 'recompute'.")


def _rows(x: jax.Array, start: jax.Array, size: int) -> jax.Array:
    return jax.lax.dynamic_slice_in_dim(x, start, size, axis=0)


def _logp(graphdef, params, batch: dict, cfg: UpdateConfig, with_entropy: bool = False):
    return completion_logprobs(
        graphdef,
        params,
        batch["prompt"],
        batch["prompt_valid"],
        batch["completion"],
        cfg.temperature,
        with_entropy,
        cfg.share_prefix,
        cfg.vocab_chunk,
    )


def minibatch_order(cfg: UpdateConfig, step: jax.Array) -> jax.Array:
    """int32 [mu * M]: the mini-batch each optimiser update uses; a fresh permutation of the M
    mini-batches per inner iteration, from the step's key (identity when M = 1)."""
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(cfg.seed), step), 0x6D62)
    if cfg.mini_batches == 1:
        return jnp.zeros((cfg.mu,), jnp.int32)
    perms = [
        jax.random.permutation(jax.random.fold_in(key, i), cfg.mini_batches) for i in range(cfg.mu)
    ]
    return jnp.concatenate(perms).astype(jnp.int32)


def _chunked_logp(graphdef, params, batch: dict, cfg: UpdateConfig, chunks: int) -> jax.Array:
    """Forward-only log-probs of the whole rollout batch, `chunks` micro-batches at a time."""
    b = batch["prompt"].shape[0]

    def one(i):
        pb = b // chunks
        sub = {
            "prompt": _rows(batch["prompt"], i * pb, pb),
            "prompt_valid": _rows(batch["prompt_valid"], i * pb, pb),
            "completion": _rows(batch["completion"], i * pb * cfg.group_size, pb * cfg.group_size),
        }
        return jax.lax.stop_gradient(_logp(graphdef, params, sub, cfg)[0])

    out = jax.lax.map(one, jnp.arange(chunks))
    return out.reshape(-1, out.shape[-1])


def update(
    graphdef: nnx.GraphDef,
    tx: optax.GradientTransformation,
    state: dict,
    rollouts: dict,
    cfg: UpdateConfig,
) -> tuple[dict, dict]:
    """One GRPO step's optimisation on a rollout batch.

    rollouts: prompt_BxP, prompt_valid_BxP, completion_NxT, mask_NxT, old_logp_NxT, rewards_NxR,
    truncated_N. state: params, opt_state, step, and ref_params when loss.beta > 0.
    """
    loss_fn = cfg.policy_loss()
    g = cfg.group_size
    b = rollouts["prompt"].shape[0]
    # (1) total reward and group advantages
    reward_N = total_reward(rollouts["rewards_NxR"], cfg.reward_weights)
    adv_N, adv_aux = adv_lib.compute(reward_N, g, cfg.advantage, cfg.std_ddof, cfg.adv_eps)
    mask = rollouts["mask_NxT"]
    if cfg.mask_truncated:
        mask = mask & ~rollouts["truncated_N"][:, None]
    batch = dict(rollouts, adv_N=adv_N, mask_NxT=mask)
    # (2) log-probs that stay fixed during the inner iterations. With one optimiser update they
    # are taken inside the loss's micro-batch step instead: recomputed old log-probs are then the
    # loss's own (stop_gradient), reference ones one forward per micro-batch in the same scan.
    chunks = cfg.mini_batches * cfg.grad_accum
    single = cfg.mu * cfg.mini_batches == 1
    if cfg.old_logp == "recompute" and single:
        batch.pop("old_logp_NxT", None)  # the sampler's are not used: see micro_loss
    elif cfg.old_logp == "recompute":
        batch["old_logp_NxT"] = _chunked_logp(graphdef, state["params"], batch, cfg, chunks)
    use_ref = loss_fn.uses_ref and "ref_params" in state
    if use_ref and not single:
        batch["ref_logp_NxT"] = _chunked_logp(graphdef, state["ref_params"], batch, cfg, chunks)
    # (3) normaliser of the aggregation, fixed per optimiser update (see grpo_loss)
    mb = b // cfg.mini_batches  # prompts per mini-batch
    if loss_fn.whole_batch:
        denom_all = jnp.full((cfg.mini_batches,), loss_fn.normalizer(mask))
    else:
        m_split = mask.reshape(cfg.mini_batches, mb * g, -1)
        denom_all = jax.vmap(loss_fn.normalizer)(m_split)

    def micro_loss(params, sub: dict, denom: jax.Array):
        logp, ent = _logp(graphdef, params, sub, cfg, with_entropy=cfg.entropy)
        ref = sub.get("ref_logp_NxT")
        if use_ref and ref is None:  # single update: the reference forward of this micro-batch
            ref = jax.lax.stop_gradient(_logp(graphdef, state["ref_params"], sub, cfg)[0])
        old = sub.get("old_logp_NxT")
        if old is None:  # single update, recompute: the policy the loss sees is the sampling one
            old = jax.lax.stop_gradient(logp)
        x = losses.TokenInputs(
            logp_NxT=logp,
            old_logp_NxT=old,
            ref_logp_NxT=ref,
            adv_N=sub["adv_N"],
            mask_NxT=sub["mask_NxT"],
            entropy_NxT=None if ent is None else jax.lax.stop_gradient(ent),
        )
        return loss_fn(x, denom)

    keys_prompt = ("prompt", "prompt_valid")
    keys_rows = tuple(
        k for k in ("completion", "mask_NxT", "old_logp_NxT", "ref_logp_NxT", "adv_N") if k in batch
    )

    def first_micro(params):
        micro_p = mb // cfg.grad_accum
        sub = {k: batch[k][:micro_p] for k in keys_prompt}
        sub.update({k: batch[k][: micro_p * g] for k in keys_rows})
        return micro_loss(params, sub, denom_all[0])[1]

    aux0 = losses.init_aux(jax.eval_shape(first_micro, state["params"]))
    order = minibatch_order(cfg, state["step"])

    def optimizer_update(carry, j):
        st = carry
        mb_index = order[j]
        micro_p = mb // cfg.grad_accum

        def micro(acc, a):
            p0 = mb_index * mb + a * micro_p
            sub = {k: _rows(batch[k], p0, micro_p) for k in keys_prompt}
            sub.update({k: _rows(batch[k], p0 * g, micro_p * g) for k in keys_rows})
            (loss, aux), grads = jax.value_and_grad(micro_loss, has_aux=True)(
                st["params"], sub, denom_all[mb_index]
            )
            g_acc, l_acc, aux_acc = acc
            return (
                jax.tree.map(jnp.add, g_acc, grads),
                l_acc + loss,
                losses.merge_aux(aux_acc, aux),
            ), None

        zeros = jax.tree.map(jnp.zeros_like, st["params"])
        init = (zeros, jnp.zeros((), jnp.float32), aux0)
        (grads, loss, aux), _ = jax.lax.scan(micro, init, jnp.arange(cfg.grad_accum))
        aux = losses.finish_aux(aux, cfg.grad_accum)
        grad_norm = optax.tree.norm(grads)
        ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        updates, new_opt = tx.update(grads, st["opt_state"], st["params"])
        new_params = optax.apply_updates(st["params"], updates)
        keep = lambda new, old: jax.tree.map(lambda x, y: jnp.where(ok, x, y), new, old)  # noqa: E731
        st = dict(
            st, params=keep(new_params, st["params"]), opt_state=keep(new_opt, st["opt_state"])
        )
        return st, dict(aux, loss=loss, grad_norm=grad_norm, nonfinite=1 - ok.astype(jnp.int32))

    n_updates = cfg.mu * cfg.mini_batches
    new_state, per_update = jax.lax.scan(optimizer_update, state, jnp.arange(n_updates))
    metrics = jax.tree.map(lambda x: x.mean(axis=0), per_update)
    for k, v in per_update.items():  # extremes over the updates, not their means
        if k.endswith("_min"):
            metrics[k] = v.min()
        elif k.endswith("_max"):
            metrics[k] = v.max()
    metrics["nonfinite"] = per_update["nonfinite"].max()
    metrics["skipped_inner_updates"] = per_update["nonfinite"].sum()
    metrics.update(adv_aux)
    metrics["reward"] = jnp.nanmean(reward_N)
    metrics["adv_abs_mean"] = jnp.abs(adv_N).mean()
    new_state["step"] = state["step"] + 1
    return new_state, metrics


def total_reward(rewards_NxR: jax.Array, weights: tuple[float, ...]) -> jax.Array:
    """The weighted sum of the reward columns; weight-0 columns are diagnostics and never enter it.

    Leaving them out (rather than multiplying by 0) matters: 0 * NaN is NaN, and a NaN total gives
    the rollout advantage 0 and removes it from its group's statistics.
    """
    cols = [j for j, w in enumerate(weights) if w != 0.0]
    if not cols:
        raise ValueError("every reward has weight 0; give at least one a nonzero weight.")
    r = rewards_NxR[:, jnp.asarray(cols)].astype(jnp.float32)
    w = jnp.asarray([weights[j] for j in cols], jnp.float32)
    return (r * w[None, :]).sum(axis=1)


def state_with_ref(state: dict, beta: float) -> dict:
    """Adds a frozen copy of the params as the reference model when the KL term is on."""
    if not beta:
        return state
    return dict(state, ref_params=jax.tree.map(jnp.copy, state["params"]))


def refresh_reference(state: dict) -> dict:
    """R1-Zero / DeepSeekMath reference refresh: the reference becomes the current policy."""
    return dict(state, ref_params=jax.tree.map(jnp.copy, state["params"]))


def metrics_to_host(metrics: dict) -> dict[str, Any]:
    return {k: float(v) for k, v in jax.device_get(metrics).items()}
