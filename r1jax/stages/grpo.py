"""The GRPO stage (R1-Zero and the later RL stages): rollouts, rewards, updates, evaluation, plots.

Per step: B prompts from the task's train split -> G samples each -> rewards -> group advantages ->
mu inner iterations of updates. Fused (one XLA program) when every reward is jittable, split at the
reward boundary otherwise. The held-out split is evaluated before the first update and every
`eval.every_steps` steps (pass@1 at the paper's sampling settings), and at the end with the full
harness.
"""

from __future__ import annotations

import time

import jax
import ml_collections
import numpy as np

from r1jax import config_base, rewards
from r1jax.data import prompts as prompts_lib
from r1jax.data import tasks
from r1jax.eval import harness as evaluation
from r1jax.parallel import distributed, sharding
from r1jax.rewards.token_tables import build as build_tables
from r1jax.rl import rollout, train_step
from r1jax.rl.dynamic import DynamicSampler
from r1jax.rl.step import split_step_metrics, trim
from r1jax.stages import common, init_model
from r1jax.stages.grpo_config import (
    eval_config,
    sampling_config,
    update_config,
    use_fused,
    validate,
)
from r1jax.tokenizers import stop_ids
from r1jax.train import faults, lm_step, loop, optim


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    mesh = common.setup(config, config_base.grpo())
    rules = common.rules(config)
    sharding.set_rules(rules)
    reward_fns = rewards.build(config.rewards)
    validate(config, mesh, rules, reward_fns)
    graphdef, params, pshard, mcfg, tok, source = init_model.load_policy(
        config, workdir, mesh, rules
    )
    init_model.publish_layout(workdir, source, mcfg, tok)
    fused = use_fused(config, reward_fns, tok)
    vt = build_tables(tok, mcfg.vocab_size) if fused else None
    scfg = sampling_config(config, tok)
    ucfg = update_config(config, reward_fns)
    ocfg = optim.OptimizerConfig.from_dict(config.optimizer.to_dict())
    tx, lr_fn = optim.make(ocfg, config.steps * ucfg.mu * ucfg.mini_batches)

    state, sshard = lm_step.init_state(graphdef, params, pshard, tx, mesh)
    state = train_step.state_with_ref(state, config.rl.beta)
    if "ref_params" in state:
        sshard = dict(sshard, ref_params=pshard)
    ckpt = loop.make_checkpointer(workdir, config.checkpoint, tuple(state))
    start, state, meta = loop.resume(ckpt, state, config.checkpoint.fallback_to_previous)
    position = int(meta["data_position"]) if meta else 0

    train = tasks.load(
        config.task.name, "train", config.task.data_dir, **config.task.options.to_dict()
    )
    test = tasks.load(
        config.task.name,
        config.task.eval_split,
        config.task.data_dir,
        **config.task.options.to_dict(),
    )
    stream = prompts_lib.PromptStream(train, config.seed)
    accuracy = rewards.build([config.eval.accuracy_reward])[0]
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    batch_sh = lambda nd: sharding.batch_sharding(mesh, rules, nd) if nd else replicated  # noqa: E731
    with jax.set_mesh(mesh):
        fns = rollout.build(graphdef, tx, scfg, ucfg, reward_fns, vt, sshard, batch_sh, fused)
    ecfg = eval_config(config, quick=True)
    eval_sample = evaluation.make_sample_fn(
        graphdef, ecfg, tok.eos_id, tok.pad_id, state["params"], mesh, rules, stop_ids(tok)
    )
    eval_set = test[: config.eval.num_problems]
    base_key = jax.random.key(config.seed)
    rows = distributed.process_rows(config.rl.prompts_per_step)
    dyn = (
        DynamicSampler(config, fns, reward_fns, tok, stream, mesh, rules, rows)
        if config.rl.dynamic_sampling
        else None
    )
    print(
        f"r1jax: GRPO on {config.task.name} from {source}: {mcfg.num_params() / 1e6:.2f}M params, "
        f"{'fused' if fused else 'split'} step, mesh {dict(mesh.shape)}",
        flush=True,
    )
    pos = {"data": position}

    def held_out(params, key) -> dict:
        s, _ = evaluation.evaluate(
            graphdef, params, tok, eval_set, accuracy, ecfg, jax.random.fold_in(key, 7), eval_sample
        )
        return {f"eval_{k}": v for k, v in s.items() if isinstance(v, float)}

    def step_fn(state: dict, step: int):
        key = jax.random.fold_in(base_key, step)
        # the starting model is evaluated too (before step 0's update), so curves start at the base
        base_eval = held_out(state["params"], key) if config.eval.every_steps and step == 0 else {}
        if (
            config.rl.ref_update_every
            and step
            and step % config.rl.ref_update_every == 0
            and "ref_params" in state
        ):
            state = train_step.refresh_reference(state)
        t0 = time.perf_counter()
        if dyn is not None:
            batch, examples, out, r_host, info, pos["data"] = dyn.collect(
                state["params"], pos["data"], key
            )
            t1 = time.perf_counter()
            batch = trim(batch, int(np.max(out.lengths_N)), config.rl.length_bucket)
            with jax.set_mesh(mesh):
                state, m = fns.update(state, batch)
            m = jax.device_get(m)
            m.update(info)
            times = (t1 - t0, 0.0, time.perf_counter() - t1)
        else:
            examples = stream.take(pos["data"], config.rl.prompts_per_step)
            pos["data"] += config.rl.prompts_per_step
            local = examples[rows[0] : rows[1]]
            ids, valid = prompts_lib.encode_batch(
                tok, config.task.template, local, config.rl.prompt_bucket, mcfg.max_len
            )
            ids = faults.poison(step, ids)
            ids, valid = (distributed.global_batch(x, mesh, rules) for x in (ids, valid))
            group_examples = [ex for ex in examples for _ in range(config.rl.group_size)]
            state, m, out, r_host, times = split_step_metrics(
                fns,
                fused,
                state,
                ids,
                valid,
                key,
                reward_fns,
                tok,
                group_examples,
                mesh,
                rules,
                ucfg,
                config.rl.length_bucket,
            )
        m.update(rollout_metrics(out, r_host, reward_fns, tok, examples, accuracy, config, times))
        m["lr"] = float(lr_fn(step * ucfg.mu * ucfg.mini_batches))
        m.update(base_eval)
        if config.eval.every_steps and (step + 1) % config.eval.every_steps == 0:
            m.update(held_out(state["params"], key))
        return state, m

    def meta_fn(step: int) -> dict:
        return {
            "step": step,
            "data_position": pos["data"],
            "stage": "grpo",
            "model": mcfg.to_dict(),
            "config": config.to_json_best_effort(),
        }

    state = loop.run(
        workdir=workdir,
        state=state,
        start=start,
        total=config.steps,
        step_fn=step_fn,
        ckpt=ckpt,
        meta_fn=meta_fn,
        progress_keys=("reward", "accuracy", "completion_length_mean", "kl", "eval_pass@1"),
        plot_keys=tuple(config.plot_keys),
        desc="grpo",
        max_consecutive_nonfinite=config.max_consecutive_nonfinite,
    )
    ckpt.close()
    final = None
    if config.eval.final:
        final = final_eval(
            config, graphdef, state["params"], tok, test, accuracy, workdir, mesh, rules
        )
    return {"params": state["params"], "final_eval": final}


def rollout_metrics(out, r_host, reward_fns, tok, examples, accuracy, config, times) -> dict:
    """Reward columns, accuracy, lengths, truncation and timing of one step's rollouts."""
    r = np.asarray(r_host)
    lengths = np.asarray(jax.device_get(out.lengths_N))
    trunc = np.asarray(jax.device_get(out.truncated_N))
    m = {}
    for j, fn in enumerate(reward_fns):
        m[f"reward_{fn.name}_mean"] = float(np.nanmean(r[:, j]))
        m[f"reward_{fn.name}_std"] = float(np.nanstd(r[:, j]))
    acc_cols = [j for j, fn in enumerate(reward_fns) if fn.name == accuracy.name]
    if acc_cols:
        m["accuracy"] = float(np.nanmean(r[:, acc_cols[0]] >= 1.0))
    m["completion_length_mean"] = float(lengths.mean())
    m["completion_length_max"] = float(lengths.max())
    m["completion_length_min"] = float(lengths.min())
    m["truncated_frac"] = float(trunc.mean())
    t_sample, t_reward, t_update = times
    m["time_sample_s"], m["time_reward_s"], m["time_update_s"] = t_sample, t_reward, t_update
    if t_sample > 0:
        m["gen_tokens_per_s"] = float(lengths.sum()) / t_sample
    return m


def final_eval(config, graphdef, params, tok, test, accuracy, workdir, mesh, rules) -> dict:
    ecfg = eval_config(config, quick=False)
    sample_fn = evaluation.make_sample_fn(
        graphdef, ecfg, tok.eos_id, tok.pad_id, params, mesh, rules, stop_ids(tok)
    )
    summary, records = evaluation.evaluate(
        graphdef, params, tok, test, accuracy, ecfg, jax.random.key(config.seed + 1), sample_fn
    )
    path = evaluation.write_report(workdir, "final_eval", summary, records, config.task.name)
    print(
        f"r1jax: final held-out evaluation ({len(test)} problems x {ecfg.samples}): "
        f"pass@1 {summary['pass@1']:.3f}, cons@{ecfg.samples} {summary[f'cons@{ecfg.samples}']:.3f}; "
        f"{path}",
        flush=True,
    )
    return summary
