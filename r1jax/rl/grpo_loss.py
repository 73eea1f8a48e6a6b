"""The GRPO loss as a pure function of arrays: no model call, no rewards, no config object.

Letters: N rollouts (sequences) in this call, T completion tokens.

Per token (DeepSeekMath eq. 3, with the DAPO and dual-clip variants as options):
    ratio = exp(logp - old_logp)
    pg    = -min(ratio * A, clip(ratio, 1 - eps_low, 1 + eps_high) * A)
            (dual clip, for A < 0: pg = min(pg, -c * A))
    kl    = estimator of KL(pi || pi_ref) from delta = ref_logp - logp:
            k1 = -delta, k2 = delta^2 / 2, k3 = exp(delta) - delta - 1 (default, DeepSeekMath);
            with kl_clamp = c > 0, delta is first bounded to [-c, c] (verl / Tunix guard exp()
            against overflow; the bound also stops the KL gradient where |delta| > c)
    loss_t = pg + beta * kl
Aggregation (every mode is a *sum* divided by a normaliser, so that gradient accumulation over
micro-batches that share the normaliser equals one big batch):
    "seq_mean_token_mean"  mean over sequences of each sequence's token mean (DeepSeekMath; default)
    "token_mean"           sum over tokens / active tokens of the optimisation batch (DAPO, BNPO)
    "seq_sum_const"        sum over tokens / (sequences * max_tokens)  (Dr. GRPO's constant)
    "seq_mean_token_sum"   each sequence's token sum, mean over sequences (verl's
                           "seq-mean-token-sum": long completions weigh more)
    "global_token_mean"    sum over tokens / active tokens of the WHOLE rollout batch, across
                           every mini-batch, micro-batch and process (TRL's loss_type="dapo")
The normalisers default to this call's own counts; the trainer passes the batch-level counts.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

AGGREGATIONS = (
    "seq_mean_token_mean",
    "token_mean",
    "seq_sum_const",
    "global_token_mean",
    "seq_mean_token_sum",
)
KL_ESTIMATORS = ("k1", "k2", "k3")


@dataclasses.dataclass(frozen=True)
class LossOptions:
    """Every convention that differs between GRPO papers and libraries, with its default."""

    epsilon_low: float = 0.2
    epsilon_high: float = 0.2  # DAPO's clip-higher uses 0.28
    dual_clip: float = 0.0  # c > 1 enables dual clip for negative advantages (0 = off)
    beta: float = 0.04  # KL weight; 0 skips the reference model entirely
    kl_estimator: str = "k3"
    aggregation: str = "seq_mean_token_mean"
    max_tokens: int = 0  # Dr. GRPO's constant length (the generation budget); for seq_sum_const
    kl_clamp: float = 0.0  # c > 0 bounds delta = ref_logp - logp to [-c, c] in the KL (0 = off)

    def __post_init__(self):
        if self.kl_estimator not in KL_ESTIMATORS:
            raise ValueError(f"kl_estimator={self.kl_estimator!r} is not one of {KL_ESTIMATORS}.")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation={self.aggregation!r} is not one of {AGGREGATIONS}.")
        if self.aggregation == "seq_sum_const" and self.max_tokens <= 0:
            raise ValueError("aggregation='seq_sum_const' (Dr. GRPO) needs max_tokens > 0.")
        if self.kl_clamp < 0:
            raise ValueError(f"kl_clamp={self.kl_clamp} must be >= 0 (0 disables it).")
        if self.dual_clip and self.dual_clip <= 1.0:
            raise ValueError(f"dual_clip={self.dual_clip} must be > 1 (or 0 to disable).")


def kl_estimate(
    logp_NxT: jax.Array, ref_logp_NxT: jax.Array, estimator: str, clamp: float = 0.0
) -> jax.Array:
    """Per-token estimate of KL(pi || pi_ref) from samples of pi (Schulman's k1/k2/k3)."""
    delta = ref_logp_NxT - logp_NxT
    if clamp:
        delta = jnp.clip(delta, -clamp, clamp)
    if estimator == "k1":
        return -delta
    if estimator == "k2":
        return 0.5 * delta**2
    return jnp.exp(delta) - delta - 1.0


def normalizer(mask_NxT: jax.Array, opts: LossOptions) -> jax.Array:
    """This batch's natural denominator for the chosen aggregation (see module docstring)."""
    m = mask_NxT.astype(jnp.float32)
    if opts.aggregation in ("seq_mean_token_mean", "seq_mean_token_sum"):
        return jnp.asarray(m.shape[0], jnp.float32)
    if opts.aggregation == "seq_sum_const":
        return jnp.asarray(m.shape[0] * opts.max_tokens, jnp.float32)
    return m.sum()


def grpo_loss(
    logp_NxT: jax.Array,
    old_logp_NxT: jax.Array,
    ref_logp_NxT: jax.Array | None,
    adv_N: jax.Array,
    mask_NxT: jax.Array,
    opts: LossOptions = LossOptions(),
    entropy_NxT: jax.Array | None = None,
    denom: jax.Array | None = None,
) -> tuple[jax.Array, dict]:
    """(loss, aux). `denom` overrides the normaliser (batch-level counts under accumulation)."""
    m = mask_NxT.astype(jnp.float32)
    adv = adv_N.astype(jnp.float32)[:, None]
    # (1) importance ratio against the policy that sampled the tokens
    log_ratio = jnp.where(mask_NxT, logp_NxT - old_logp_NxT, 0.0)
    ratio = jnp.exp(log_ratio)
    # (2) clipped surrogate (PPO), asymmetric clip range (DAPO)
    clipped = jnp.clip(ratio, 1.0 - opts.epsilon_low, 1.0 + opts.epsilon_high)
    pg = -jnp.minimum(ratio * adv, clipped * adv)
    # (3) dual clip bounds the loss of negative-advantage tokens with a huge ratio
    if opts.dual_clip:
        pg = jnp.where(adv < 0, jnp.minimum(pg, -opts.dual_clip * adv), pg)
    # (4) KL to the reference policy (skipped entirely when beta = 0)
    if opts.beta and ref_logp_NxT is not None:
        # padded positions may hold anything (k3's exp would turn inf * 0 into NaN): zero them first
        kl = kl_estimate(
            jnp.where(mask_NxT, logp_NxT, 0.0),
            jnp.where(mask_NxT, ref_logp_NxT, 0.0),
            opts.kl_estimator,
            opts.kl_clamp,
        )
        per_token = pg + opts.beta * kl
    else:
        kl = jnp.zeros_like(pg)
        per_token = pg
    # (5) aggregation: a sum over this batch divided by the (possibly batch-level) normaliser
    tokens_per_seq = jnp.maximum(m.sum(axis=1), 1.0)
    if opts.aggregation == "seq_mean_token_mean":
        numer = ((per_token * m).sum(axis=1) / tokens_per_seq).sum()
    else:
        numer = (per_token * m).sum()
    denom = normalizer(mask_NxT, opts) if denom is None else denom
    loss = numer / jnp.maximum(denom, 1e-8)
    # (6) diagnostics, as token means over active tokens
    n_tok = jnp.maximum(m.sum(), 1.0)
    tmean = lambda x: (x * m).sum() / n_tok  # noqa: E731
    big = jnp.finfo(jnp.float32).max
    aux = {
        "pg_loss": tmean(pg),
        "kl": tmean(kl),
        "clip_frac_low": tmean(((ratio < 1.0 - opts.epsilon_low) & (adv < 0)).astype(jnp.float32)),
        "clip_frac_high": tmean(
            ((ratio > 1.0 + opts.epsilon_high) & (adv > 0)).astype(jnp.float32)
        ),
        "ratio_mean": tmean(ratio),
        "ratio_min": jnp.where(mask_NxT, ratio, big).min(),
        "ratio_max": jnp.where(mask_NxT, ratio, -big).max(),
        "active_tokens": m.sum(),
    }
    if entropy_NxT is not None:
        aux["entropy"] = tmean(entropy_NxT)
    return loss, aux
