"""Held-out evaluation inside the GRPO stage: a quick one during training, the full one at the end.

Both use the R1 protocol of eval/harness.py; the quick one reuses one compiled sampler on the first
`eval.num_problems` problems, the final one covers the whole held-out split and writes
`final_eval.json` / `final_eval.md` into the workdir.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import ml_collections

from r1jax.eval import harness as evaluation
from r1jax.stages import common, grpo_config
from r1jax.tokenizers import stop_ids


@dataclasses.dataclass
class Evaluator:
    graphdef: Any
    tokenizer: Any
    data: grpo_config.TaskData
    quick_cfg: evaluation.EvalConfig
    final_cfg: evaluation.EvalConfig
    quick_sample: Callable
    mesh: Any
    rules: Any
    seed: int
    num_problems: int
    task: str

    @classmethod
    def build(
        cls,
        config: ml_collections.ConfigDict,
        graphdef: Any,
        tok: Any,
        data: grpo_config.TaskData,
        params: Any,
        mesh: Any,
    ) -> Evaluator:
        rules = common.rules(config)
        quick = grpo_config.eval_config(config, quick=True)
        sample = evaluation.make_sample_fn(
            graphdef, quick, tok.eos_id, tok.pad_id, params, mesh, rules, stop_ids(tok)
        )
        final = grpo_config.eval_config(config, quick=False)
        n = config.eval.num_problems
        return cls(
            graphdef, tok, data, quick, final, sample, mesh, rules, config.seed, n, config.task.name
        )

    def quick(self, params: Any, key: jax.Array) -> dict:
        """eval_* metrics on the first problems of the held-out split."""
        s, _ = evaluation.evaluate(
            self.graphdef,
            params,
            self.tokenizer,
            self.data.test[: self.num_problems],
            self.data.accuracy,
            self.quick_cfg,
            jax.random.fold_in(key, 7),
            self.quick_sample,
        )
        return {f"eval_{k}": v for k, v in s.items() if isinstance(v, float)}

    def final(self, params: Any, workdir: str) -> dict:
        """The whole held-out split at the final settings; writes final_eval.json / .md."""
        tok, cfg = self.tokenizer, self.final_cfg
        sample = evaluation.make_sample_fn(
            self.graphdef, cfg, tok.eos_id, tok.pad_id, params, self.mesh, self.rules, stop_ids(tok)
        )
        summary, records = evaluation.evaluate(
            self.graphdef,
            params,
            tok,
            self.data.test,
            self.data.accuracy,
            cfg,
            jax.random.key(self.seed + 1),
            sample,
        )
        path = evaluation.write_report(workdir, "final_eval", summary, records, self.task)
        print(
            f"r1jax: final held-out evaluation ({len(self.data.test)} problems x {cfg.samples}): "
            f"pass@1 {summary['pass@1']:.3f}, cons@{cfg.samples} "
            f"{summary[f'cons@{cfg.samples}']:.3f}; {path}",
            flush=True,
        )
        return summary
