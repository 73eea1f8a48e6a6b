"""Held-out evaluation of the supervised stages: the R1 protocol on each configured task's test split.

pass@1 over k samples at temperature 0.6 / top-p 0.95, cons@k, the R1-Zero format rate, the readable
pattern's rate and the language-mixing rate (eval/harness.py), for the starting model ("before") and
the trained one ("after"): <workdir>/eval_before.json, eval_after.json and eval.md (both, side by
side). One compiled sampler serves every task and both evaluations.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import ml_collections

from r1jax import config_check, rewards
from r1jax.data import tasks
from r1jax.eval import harness as evaluation
from r1jax.eval import metrics as eval_metrics
from r1jax.tokenizers import stop_ids

KEYS = ("pass@1", "format_rate", "readable_rate", "language_mixing_rate", "length_mean")


class HeldOut:
    """`evaluate(params, name)` -> {task: summary}; also written to <workdir>/eval_<name>.json."""

    def __init__(
        self, e: ml_collections.ConfigDict, template: str, graphdef, tok, params, mesh, rules, seed
    ):
        self.tok, self.graphdef, self.seed = tok, graphdef, seed
        self.sets: dict[str, tuple[list[dict], Any]] = {}
        for name in e.tasks:
            if name not in tasks.names():
                raise config_check.ConfigError(
                    f"config.eval.tasks: {name!r} has no accuracy reward; choose from "
                    f"{tasks.names()}."
                )
            options = dict(e.task_options.get(name, {}) or {})
            examples = tasks.load(name, "test", "", **options)
            if e.num_problems:
                examples = examples[: e.num_problems]
            accuracy = rewards.build([tasks.accuracy_reward(name)])[0]
            self.sets[name] = (examples, accuracy)
        self.cfg = evaluation.EvalConfig(
            samples=e.samples,
            temperature=e.temperature,
            top_p=e.top_p,
            top_k=e.top_k,
            max_new_tokens=e.max_new_tokens,
            batch_prompts=e.batch_prompts,
            prompt_bucket=e.prompt_bucket,
            template=template,
        )
        self.sample_fn = None
        if self.sets:
            self.sample_fn = evaluation.make_sample_fn(
                graphdef, self.cfg, tok.eos_id, tok.pad_id, params, mesh, rules, stop_ids(tok)
            )

    def evaluate(self, params, name: str, workdir: str) -> dict[str, dict]:
        out, all_records = {}, {}
        for i, (task, (examples, accuracy)) in enumerate(self.sets.items()):
            key = jax.random.fold_in(jax.random.key(self.seed + 1), i)
            summary, records = evaluation.evaluate(
                self.graphdef, params, self.tok, examples, accuracy, self.cfg, key, self.sample_fn
            )
            out[task], all_records[task] = summary, records
        if out and jax.process_index() == 0:
            os.makedirs(workdir, exist_ok=True)
            path = os.path.join(workdir, f"eval_{name}.json")
            with open(path + ".tmp", "w", encoding="utf-8") as f:
                json.dump({"summary": out, "records": all_records}, f, indent=1)
            os.replace(path + ".tmp", path)
        for task, s in out.items():
            print(
                f"r1jax: held-out {task} ({name}): "
                + ", ".join(f"{k} {s[k]:.3f}" for k in KEYS if k in s),
                flush=True,
            )
        return out


def read(workdir: str, name: str) -> dict[str, dict] | None:
    path = os.path.join(workdir, f"eval_{name}.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)["summary"]


def as_metrics(results: dict[str, dict]) -> dict[str, float]:
    """{eval_<task>_<key>: value} for the metrics JSONL / TensorBoard."""
    return {
        f"eval_{task}_{k}": float(v)
        for task, s in results.items()
        for k, v in s.items()
        if isinstance(v, float)
    }


def write_table(workdir: str, results: dict[str, dict[str, dict]]) -> str:
    """eval.md: one row per (evaluation, task), e.g. before/countdown and after/countdown."""
    rows = {
        f"{name}/{task}": {k: s.get(k) for k in (*KEYS, "truncated_rate")}
        for name, per_task in results.items()
        if per_task
        for task, s in per_task.items()
    }
    path = os.path.join(workdir, "eval.md")
    if rows and jax.process_index() == 0:
        with open(path, "w", encoding="utf-8") as f:
            f.write(eval_metrics.markdown_table(rows) + "\n")
    return path
