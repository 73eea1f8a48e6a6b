"""The evaluation stage: the R1 protocol (pass@1 over k samples, cons@k, pass@k) on a held-out split.

    python -m r1jax.main --config=experiments/eval.py --config.checkpoint=/tmp/r1jax/r1_zero \
        --config.task=countdown --workdir=/tmp/r1jax/eval

Writes <workdir>/eval_<task>.json (summary + every sample) and eval_<task>.md (a table).
"""

from __future__ import annotations

import os

import jax
import ml_collections

from r1jax import config_base, config_check, rewards
from r1jax.data import tasks
from r1jax.eval import harness as evaluation
from r1jax.parallel import sharding
from r1jax.stages import common, init_model
from r1jax.tokenizers import sentencepiece as tok_lib
from r1jax.tokenizers import stop_ids
from r1jax.train import checkpoint as ckpt_lib


def load_model(config: ml_collections.ConfigDict, mesh, rules):
    """(graphdef, params, tokenizer) from a stage workdir or a Hugging Face folder."""
    if config.hf_dir:
        from r1jax.model import hf
        from r1jax.tokenizers import hf as hf_tokenizer

        config_check.require_path(config.hf_dir, "hf_dir", "Hugging Face model folder")
        graphdef, params, _ = hf.load_hf(config.hf_dir, mesh, rules)
        return graphdef, params, hf_tokenizer.load(config.hf_dir)
    config_check.require_path(config.checkpoint, "checkpoint", "stage directory")
    mcfg = init_model.read_model_config(config.checkpoint)
    graphdef, target, _ = init_model.abstract_params(mcfg, mesh, rules)
    params = ckpt_lib.load_item(os.path.join(config.checkpoint, "checkpoints"), "params", target)
    tok = tok_lib.SentencePieceTokenizer.load(os.path.join(config.checkpoint, "tokenizer.model"))
    return graphdef, params, tok


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    mesh = common.setup(config, config_base.eval_stage())
    rules = common.rules(config)
    sharding.set_rules(rules)
    try:
        name = config.accuracy_reward or tasks.accuracy_reward(config.task)
    except ValueError as e:
        raise config_check.ConfigError(str(e)) from None
    accuracy = rewards.build([name])[0]
    common.require_batch(
        config.batch_prompts, sharding.data_parallel_size(mesh, rules), "batch_prompts"
    )
    examples = tasks.load(
        config.task, config.split, config.data_dir, **config.task_options.to_dict()
    )
    if config.num_problems:
        examples = examples[: config.num_problems]
    graphdef, params, tok = load_model(config, mesh, rules)
    ecfg = evaluation.EvalConfig(
        samples=config.samples,
        temperature=config.temperature,
        top_p=config.top_p,
        top_k=config.top_k,
        max_new_tokens=config.max_new_tokens,
        batch_prompts=config.batch_prompts,
        prompt_bucket=config.prompt_bucket,
        template=config.template,
    )
    sample_fn = evaluation.make_sample_fn(
        graphdef, ecfg, tok.eos_id, tok.pad_id, params, mesh, rules, stop_ids(tok)
    )
    summary, records = evaluation.evaluate(
        graphdef, params, tok, examples, accuracy, ecfg, jax.random.key(config.seed), sample_fn
    )
    path = evaluation.write_report(workdir, f"eval_{config.task}", summary, records, config.task)
    print(
        f"r1jax: {config.task} {config.split}: pass@1 {summary['pass@1']:.3f}, "
        f"cons@{ecfg.samples} {summary[f'cons@{ecfg.samples}']:.3f} over {len(examples)} problems; "
        f"{path}",
        flush=True,
    )
    return summary
