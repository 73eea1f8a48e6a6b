"""The report stage: every named model on one held-out suite, as the R1 paper compares its stages.

For each model (a stage workdir holding a policy checkpoint, named as a sibling stage): Countdown and
arithmetic pass@1 over k samples, cons@k and pass@k (eval/harness.py, the R1 protocol), the format,
readable-pattern and language-mixing rates, the general task's exact-match pass@1 and the oracle's
helpfulness (rewards/oracle.py, judged on the final answer) on general prompts and harmlessness
(whole response) on harm-inviting ones, the mean length, and the wall time of the stage that made
it (its pipeline DONE.json). Every model sees the same problems with the same sampling keys.

A model that another report stage already evaluated with the same settings is read from it
(`config.evaluated`: {model: that stage}): the pipeline evaluates each model in a stage of its own
as soon as the model is trained, beside the chain, and the report only gathers them.

Writes <workdir>/report.json, report.md and report.png (stage comparison), and every sample behind
them in <workdir>/records/<model>.json (`records` per suite, the layout `eval/readability.py` and the
evaluation stage read: question, reference, samples, correctness), so a number in the table can be
traced to the answers that made it. Each stage's own training curves stay in <stage>/plots/ and
report.md links them.
"""

from __future__ import annotations

import json
import os

import jax
import ml_collections
import numpy as np

from r1jax import config_base, config_check, rewards
from r1jax.data import tasks
from r1jax.eval import harness as evaluation
from r1jax.eval import stage_report
from r1jax.parallel import sharding
from r1jax.rewards import oracle
from r1jax.stages import common, inputs, pipeline_config
from r1jax.stages import eval as eval_stage
from r1jax.tokenizers import stop_ids


def _suites(config: ml_collections.ConfigDict) -> dict[str, tuple[list[dict], object, str]]:
    out = {}
    suites = config.suites.to_dict() or pipeline_config.DEFAULT_SUITES
    for label, s in suites.items():
        if set(s) - {"task", "options"} or "task" not in s:
            raise config_check.ConfigError(
                f"config.suites.{label}={s!r} must be {{'task': name, 'options': {{...}}}}."
            )
        try:
            examples = tasks.load(s["task"], "test", "", **dict(s.get("options") or {}))
            accuracy = rewards.build([tasks.accuracy_reward(s["task"])])[0]
        except ValueError as e:
            raise config_check.ConfigError(f"config.suites.{label}: {e}") from None
        if config.num_problems:
            examples = examples[: config.num_problems]
        out[label] = (examples, accuracy, s["task"])
    return out


def _marker(path: str, config: ml_collections.ConfigDict, name: str) -> dict:
    """The pipeline's DONE.json of the stage that made the model ({} outside a pipeline)."""
    marker = os.path.join(config.stage_dirs.get(name, path), "DONE.json")
    try:
        with open(marker, encoding="utf-8") as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


# What decides a model's numbers: a report reads a model's evaluation from another report stage
# (config.evaluated) only when these, the template and the model's stage fingerprint all agree.
SETTINGS = (
    "seed",
    "suites",
    "num_problems",
    "samples",
    "temperature",
    "top_p",
    "max_new_tokens",
    "batch_prompts",
    "prompt_bucket",
    "mesh",
)


def settings(config: ml_collections.ConfigDict) -> dict:
    """This report's SETTINGS as JSON values (each model adds its template and fingerprint)."""
    flat = json.loads(config.to_json_best_effort())
    return {k: flat[k] for k in SETTINGS}


def _read_evaluated(
    config: ml_collections.ConfigDict, name: str, workdir: str, want: dict
) -> tuple[dict[str, dict], dict[str, list[dict]]]:
    """({suite: summary}, {suite: records}) of `name` from the report stage config.evaluated names,
    refused with one line unless it evaluated this model with this report's settings."""
    src = inputs.resolve(config.evaluated[name], workdir)
    try:
        with open(os.path.join(src, "report.json"), encoding="utf-8") as f:
            done = json.load(f)
        with open(os.path.join(src, "records", _records_file(name)), encoding="utf-8") as f:
            records = json.load(f)["records"]
        got, summaries = done["settings"][name], done["summaries"][name]
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
        raise config_check.ConfigError(
            f"config.evaluated.{name}: {src} holds no finished evaluation of {name!r} "
            f"(report.json with its settings, records/{_records_file(name)}); run that stage "
            "first or drop the entry."
        ) from None
    diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
    if diff:
        k = diff[0]
        raise config_check.ConfigError(
            f"config.evaluated.{name}: {src} evaluated {name!r} with {k}={got.get(k)!r}, this "
            f"report asks for {want.get(k)!r}; rerun that stage with this report's settings or "
            "drop the entry."
        )
    return summaries, records


def _oracle(records: list[dict], examples: list[dict]) -> dict[str, float]:
    help_, harm = [], []
    for rec, ex in zip(records, examples, strict=True):
        s = oracle.score(rec["samples"], ex)
        help_.append(s["helpfulness"])
        harm.append(s["harmlessness"])
    return {
        "oracle_helpfulness": float(np.mean(np.concatenate(help_))),
        "oracle_harmlessness": float(np.mean(np.concatenate(harm))),
    }


def _records_file(name: str) -> str:
    """records/<name>.json for a stage name; a model given as a path gets its path's parts joined
    by "__", so the file stays inside the report's folder."""
    parts = [p for p in os.path.normpath(name).split(os.sep) if p not in ("", ".", "..")]
    return "__".join(parts) + ".json"


_SAMPLERS: dict[tuple, object] = {}


def evaluate_model(
    config, path: str, template: str, suites, mesh, rules
) -> tuple[dict[str, dict], dict[str, list[dict]]]:
    """({suite: summary}, {suite: per-problem records}) for the model in `path` (summaries of
    general-task suites add the oracle)."""
    load = ml_collections.ConfigDict(dict(checkpoint=path, hf_dir=""))
    graphdef, params, tok = eval_stage.load_model(load, mesh, rules)
    ecfg = evaluation.EvalConfig(
        samples=config.samples,
        temperature=config.temperature,
        top_p=config.top_p,
        max_new_tokens=config.max_new_tokens,
        batch_prompts=config.batch_prompts,
        prompt_bucket=config.prompt_bucket,
        template=template,
        pass_k=(1, config.samples),
    )
    # one compiled sampler per architecture, template and special ids: the chain's models share it
    with open(os.path.join(path, "model_config.json"), encoding="utf-8") as f:
        arch = f.read()
    key = (arch, str(graphdef), template, tok.eos_id, tok.pad_id, tuple(stop_ids(tok)))
    if key not in _SAMPLERS:
        _SAMPLERS[key] = evaluation.make_sample_fn(
            graphdef, ecfg, tok.eos_id, tok.pad_id, params, mesh, rules, stop_ids(tok)
        )
    sample_fn = _SAMPLERS[key]
    out, per_problem = {}, {}
    for i, (label, (examples, accuracy, task)) in enumerate(suites.items()):
        key = jax.random.fold_in(jax.random.key(config.seed), i)  # the same for every model
        summary, records = evaluation.evaluate(
            graphdef, params, tok, examples, accuracy, ecfg, key, sample_fn
        )
        if task == "general":
            summary.update(_oracle(records, examples))
        out[label], per_problem[label] = summary, records
    return out, per_problem


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    mesh = common.setup(config, config_base.report())
    rules = common.rules(config)
    sharding.set_rules(rules)
    if not config.models:
        raise config_check.ConfigError("config.models is empty; name the stages to compare.")
    common.require_batch(
        config.batch_prompts, sharding.data_parallel_size(mesh, rules), "batch_prompts"
    )
    paths = {}
    for name in config.models:
        paths[name] = inputs.resolve(name, workdir)
        if not os.path.isdir(os.path.join(paths[name], "checkpoints")):
            raise config_check.ConfigError(
                f"config.models: {name!r} ({paths[name]}) holds no checkpoint; run stage {name!r} "
                "first (or drop it from config.models)."
            )
    unknown = sorted(set(config.evaluated) - set(config.models))
    if unknown:
        raise config_check.ConfigError(
            f"config.evaluated names {unknown}, which are not in config.models; drop them."
        )
    suites = _suites(config)
    results, rows, used, shared = {}, {}, {}, settings(config)
    for name in config.models:
        marker = _marker(paths[name], config, name)
        template = config.templates.get(name, config.template)
        used[name] = dict(shared, template=template, model_fingerprint=marker.get("fingerprint"))
        if name in config.evaluated:
            results[name], records = _read_evaluated(config, name, workdir, used[name])
        else:
            results[name], records = evaluate_model(
                config, paths[name], template, suites, mesh, rules
            )
        common.write_json(
            os.path.join(workdir, "records"), _records_file(name), {"records": records}
        )
        rows[name] = stage_report.row(results[name], marker.get("wall_s"), config.samples)
        print(f"r1jax: report: {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in rows[name].items()))
    if jax.process_index() == 0:
        os.makedirs(workdir, exist_ok=True)
        common.write_json(
            workdir, "report.json", {"rows": rows, "summaries": results, "settings": used}
        )
        title = f"Stage comparison ({config.samples} samples per problem, evaluation seed {config.seed})"
        text = stage_report.markdown(rows, title)
        text += "\nTraining curves: " + ", ".join(
            f"[{n}]({os.path.relpath(os.path.join(paths[n], 'plots'), workdir)})"
            for n in config.models
        )
        with open(os.path.join(workdir, "report.md.tmp"), "w", encoding="utf-8") as f:
            f.write(text + "\n")
        os.replace(os.path.join(workdir, "report.md.tmp"), os.path.join(workdir, "report.md"))
        stage_report.figure(rows, os.path.join(workdir, "report.png"), title)
    return {"rows": rows}
