"""Collect one batch of scored rollouts with the trainer's own sample and score steps.

Letters: B prompts, G samples each, N = B * G.

`collect_rollouts` is `rl/step.py`'s split step without the update: the jitted sampler (exact
log-probs at the sampling temperature), host rewards on the decoded text, then advantages by a
registered estimator over the weighted reward sum (`rl/advantages.py`, as `train_step.update`
computes them). The sampler is compiled once per architecture, group size and sampling settings.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np

from r1jax.data import prompts as prompts_lib
from r1jax.lab.batch import RolloutBatch
from r1jax.lab.policy import Policy
from r1jax.parallel import distributed
from r1jax.rewards import build as build_rewards
from r1jax.rewards.registry import Reward
from r1jax.rl import advantages as adv_lib
from r1jax.rl import rollout, train_step
from r1jax.rl import step as step_lib
from r1jax.sampling.sample import SamplingConfig
from r1jax.sampling.sampler import Sampler
from r1jax.tokenizers import stop_ids

_SAMPLERS: dict[tuple, Sampler] = {}


def _sampler(policy: Policy) -> Sampler:
    """One jitted Sampler per model architecture, mesh and rules (params are arguments: a policy
    loaded again, or with other params, reuses the compiled programs)."""
    key = (policy.graphdef, policy.mesh, tuple(policy.rules))
    if key not in _SAMPLERS:
        shardings = jax.tree.map(lambda x: x.sharding, policy.params)
        _SAMPLERS[key] = Sampler(policy.graphdef, shardings, policy.mesh, policy.rules)
    return _SAMPLERS[key]


def build_reward_list(rewards: Sequence[str | Reward]) -> list[Reward]:
    """Reward specs ("format(weight=0.5)") or `Reward` objects, in order."""
    return [r if isinstance(r, Reward) else build_rewards([r])[0] for r in rewards]


def collect_rollouts(
    policy: Policy,
    examples: Sequence[dict],
    rewards: Sequence[str | Reward],
    group_size: int = 8,
    max_new_tokens: int = 128,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    seed: int = 0,
    template: str = "r1_zero",
    prompt_bucket: int = 16,
    advantage: str | adv_lib.Estimator = "grpo",
    std_ddof: int = 0,
    adv_eps: float = 1e-4,
    length_bucket: int = 32,
) -> RolloutBatch:
    """G samples of each example's prompt, scored by every reward, with group advantages.

    The completion arrays are cut to the longest completion rounded up to `length_bucket` tokens
    (as the GRPO stage cuts them before its update; 0 keeps all `max_new_tokens`): only padding is
    dropped, so every loss is unchanged and cheaper. `max_new_tokens` stays the batch's budget.
    """
    if group_size < 2:
        raise ValueError(f"group_size={group_size}: group advantages need at least 2 samples.")
    examples = list(examples)
    tok = policy.tokenizer
    reward_fns = build_reward_list(rewards)
    scfg = SamplingConfig(
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        eos_id=tok.eos_id,
        pad_id=tok.pad_id,
        stop_ids=stop_ids(tok),
    )
    sampler = _sampler(policy)
    fns = rollout.StepFns(
        sample=lambda p, ids, valid, key: sampler(p, ids, valid, key, group_size, scfg),
        update=None,
        fused=None,
    )
    ctx = step_lib.StepContext(fns, False, reward_fns, tok, policy.mesh, policy.rules, group_size)
    ids, valid = prompts_lib.encode_batch(
        tok, template, examples, prompt_bucket, policy.config.max_len
    )
    put = lambda x: distributed.global_batch(x, policy.mesh, policy.rules)  # noqa: E731
    prompts = step_lib.Prompts(put(ids), put(valid), examples)
    out = step_lib.sample(ctx, policy.params, prompts, jax.random.key(seed))
    scored = step_lib.score(ctx, prompts, out)
    keep = step_lib.trim(scored.batch, int(scored.lengths_N.max()), length_bucket)["completion"]
    t = keep.shape[1]
    tokens_NxT = distributed.gather_rows(scored.tokens_NxT)[:, :t]  # host copies for the notebook
    mask_NxT = distributed.gather_rows(scored.mask_NxT)[:, :t]
    weights = tuple(float(f.weight) for f in reward_fns)
    reward_N = train_step.total_reward(scored.rewards_NxR, weights)
    adv_N, _ = adv_lib.compute(reward_N, group_size, advantage, std_ddof, adv_eps)
    return RolloutBatch(
        prompt_BxP=ids,
        prompt_valid_BxP=valid,
        completion_NxT=tokens_NxT,
        mask_NxT=mask_NxT,
        old_logp_NxT=distributed.gather_rows(out.logp_NxT)[:, :t],
        rewards_NxR=scored.rewards_NxR,
        adv_N=np.asarray(adv_N, np.float32),
        truncated_N=scored.truncated_N,
        lengths_N=scored.lengths_N,
        reward_names=tuple(f.name for f in reward_fns),
        reward_weights=weights,
        prompts=[tok.decode(p[v]) for p, v in zip(ids, valid)],
        completions=step_lib.decode_rows(tok, tokens_NxT, mask_NxT),
        examples=examples,
        group_size=group_size,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        advantage=advantage if isinstance(advantage, str) else getattr(advantage, "__name__", "?"),
        source=policy.source,
    )
