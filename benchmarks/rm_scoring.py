"""What a reward model costs per GRPO step, fused vs split; prints JSON.

    python benchmarks/rm_scoring.py [--prompts 16] [--group 8] [--new_tokens 128] [--steps 4]

Policy and reward model both have the toy shape (0.92M parameters: d 128, 4 layers, vocab 512 of a
toy sentencepiece tokenizer), random weights; prompts are general-task questions under the r1_zero
template (about 150 tokens). Three runs of the same GRPO step, timed after one warm-up step:
- split_rm: sample (one program) -> decode, re-encode, the reward model over fixed host batches ->
  update (one program); its `reward` phase is the reward model's cost;
- fused_rm: sampling, the reward model's forward on the sampled ids, advantages and the update in
  one program;
- fused_len: the same program with a trivial jittable reward (completion length) instead, so
  fused_rm - fused_len is the reward model's cost inside the fused step.
Medians over the counted steps, in seconds. The machine is shared: compare ratios from one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import jax
import numpy as np
import optax

from r1jax import config_base, rewards
from r1jax.data import general_task
from r1jax.data.prompts import encode_prompt, pad_prompts
from r1jax.lab import rm_dir
from r1jax.model import ModelConfig, api
from r1jax.parallel import sharding
from r1jax.rewards import token_tables
from r1jax.rewards.registry import Reward
from r1jax.rl import grpo_loss, rollout, train_step
from r1jax.rl import step as step_lib
from r1jax.sampling import sample as sampling
from r1jax.train import lm_step


def length_reward(new_tokens: int) -> Reward:
    host = lambda texts, exs: np.array([min(len(t) / (4 * new_tokens), 1.0) for t in texts])  # noqa: E731
    jax_fn = lambda tokens, mask, targets, vt: mask.sum(1) / new_tokens  # noqa: E731
    return Reward("length", host, 0.0, 1.0, jax_fn=jax_fn)


def run(mode: str, args, cfg: ModelConfig, tok, reward: Reward, prompts) -> dict:
    fused = mode.startswith("fused")
    mesh, rules = sharding.make_mesh((-1, 1, 1)), sharding.DEFAULT_RULES
    graphdef, params, pshard = api.create(cfg, 0, mesh, rules)
    tx = optax.adamw(1e-5)
    state, sshard = lm_step.init_state(graphdef, params, pshard, tx, mesh)
    state = train_step.state_with_ref(state, 0.04)
    sshard = dict(sshard, ref_params=pshard)
    scfg = sampling.SamplingConfig(max_new_tokens=args.new_tokens, eos_id=tok.eos_id)
    ucfg = train_step.UpdateConfig(group_size=args.group, loss=grpo_loss.LossOptions(beta=0.04))
    repl = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    batch_sh = lambda nd: sharding.batch_sharding(mesh, rules, nd) if nd else repl  # noqa: E731
    vt = token_tables.build(tok, cfg.vocab_size)
    if fused:
        rollout.place_reward_states([reward], mesh, rules)
    with jax.set_mesh(mesh):
        fns = rollout.build(graphdef, tx, scfg, ucfg, [reward], vt, sshard, batch_sh, fused)
    ctx = step_lib.StepContext(fns, fused, [reward], tok, mesh, rules, args.group)
    steps, phases = [], []
    for i in range(1 + args.steps):
        t0 = time.perf_counter()
        res = step_lib.run(ctx, state, prompts, jax.random.key(i))
        state = res.state
        jax.block_until_ready(state["params"])
        if i:  # step 0 compiles
            steps.append(time.perf_counter() - t0)
            phases.append(res.times)
    med = lambda xs: round(statistics.median(xs), 4)  # noqa: E731
    out = {"step_s": med(steps)}
    for k in ("sample", "reward", "update"):
        out[f"{k}_s"] = med([p.get(k, 0.0) for p in phases])
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--new_tokens", type=int, default=128)
    p.add_argument("--steps", type=int, default=4)
    args = p.parse_args()
    tok = rm_dir.toy_tokenizer(512)
    cfg = ModelConfig(**dict(config_base.model("toy").to_dict(), vocab_size=tok.vocab_size))
    d = rm_dir.random_rm_dir(tempfile.mkdtemp(), cfg, tok, max_len=512, on="all")
    questions = [e["question"] for e in general_task.generate_splits(0, 64, 0)["train"]]
    rows = [encode_prompt(tok, "r1_zero", q) for q in questions[: args.prompts]]
    ids, valid = pad_prompts(rows, tok.pad_id, multiple=16)
    examples = [{"question": q} for q in questions[: args.prompts]]
    prompts = step_lib.Prompts(jax.numpy.asarray(ids), jax.numpy.asarray(valid), examples)
    spec = f"reward_model(path='{d}', on='all')"
    out = {
        "config": dict(vars(args), prompt_tokens=int(ids.shape[1]), devices=jax.device_count()),
        "split_rm": run("split_rm", args, cfg, tok, rewards.build([spec])[0], prompts),
        "fused_rm": run("fused_rm", args, cfg, tok, rewards.build([spec])[0], prompts),
        "fused_len": run("fused_len", args, cfg, tok, length_reward(args.new_tokens), prompts),
    }
    s, f, f0 = out["split_rm"], out["fused_rm"], out["fused_len"]
    out["rm_cost_s"] = {"split": s["reward_s"], "fused": round(f["step_s"] - f0["step_s"], 4)}
    out["fused_over_split_step"] = round(f["step_s"] / s["step_s"], 3)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
