"""Times one GRPO step on the peers' shared tiny config and prints JSON.

    python benchmarks/grpo_step.py --preset=peer_tiny [--steps 7] [--fused]

The preset matches ../shared/peer-bench (TRL GRPOTrainer and Tunix GRPO, both ~1.8-1.9 s per step on
the 2-core CPU): Qwen2-shaped model (vocab 512, d 256, 4 layers, 4 heads, 2 kv heads, mlp 688, q/k/v
bias, untied), 8 prompts x G 8, prompts "ab+cd=" of 7 tokens (char-level ids), 64 new tokens at
temperature 1.0, reward = 1 for the right sum + 0.1 x digit share, beta 0.04 (k3), clip 0.2, mu 1,
AdamW 1e-5 constant, grad clip 1.0, float32. Reported: median step time over the counted steps
(after 2 warm-up steps), the sampling / reward / update split, generation tokens/s, the first step
(compile) time, and peak RSS. `--fused` uses the jittable form of the reward (one XLA program per
step); without it the reward runs on the host between the sampler and the update.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np

from r1jax import config_base
from r1jax import model as model_lib
from r1jax.parallel import sharding
from r1jax.rewards.registry import Reward
from r1jax.rl import grpo_loss, rollout, train_step
from r1jax.rl import step as step_lib
from r1jax.sampling import sample as sampling
from r1jax.train import heap_policy, lm_step, optim

CHARS = "0123456789+=- "
PAD, EOS, BOS = 0, 1, 2


class CharTokenizer:
    """The peer bench's char-level ids: specials 0-3, then one id per character."""

    pad_id, eos_id, bos_id, vocab_size = PAD, EOS, BOS, 512

    def encode(self, text: str) -> list[int]:
        return [4 + CHARS.index(c) for c in text]

    def decode(self, ids) -> str:
        return "".join(
            CHARS[i - 4] if 4 <= i < 4 + len(CHARS) else "\u0100" for i in map(int, ids) if i > 3
        )


def arith_reward(completions, examples) -> np.ndarray:
    """The peers' reward: 1 if the completion starts with the right sum, + 0.1 x digit share."""
    out = []
    for text, ex in zip(completions, examples):
        want = str(ex["sum"])
        digits = len(text) - len(text.lstrip("0123456789"))
        correct = float(digits > 0 and text[:digits] == want)
        share = sum(ch.isdigit() for ch in text) / max(len(text), 1)
        out.append(correct + 0.1 * share)
    return np.array(out, np.float32)


def arith_reward_jax(tokens, mask, targets, vt) -> jax.Array:
    """The same reward on char ids (digits are ids 4..13): exact match of the leading digits."""
    del vt
    live = mask & (tokens != EOS)
    is_digit = live & (tokens >= 4) & (tokens <= 13)
    lead = jnp.cumprod(is_digit, axis=1).astype(bool)
    n_lead = lead.sum(axis=1)
    want = targets["digits_NxD"]
    d = want.shape[1]
    got = jnp.where(lead[:, :d], tokens[:, :d] - 4, -1)
    correct = (n_lead == targets["n_N"]) & (got == want).all(axis=1)
    # completion text length in characters = live tokens that decode to a char (all but specials)
    n_chars = (live & (tokens > 3)).sum(axis=1)
    share = is_digit.sum(axis=1) / jnp.maximum(n_chars, 1)
    return correct.astype(jnp.float32) + 0.1 * share


def arith_targets(examples, tokenizer=None) -> dict:
    digits = np.full((len(examples), 4), -1, np.int32)
    n = np.zeros(len(examples), np.int32)
    for i, ex in enumerate(examples):
        s = str(ex["sum"])
        digits[i, : len(s)] = [int(c) for c in s]
        n[i] = len(s)
    return {"digits_NxD": digits, "n_N": n}


def main():
    heap_policy.configure()  # as `python -m r1jax.main` runs
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="peer_tiny", choices=["peer_tiny"])
    ap.add_argument("--steps", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--fused", action="store_true")
    args = ap.parse_args()
    cfg = model_lib.ModelConfig(**config_base.MODEL_PRESETS["peer_tiny"])
    mesh = sharding.make_mesh((1, 1, 1), jax.devices()[:1])
    rules = sharding.DEFAULT_RULES
    graphdef, params, pshard = model_lib.create(cfg, 0, mesh, rules)
    ocfg = optim.OptimizerConfig(
        lr=1e-5, warmup_steps=0, schedule="constant", weight_decay=0.0, clip_norm=1.0
    )
    tx, _ = optim.make(ocfg, args.steps)
    state, sshard = lm_step.init_state(graphdef, params, pshard, tx, mesh)
    state = train_step.state_with_ref(state, 0.04)
    sshard = dict(sshard, ref_params=pshard)
    b, g, t = 8, 8, 64
    reward = Reward(
        "arith", arith_reward, 0.0, 1.1, jax_fn=arith_reward_jax, targets_fn=arith_targets
    )
    scfg = sampling.SamplingConfig(max_new_tokens=t, temperature=1.0, eos_id=EOS, pad_id=PAD)
    ucfg = train_step.UpdateConfig(
        group_size=g,
        temperature=1.0,
        reward_weights=(1.0,),
        loss=grpo_loss.LossOptions(epsilon_low=0.2, epsilon_high=0.2, beta=0.04, kl_estimator="k3"),
    )
    repl = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    batch_sh = lambda nd: sharding.batch_sharding(mesh, rules, nd) if nd else repl  # noqa: E731
    with jax.set_mesh(mesh):
        fns = rollout.build(graphdef, tx, scfg, ucfg, [reward], None, sshard, batch_sh, args.fused)
    tok = CharTokenizer()
    ctx = step_lib.StepContext(fns, args.fused, [reward], tok, mesh, rules, g)
    rng = np.random.default_rng(0)
    times, gen_s, gen_tok, phases = [], [], [], []
    for step in range(args.steps):
        pairs = [(int(rng.integers(10, 100)), int(rng.integers(10, 100))) for _ in range(b)]
        ids = np.array([[BOS] + tok.encode(f"{x}+{y}=") for x, y in pairs], np.int32)
        valid = np.ones_like(ids, bool)
        prompts = step_lib.Prompts(
            jnp.asarray(ids), jnp.asarray(valid), [{"sum": x + y} for x, y in pairs]
        )
        t0 = time.perf_counter()
        res = step_lib.run(ctx, state, prompts, jax.random.key(step))
        state = res.state
        jax.block_until_ready(state["params"])
        times.append(time.perf_counter() - t0)
        ph = (res.times["sample"], res.times["reward"], res.times["update"])
        phases.append(ph)
        gen_s.append(ph[0])
        gen_tok.append(int(res.rollouts.lengths_N.sum()))
    counted = slice(args.warmup, None)
    med = lambda xs: float(np.median(xs[counted])) if len(xs[counted]) else float("nan")  # noqa: E731
    res = {
        "preset": args.preset,
        "path": "fused" if args.fused else "split",
        "step_time_s_median": med(times),
        "first_step_s": times[0],
        "sample_s_median": med([p[0] for p in phases]),
        "reward_s_median": med([p[1] for p in phases]),
        "update_s_median": med([p[2] for p in phases]),
        "gen_tokens_per_s_median": med([n / s for n, s in zip(gen_tok, gen_s)])
        if not args.fused
        else None,
        "gen_tokens_median": med(gen_tok),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "step_times_s": [round(x, 4) for x in times],
        "devices": str(jax.devices()[0]),
    }
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
