"""The GRPO stage (R1-Zero and the later RL stages): a short sequence of named steps per update.

    build       config -> model, tokenizer, state, compiled step functions, data (`GRPOStage`)
    per step:   prompts -> rollouts (sample, score) -> update -> evaluate -> log
    at the end  the full held-out evaluation (`final_eval.json` / `.md`)

Per step: B prompts from the task's train split -> G samples each -> rewards -> group advantages ->
mu inner iterations of updates. Fused (one XLA program) when every reward is jittable, split at the
reward boundary otherwise (rl/step.py). The held-out split is evaluated before the first update and
every `eval.every_steps` steps (pass@1 at the paper's sampling settings).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from r1jax import config_base
from r1jax.data import prompts as prompts_lib
from r1jax.parallel import rows as rows_lib
from r1jax.parallel import sharding
from r1jax.rewards import build as build_rewards
from r1jax.rewards.token_tables import build as build_tables
from r1jax.rl import rollout, sampler_mesh, train_step
from r1jax.rl import step as step_lib
from r1jax.rl.dynamic import DynamicSampler
from r1jax.sampling import threads as sampling_threads
from r1jax.stages import (
    common,
    grpo_config,
    init_model,
    mixture,
    mixture_config,
    resume_guard,
    rm_replay,
    rm_watch,
)
from r1jax.stages.grpo_eval import Evaluator
from r1jax.train import faults, lm_step, loop, optim


@dataclasses.dataclass
class GRPOStage:
    """Everything a run builds once, and the named steps of one GRPO update."""

    s: grpo_config.StageSettings
    ctx: step_lib.StepContext
    data: grpo_config.TaskData
    evaluator: Evaluator
    dyn: DynamicSampler | None
    lr_fn: Any
    position: int  # prompts consumed so far (the data iterator's whole state)
    mix: mixture_config.Mixture | None = None  # all-scenario RL's prompt mixture (None: one task)
    last_rollouts: step_lib.Rollouts | None = None  # the replay labels them (stages/rm_replay.py)

    def host_prompts(self, step: int, examples: list[dict]) -> dict:
        """All B prompts of the step, encoded on the host (left padded) by every process.

        Every process pads to the same width (the longest of the whole batch), so the global
        array has one shape whatever rows a process feeds; each device takes its rows from it.
        """
        ids, valid = prompts_lib.encode_batch(
            self.ctx.tokenizer, self.s.template, examples, self.s.prompt_bucket, self.s.max_len
        )
        return {"ids": ids, "valid": valid}

    def encode(self, examples: list[dict], step: int = -1) -> step_lib.Prompts:
        host = self.host_prompts(step, examples)
        put = lambda x: rows_lib.global_from_host(x, self.ctx.mesh, self.ctx.rules)  # noqa: E731
        return step_lib.Prompts(put(host["ids"]), put(host["valid"]), examples)

    def collect_and_update(self, state: dict, step: int, key: jax.Array) -> step_lib.StepResult:
        """Rollouts (fresh prompts, or dynamic sampling's rounds), rewards and the update."""
        if self.dyn is None:
            examples = self.data.stream.take(self.position, self.s.prompts_per_step)
            self.position += self.s.prompts_per_step
            return step_lib.run(self.ctx, state, self.encode(examples, step), key)
        t0 = time.perf_counter()
        rollouts, info, self.position = self.dyn.collect(state["params"], self.position, key)
        t1 = time.perf_counter()
        state, m = step_lib.update(self.ctx, state, rollouts)
        times = {"sample": t1 - t0, "reward": 0.0, "update": time.perf_counter() - t1}
        return step_lib.StepResult(state, dict(m, **info), rollouts, times)

    def step(self, state: dict, step: int) -> tuple[dict, dict]:
        key = jax.random.fold_in(jax.random.key(self.s.seed), step)
        # the starting model is evaluated too (before step 0's update), so curves start at the base
        m = self.evaluator.quick(state["params"], key) if self.s.eval_every and step == 0 else {}
        if self.s.ref_update_every and step and step % self.s.ref_update_every == 0:
            if "ref_params" in state:
                state = train_step.refresh_reference(state)
        result = self.collect_and_update(state, step, key)
        self.last_rollouts = result.rollouts
        m.update(result.metrics)
        m.update(rollout_metrics(result, self.ctx, self.data.accuracy.name))
        if self.mix is not None:
            m.update(mixture.source_metrics(self.mix, result.rollouts, self.ctx.group_size))
        m["lr"] = float(self.lr_fn(step * self.s.updates_per_step))
        if self.s.eval_every and (step + 1) % self.s.eval_every == 0:
            m.update(self.evaluator.quick(result.state["params"], key))
        if self.s.log_samples:
            m["_samples"] = sample_records(result.rollouts, self.ctx, self.s.log_samples)
        return result.state, m

    def meta(self, step: int, config: ml_collections.ConfigDict, model: dict) -> dict:
        return {
            "step": step,
            "data_position": self.position,
            "stage": "grpo",
            "model": model,
            "config": config.to_json_best_effort(),
        }


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    mesh = common.setup(config, config_base.grpo())
    rules = common.rules(config)
    sharding.set_rules(rules)
    mix = mixture_config.setup(config, workdir)  # None: the single-task path
    reward_fns = mix.rewards if mix else build_rewards(config.rewards)
    grpo_config.validate(config, mesh, rules, reward_fns)
    resume_guard.check(config, config_base.grpo(), workdir)
    graphdef, params, pshard, mcfg, tok, source = init_model.load_policy(
        config, workdir, mesh, rules
    )
    init_model.publish_layout(workdir, source, mcfg, tok)
    s = grpo_config.settings(config, mcfg)
    fused = grpo_config.use_fused(config, reward_fns, tok) and mix is None
    if fused:  # a reward model's forward runs in the step's program, on the policy's mesh
        rollout.place_reward_states(reward_fns, mesh, rules)
    ucfg = grpo_config.update_config(config, reward_fns)
    ocfg = optim.OptimizerConfig.from_dict(config.optimizer.to_dict())
    tx, lr_fn = optim.make(ocfg, config.steps * s.updates_per_step)
    state, sshard = lm_step.init_state(graphdef, params, pshard, tx, mesh)
    state = train_step.state_with_ref(state, config.rl.beta)
    if "ref_params" in state:
        sshard = dict(sshard, ref_params=pshard)
    replay = rm_replay.build(config, mix)  # reward models trained with replay: checkpoint items
    state = dict(state, **replay.items()) if replay else state
    ckpt = loop.make_checkpointer(workdir, config.checkpoint, tuple(state))
    start, state, meta = loop.resume(ckpt, state, config.checkpoint.fallback_to_previous)
    if replay:
        replay.restore(state, meta)
    rm_replay.restore_reward_states(reward_fns, meta)  # reward models' running statistics

    repl = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    batch_sh = lambda nd: sharding.batch_sharding(mesh, rules, nd) if nd else repl  # noqa: E731
    vt = build_tables(tok, mcfg.vocab_size) if fused else None
    scfg = grpo_config.sampling_config(config, tok)
    sm = None
    if config.rl.sampler_mesh:
        shape = tuple(config.rl.sampler_mesh)
        sm = sampler_mesh.make(shape, mesh, rules, pshard, s.prompts_per_step)
    threads = 1
    if not fused and sm is None:  # 0 (auto): 2 on a CPU host's one device, else 1
        threads = sampling_threads.resolve(config.rl.sampler_threads, s.prompts_per_step, mesh)
    with jax.set_mesh(mesh):
        fns = rollout.build(
            graphdef, tx, scfg, ucfg, reward_fns, vt, sshard, batch_sh, fused, sm, threads
        )  # fmt: skip
    ctx = step_lib.StepContext(
        fns, fused, reward_fns, tok, mesh, rules, ucfg.group_size, config.rl.length_bucket,
        mix.routing if mix else None,
    )  # fmt: skip
    data = grpo_config.task_data(config)
    if mix:
        stream = mixture.stream(mix, mixture_config.loaded(config, mix, "train"), config.seed)
        data = dataclasses.replace(data, stream=stream)
    evaluator = Evaluator.build(config, graphdef, tok, data, state["params"], mesh)
    stage = GRPOStage(
        s, ctx, data, evaluator, None, lr_fn, int(meta["data_position"]) if meta else 0, mix
    )
    stage.host_prompts = faults.poisoning(stage.host_prompts, "ids")  # no-op unless R1JAX_FAULTS
    if config.rl.dynamic_sampling:
        stage.dyn = DynamicSampler(
            grpo_config.dynamic_config(config), ctx, data.stream, stage.encode
        )
    hooks = rm_watch.hooks(config, stage, mix, replay)  # None on the single-task path
    print(
        f"r1jax: GRPO on {config.task.name} from {source}: {mcfg.num_params() / 1e6:.2f}M params, "
        f"{'fused' if fused else 'split'} step"
        f"{f' (sampler in {threads} threads)' if threads > 1 else ''}, mesh {dict(mesh.shape)}",
        flush=True,
    )
    state = loop.run(
        workdir=workdir,
        state=state,
        start=start,
        total=config.steps,
        step_fn=hooks.step if hooks else stage.step,
        ckpt=ckpt,
        meta_fn=lambda step: dict(
            stage.meta(step, config, mcfg.to_dict()),
            **(replay.meta() if replay else {}),
            **rm_replay.reward_states(reward_fns),
        ),
        progress_keys=("reward", "accuracy", "completion_length_mean", "kl", "eval_pass@1"),
        plot_keys=tuple(config.plot_keys),
        desc="grpo",
        max_consecutive_nonfinite=config.max_consecutive_nonfinite,
        telemetry=common.telemetry(config, workdir),
    )
    ckpt.close()
    if hooks and hooks.watch:
        rm_watch.plot(workdir)  # plots/rm_vs_oracle.png
    final = evaluator.final(state["params"], workdir) if config.eval.final else None
    return {"params": state["params"], "final_eval": final}


def rollout_metrics(result: step_lib.StepResult, ctx: step_lib.StepContext, accuracy: str) -> dict:
    """Reward columns, accuracy, lengths, truncation and timing of one step's rollouts."""
    r, lengths = result.rollouts.rewards_NxR, result.rollouts.lengths_N
    m = {}
    for j, fn in enumerate(ctx.rewards):
        m[f"reward_{fn.name}_mean"] = float(np.nanmean(r[:, j]))
        m[f"reward_{fn.name}_std"] = float(np.nanstd(r[:, j]))
    acc_cols = [j for j, fn in enumerate(ctx.rewards) if fn.name == accuracy]
    if acc_cols:
        m["accuracy"] = float(np.nanmean(r[:, acc_cols[0]] >= 1.0))
    m["completion_length_mean"] = float(lengths.mean())
    m["completion_length_max"] = float(lengths.max())
    m["completion_length_min"] = float(lengths.min())
    m["truncated_frac"] = float(result.rollouts.truncated_N.mean())
    t = result.times
    m["time_sample_s"], m["time_reward_s"], m["time_update_s"] = (
        t["sample"],
        t["reward"],
        t["update"],
    )
    if t["sample"] > 0:
        m["gen_tokens_per_s"] = float(lengths.sum()) / t["sample"]
    return m


def sample_records(rollouts: step_lib.Rollouts, ctx: step_lib.StepContext, k: int) -> list[dict]:
    """The first `k` prompts' first completions with their rewards (samples.jsonl, TensorBoard)."""
    g = ctx.group_size
    picked = [i * g for i in range(min(k, len(rollouts.examples)))]
    toks, mask = (rows_lib.pick_rows(x, picked) for x in (rollouts.tokens_NxT, rollouts.mask_NxT))
    texts = step_lib.decode_rows(ctx.tokenizer, toks, mask)
    out = []
    for i, text in zip(picked, texts):
        rewards = {fn.name: float(rollouts.rewards_NxR[i, j]) for j, fn in enumerate(ctx.rewards)}
        ex = rollouts.examples[i // g]
        out.append(
            {"question": ex["question"], "answer": ex["answer"], "completion": text, **rewards}
        )
    return out
