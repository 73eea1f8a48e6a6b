"""The reward_model stage: Bradley-Terry training of a reward model on preference pairs.

Inputs: a policy stage directory to start from (`config.init`, the toy base model built when
missing) and a preference_data stage directory or JSONL file (`config.data.path`, built from
`config.data.preference` when missing). The reward model is the policy's transformer plus a scalar
head (model/reward_head.py) trained on the pairs of one aspect (`config.rm.aspect`) as seen through
one view (`config.rm.on`). Pairs are drawn in a seeded epoch order that is a pure function of
(seed, step), so a resumed run sees exactly the batches an uninterrupted one would.

Every `eval.every_steps` steps (and before the first update) it measures held-out pair accuracy
against the oracle's noiseless preference. At the end: `rm_eval.json` (accuracies by source, kind
and oracle gap; calibration; correlations), `plots/calibration.png`, and the layout that makes the
workdir a reward: checkpoints/, tokenizer.model, model_config.json and `rm_info.json`.
"""

from __future__ import annotations

import json
import os

import jax
import ml_collections

from r1jax import config_base, config_check
from r1jax.data import preference_batches, preference_tfds, tfds_base
from r1jax.data.prompts import PromptStream
from r1jax.model import reward_head
from r1jax.parallel import distributed, sharding
from r1jax.stages import common, init_model, inputs, rm_config, rm_eval, rm_plots
from r1jax.train import lm_step, loop, optim, rm_step


def preference_file(config: ml_collections.ConfigDict, workdir: str) -> str:
    """The preferences JSONL; built by the preference_data stage when missing and allowed."""
    from r1jax.stages import preference_data

    # a bare name is a sibling stage workdir, as every stage input (never the current directory)
    path = inputs.resolve(config.data.path or "preference_data", workdir)
    file = path if path.endswith(".jsonl") else os.path.join(path, preference_data.OUTPUT)
    if os.path.isdir(path) and os.path.exists(os.path.join(path, preference_data.META)):
        return file
    if os.path.isfile(file) and path.endswith(".jsonl"):
        return file
    if not config.data.build_if_missing or path.endswith(".jsonl"):
        raise config_check.ConfigError(
            f"config.data.path={path!r} holds no finished preference data; run the "
            "preference_data stage into it, or set config.data.build_if_missing=True."
        )
    print(f"r1jax: no preference data in {path}; building it there first (config.data.preference)")
    return preference_data.run(config.data.preference, path)["path"]


def load_pairs(config, file: str, tok, split: str) -> preference_batches.PairArrays:
    data_dir = config.data.data_dir or os.path.join(os.environ.get("TMPDIR", "/tmp"), "r1jax_tfds")
    with tfds_base.build_lock(data_dir):  # the two reward models may build it side by side
        try:
            builder = preference_tfds.PreferenceBuilder(data_dir=data_dir, path=file)
        except ValueError as e:
            raise config_check.ConfigError(str(e)) from None
        recs = preference_tfds.load(builder, split)
    recs = [r for r in recs if r["aspect"] == config.rm.aspect]
    pairs, dropped = preference_batches.encode_pairs(
        recs, tok, config.rm.on, config.data.seq_len, config.rm.template
    )
    print(
        f"r1jax: {split}: {len(pairs.records)} {config.rm.aspect} pairs for the {config.rm.on!r} "
        f"view (dropped: {dropped['same_view']} with identical views, {dropped['too_long']} "
        f"longer than config.data.seq_len={config.data.seq_len})",
        flush=True,
    )
    if split == "train" and not pairs.records:
        raise config_check.ConfigError(
            f"{file} holds no usable train pairs of aspect {config.rm.aspect!r} for the view "
            f"on={config.rm.on!r}; check config.rm.aspect/on and config.data.seq_len."
        )
    return pairs


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    mesh = common.setup(config, config_base.reward_model())
    rules = common.rules(config)
    sharding.set_rules(rules)
    rm_config.validate_reward_model(config, sharding.data_parallel_size(mesh, rules))
    file = preference_file(config, workdir)
    _, pparams, _, mcfg, tok, source = init_model.load_policy(config, workdir, mesh, rules)
    if config.data.seq_len > mcfg.max_len:
        raise config_check.ConfigError(
            f"config.data.seq_len={config.data.seq_len} exceeds the model's max_len {mcfg.max_len}."
        )
    graphdef, params, pshard = reward_head.from_policy(mcfg, pparams, config.seed, mesh, rules)
    del pparams
    train, test = (load_pairs(config, file, tok, s) for s in ("train", "test"))
    ocfg = optim.OptimizerConfig.from_dict(config.optimizer.to_dict())
    tx, lr_fn = optim.make(ocfg, config.steps)
    state, sshard = lm_step.init_state(graphdef, params, pshard, tx, mesh)
    ckpt = loop.make_checkpointer(workdir, config.checkpoint, tuple(state))
    start, state, _ = loop.resume(ckpt, state, config.checkpoint.fallback_to_previous)
    with jax.set_mesh(mesh):
        step = rm_step.make_train_step(
            graphdef, tx, lr_fn, ocfg.grad_accum, sshard, rm_step.batch_shardings(mesh, rules)
        )
    score_fn = rm_step.make_score_fn(graphdef, pshard, mesh, rules)
    stream = PromptStream(list(range(len(train.records))), config.seed)
    b = config.data.batch_pairs
    rows = distributed.process_rows(b)
    print(
        f"r1jax: reward model ({config.rm.aspect}, on={config.rm.on!r}) from {source}: "
        f"{mcfg.num_params() / 1e6:.2f}M params, {len(train.records)} train / "
        f"{len(test.records)} held-out pairs, mesh {dict(mesh.shape)}",
        flush=True,
    )

    def held_out(params) -> dict:
        if not test.records:
            return {}
        rc, rr = rm_eval.score_pairs(score_fn, params, test, config.eval.batch_rows)
        return rm_eval.metrics(rc, rr, test.records, config.rm.aspect)

    def step_fn(state: dict, i: int):
        m = held_out(state["params"]) if i == 0 and config.eval.every_steps else {}
        idx = stream.take(i * b, b)[rows[0] : rows[1]]
        local = preference_batches.batch(train, idx, config.rm.margin)
        batch = {k: distributed.global_batch(v, mesh, rules) for k, v in local.items()}
        with jax.set_mesh(mesh):
            state, got = step(state, batch)
        m.update(jax.device_get(got))
        if config.eval.every_steps and (i + 1) % config.eval.every_steps == 0:
            m.update(held_out(state["params"]))
        return state, m

    def meta_fn(i: int) -> dict:
        return {
            "step": i,
            "data_position": i * b,
            "stage": "reward_model",
            "model": mcfg.to_dict(),
            "config": config.to_json_best_effort(),
        }

    init_model.publish_layout(workdir, source, mcfg, tok)
    state = loop.run(
        workdir=workdir,
        state=state,
        start=start,
        total=config.steps,
        step_fn=step_fn,
        ckpt=ckpt,
        meta_fn=meta_fn,
        progress_keys=("loss", "accuracy", "eval_accuracy_oracle"),
        plot_keys=tuple(config.plot_keys),
        desc="reward_model",
        max_consecutive_nonfinite=config.max_consecutive_nonfinite,
    )
    ckpt.close()
    final = None
    if config.eval.final and test.records:
        rc, rr = rm_eval.score_pairs(score_fn, state["params"], test, config.eval.batch_rows)
        final = rm_eval.report(rc, rr, test.records, config.rm.aspect, config.seed)
        title = f"reward model ({config.rm.aspect}, on={config.rm.on!r})"
        rm_plots.calibration(final, os.path.join(workdir, "plots", "calibration.png"), title)
        common.write_json(workdir, "rm_eval.json", final)
        print(
            f"r1jax: held-out pair accuracy vs the oracle {final['eval_accuracy_oracle']:.3f} "
            f"({final['eval_pairs']} pairs; vs the noisy labels {final['eval_accuracy_label']:.3f}), "
            f"ECE {final['ece']:.3f}; {os.path.join(workdir, 'rm_eval.json')}",
            flush=True,
        )
    info = {
        "aspect": config.rm.aspect,
        "on": config.rm.on,
        "template": config.rm.template or _template(file),
        "init": source,
        "hf_dir": config.init.hf_dir,
        "preferences": file,
        "steps": config.steps,
        "eval_accuracy_oracle": None if final is None else final["eval_accuracy_oracle"],
    }
    common.write_json(workdir, "rm_info.json", info)
    return {"params": state["params"], "graphdef": graphdef, "final_eval": final, "info": info}


def _template(file: str) -> str:
    """The template the pairs' prompts were rendered with (the reward's host form reuses it)."""
    with open(file, encoding="utf-8") as f:
        return json.loads(f.readline())["template"]
