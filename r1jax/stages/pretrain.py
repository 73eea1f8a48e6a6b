"""The LM training stage: next-token training of the toy base model on the generated corpus.

Its checkpoint (<workdir>/checkpoints) and tokenizer (<workdir>/tokenizer.model) feed the later
stages. `stages/init_model.ensure_input` lets a later stage build this base model from defaults when its
input checkpoint is absent (the toy path runs from nothing).
"""

from __future__ import annotations

import time

import jax
import ml_collections
import numpy as np

from r1jax import config_base, config_check
from r1jax import model as model_lib
from r1jax.data import corpus as corpus_lib
from r1jax.parallel import distributed, sharding
from r1jax.stages import common, resume_guard
from r1jax.train import faults, lm_step, loop, optim


def validate(config: ml_collections.ConfigDict, n_devices: int, dp: int) -> None:
    config_check.require_positive(
        config, "steps", "data.seq_len", "data.batch_size", "optimizer.grad_accum"
    )
    b, a = config.data.batch_size, config.optimizer.grad_accum
    config_check.require_divisible(
        b, a, "config.data.batch_size", "make it a multiple of config.optimizer.grad_accum"
    )
    config_check.require_divisible(
        b // a,
        dp,
        f"the micro-batch config.data.batch_size/grad_accum = {b}/{a}",
        f"make it a multiple of the {dp} data-parallel devices of config.mesh.shape",
    )
    config_check.require_divisible(
        b, jax.process_count(), "config.data.batch_size", "make it a multiple of the process count"
    )
    if config.data.loss_on not in ("all", "completion"):
        raise config_check.ConfigError(
            f"config.data.loss_on={config.data.loss_on!r} must be 'all' or 'completion'."
        )
    if config.data.seq_len + 1 > config.model.max_len:
        raise config_check.ConfigError(
            f"config.data.seq_len={config.data.seq_len} exceeds config.model.max_len={config.model.max_len}."
        )


def corpus_doc_fn(tok, ccfg: corpus_lib.CorpusConfig, seed: int, batch: int, loss_on: str):
    """doc_fn(step, row, j) -> (ids, loss_mask): BOS prompt completion EOS, tokenized separately."""

    def doc_fn(step: int, row: int, j: int):
        prompt, completion, _ = corpus_lib.document(seed, (step * batch + row) * 64 + j, ccfg)
        p = [tok.bos_id] + tok.encode(prompt)
        c = tok.encode(completion) + [tok.eos_id]
        mask = [loss_on == "all"] * len(p) + [True] * len(c)
        return p + c, mask

    return doc_fn


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    mesh = common.setup(config, config_base.pretrain())
    rules = common.rules(config)
    sharding.set_rules(rules)
    validate(config, jax.device_count(), sharding.data_parallel_size(mesh, rules))
    resume_guard.check(config, config_base.pretrain(), workdir)
    tok = common.tokenizer(config, workdir)
    mcfg = common.model_config(config, tok.vocab_size)
    ocfg = optim.OptimizerConfig.from_dict(config.optimizer.to_dict())
    graphdef, params, pshard = model_lib.create(mcfg, config.seed, mesh, rules)
    tx, lr_fn = optim.make(ocfg, config.steps)
    state, sshard = lm_step.init_state(graphdef, params, pshard, tx, mesh)
    ckpt = loop.make_checkpointer(workdir, config.checkpoint, tuple(state))
    start, state, _ = loop.resume(ckpt, state, config.checkpoint.fallback_to_previous)
    print(
        f"r1jax: pretrain {mcfg.num_params() / 1e6:.2f}M params, mesh {dict(mesh.shape)}",
        flush=True,
    )

    bshard = lm_step.batch_shardings(mesh, rules)
    with jax.set_mesh(mesh):
        train_step = lm_step.make_train_step(graphdef, tx, lr_fn, ocfg.grad_accum, sshard, bshard)
    rows = distributed.process_rows(config.data.batch_size, mesh, rules)  # the rows it feeds
    doc_fn = corpus_doc_fn(
        tok, common.corpus_config(config), config.seed, config.data.batch_size, config.data.loss_on
    )

    def local_batch(step: int) -> dict:
        return lm_step.make_batch(doc_fn, step, rows, config.data.seq_len, tok.pad_id)

    local_batch = faults.poisoning(local_batch, "tokens")  # no-op unless R1JAX_FAULTS is set

    def step_fn(state: dict, step: int):
        t0 = time.perf_counter()
        local = local_batch(step)
        batch = {k: distributed.global_batch(v, mesh, rules) for k, v in local.items()}
        with jax.set_mesh(mesh):
            state, m = train_step(state, batch)
        m = jax.device_get(m)
        dt = time.perf_counter() - t0
        m["tokens_per_s"] = float(np.asarray(m["tokens"])) / dt
        return state, m

    def meta_fn(step: int) -> dict:
        return {
            "step": step,
            "data_position": step,
            "stage": "pretrain",
            "model": mcfg.to_dict(),
            "config": config.to_json_best_effort(),
        }

    common.write_json(workdir, "model_config.json", mcfg.to_dict())
    state = loop.run(
        workdir=workdir,
        state=state,
        start=start,
        total=config.steps,
        step_fn=step_fn,
        ckpt=ckpt,
        meta_fn=meta_fn,
        progress_keys=("loss", "grad_norm", "tokens_per_s"),
        plot_keys=tuple(config.plot_keys),
        desc="pretrain",
        max_consecutive_nonfinite=config.max_consecutive_nonfinite,
        telemetry=common.telemetry(config, workdir),
    )
    ckpt.close()
    return {"params": state["params"], "graphdef": graphdef, "model_config": mcfg, "tokenizer": tok}
