"""The SFT stage: next-token loss on completion tokens, packed rows, epochs, held-out eval before/after.

    python -m r1jax.main --config=experiments/cold_start_sft.py --workdir=/tmp/r1jax/cold_start_sft

Data: one or more SFT data sets (data/sft_format.py) named by stage workdir or path; the template
is applied at load time. Each epoch is a seeded order of the examples, packed into rows of
`data.seq_len` + 1 tokens with segment ids (or one example per row, padded to length buckets); the
plan of every epoch is a pure function of (seed, epoch, data), so a checkpoint resumes mid-epoch at
exactly the batch an uninterrupted run would train on next (data_position in its meta). The model
starts from any stage's workdir (toy base by default, built if missing) or a Hugging Face folder.
Writes checkpoints/, tokenizer.model and model_config.json (the next stage's input), metrics.jsonl,
TensorBoard events, plots/sft.png, and the held-out evaluation (stages/held_out.py).
"""

from __future__ import annotations

import json
import time

import jax
import ml_collections

from r1jax import config_base, config_check
from r1jax.data import sft_batches, sft_format
from r1jax.parallel import distributed, sharding
from r1jax.stages import common, held_out, init_model, inputs, sft_config
from r1jax.train import lm_step, loop, optim, sft_step


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    return train(config, workdir, config_base.sft())


class Plan:
    """Step -> (epoch, batch) over the epochs' plans; `steps` > 0 stops early or repeats epochs."""

    def __init__(self, lengths: list[int], cfg: sft_batches.BatchConfig, epochs: int, steps: int):
        self.lengths, self.cfg = lengths, cfg
        self._epochs: dict[int, list] = {}
        self.per_epoch = [len(self.epoch(e)) for e in range(max(epochs, 1))]
        self.total = steps if steps > 0 else sum(self.per_epoch[:epochs])

    def epoch(self, e: int) -> list:
        if e not in self._epochs:
            self._epochs[e] = sft_batches.epoch_plan(self.lengths, e, self.cfg)
        return self._epochs[e]

    def locate(self, step: int) -> tuple[int, int]:
        e = 0
        while True:
            n = self.per_epoch[e] if e < len(self.per_epoch) else len(self.epoch(e))
            if step < n:
                return e, step
            step, e = step - n, e + 1


def load_records(
    paths: list[str], reader: str, max_examples: int
) -> tuple[list[dict], list[int], str]:
    """Every record of the inputs in order, how many came from each input (after the cap), and a
    digest of the files (a checkpoint's data identity)."""
    records, counts, digests = [], [], []
    for path in paths:
        if reader == "tfds":
            from r1jax.data import sft_tfds, tfds_base

            with tfds_base.build_lock(_tfds_dir()):  # stages side by side may build it at once
                got = sft_tfds.load(sft_tfds.SftBuilder(data_dir=_tfds_dir(), path=path))
        else:
            got = sft_format.read(path)
        if max_examples:
            got = got[: max(0, max_examples - len(records))]
        records += got
        counts.append(len(got))
        digests.append(sft_format.file_digest(path))
    return records, counts, ",".join(d[:16] for d in digests) + f"/{len(records)}"


def _tfds_dir() -> str:
    import os
    import tempfile

    return os.path.join(tempfile.gettempdir(), "r1jax_tfds")


def data_paths(config: ml_collections.ConfigDict, workdir: str) -> list[str]:
    """The resolved inputs; the first is built with config.data.build when it is missing."""
    d = config.data
    out = []
    for i, name in enumerate(d.inputs):
        path = inputs.resolve(name, workdir)
        build = d.build if i == 0 else None
        out.append(inputs.ensure_dataset(path, build, d.build_if_missing, "data.inputs"))
    return out


def train(
    config: ml_collections.ConfigDict,
    workdir: str,
    defaults: ml_collections.ConfigDict,
    teacher_topk=None,
) -> dict:
    """The SFT loop; `teacher_topk(paths, records, encoded, counts)` adds logit distillation."""
    mesh = common.setup(config, defaults)
    rules = common.rules(config)
    sharding.set_rules(rules)
    sft_config.validate(config, sharding.data_parallel_size(mesh, rules))
    paths = data_paths(config, workdir)
    graphdef, params, pshard, mcfg, tok, source = init_model.load_policy(
        config, workdir, mesh, rules
    )
    sft_config.validate(config, sharding.data_parallel_size(mesh, rules), mcfg.max_len)
    init_model.publish_layout(workdir, source, mcfg, tok)
    d = config.data
    records, counts, digest = load_records(paths, d.reader, d.max_examples)
    encoded = [sft_batches.encode(tok, d.template, r, d.loss_on) for r in records]
    topk = teacher_topk(paths, records, encoded, counts) if teacher_topk is not None else None
    kd_weight = float(config.get("kd_weight", 0.0)) if topk is not None else 0.0
    lengths = [len(e[0]) for e in encoded]
    bcfg = sft_batches.BatchConfig(d.seq_len, d.batch_size, d.packing, d.bucket, config.seed)
    plan = Plan(lengths, bcfg, config.epochs, config.steps)
    too_long = sum(n > d.seq_len + 1 for n in lengths)
    if plan.total == 0:
        raise config_check.ConfigError(
            f"config.data.inputs: all {len(records)} examples are longer than config.data.seq_len"
            f"={d.seq_len} + 1 tokens; raise seq_len."
        )
    ocfg = optim.OptimizerConfig.from_dict(config.optimizer.to_dict())
    tx, lr_fn = optim.make(ocfg, plan.total)
    state, sshard = lm_step.init_state(graphdef, params, pshard, tx, mesh)
    ckpt = loop.make_checkpointer(workdir, config.checkpoint, tuple(state))
    start, state, meta = loop.resume(ckpt, state, config.checkpoint.fallback_to_previous)
    if meta and meta.get("data_digest") not in (None, digest):
        raise config_check.ConfigError(
            f"the SFT data changed since the checkpoints in {workdir} were written "
            f"({meta['data_digest']} -> {digest}); use a new workdir or restore the data."
        )
    print(
        f"r1jax: {defaults.stage} from {source}: {mcfg.num_params() / 1e6:.2f}M params, "
        f"{len(records)} examples ({too_long} longer than a row, left out), "
        f"{plan.total} steps ({plan.per_epoch[0]} per epoch), packing {d.packing}",
        flush=True,
    )
    with jax.set_mesh(mesh):
        train_step = sft_step.make_sft_step(
            graphdef, tx, lr_fn, ocfg.grad_accum, sshard, None, kd_weight
        )
    held = held_out.HeldOut(
        config.eval, d.template, graphdef, tok, params, mesh, rules, config.seed
    )
    evals = {"before": held_out.read(workdir, "before"), "after": held_out.read(workdir, "after")}
    if config.eval.before and evals["before"] is None:
        evals["before"] = held.evaluate(params, "before", workdir)  # the starting model
    rows = distributed.process_rows(d.batch_size)

    def step_fn(state: dict, step: int):
        t0 = time.perf_counter()
        e, i = plan.locate(step)
        batch_rows = plan.epoch(e)[i]
        length = sft_batches.row_length(batch_rows, lengths, bcfg)
        local = sft_batches.make_batch(
            batch_rows[rows[0] : rows[1]], encoded, bcfg, tok.pad_id, topk, length
        )
        batch = {k: distributed.global_batch(v, mesh, rules) for k, v in local.items()}
        with jax.set_mesh(mesh):
            state, m = train_step(state, batch)
        m = jax.device_get(m)
        dt = time.perf_counter() - t0
        used = sum(lengths[j] for r in batch_rows for j in r)
        m["tokens_per_s"] = used / dt  # example tokens (prompt + completion), padding excluded
        m["padding_share"] = sft_batches.padding_share(batch_rows, lengths, bcfg)
        m["epoch"] = e + i / len(plan.epoch(e))
        if step == start and start == 0 and evals["before"]:
            m.update(held_out.as_metrics(evals["before"]))
        if step == plan.total - 1 and config.eval.after:
            evals["after"] = held.evaluate(state["params"], "after", workdir)
            m.update(held_out.as_metrics(evals["after"]))
        return state, m

    def meta_fn(step: int) -> dict:
        e, i = plan.locate(step)
        saved = json.loads(config.to_json_best_effort())
        saved["steps"] = plan.total  # what "finished" means to a later stage (init_model)
        return {
            "step": step,
            "data_position": {"epoch": e, "batch": i},
            "data_digest": digest,
            "stage": defaults.stage,
            "model": mcfg.to_dict(),
            "config": json.dumps(saved),
        }

    state = loop.run(
        workdir=workdir,
        state=state,
        start=start,
        total=plan.total,
        step_fn=step_fn,
        ckpt=ckpt,
        meta_fn=meta_fn,
        progress_keys=("loss", "kd", "padding_share", "tokens_per_s"),
        plot_keys=tuple(config.plot_keys),
        desc=defaults.stage,
        max_consecutive_nonfinite=config.max_consecutive_nonfinite,
    )
    ckpt.close()
    if config.eval.after and evals["after"] is None:  # finished earlier, evaluation lost
        evals["after"] = held.evaluate(state["params"], "after", workdir)
    held_out.write_table(workdir, evals)
    return {"params": state["params"], "eval": evals, "steps": plan.total}
