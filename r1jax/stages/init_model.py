"""Where a stage's starting model comes from: a previous stage's workdir, or a Hugging Face folder.

Every stage writes the same layout into its workdir (checkpoints/, tokenizer.model,
model_config.json), so any stage's output is the next stage's input. On the toy path a missing input
is built from defaults: `config.init.build_if_missing` runs the pretrain stage (with
`config.init.pretrain`) into the input directory first, and says so.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import jax
import ml_collections
from flax import nnx

from r1jax import config_check
from r1jax.model.config import ModelConfig
from r1jax.model.transformer import Transformer
from r1jax.parallel import sharding
from r1jax.tokenizers import sentencepiece as tok_lib
from r1jax.train import checkpoint as ckpt_lib


def input_dir(config: ml_collections.ConfigDict, workdir: str) -> str:
    """config.init.checkpoint: a path, or a bare stage name (a sibling of the workdir); "" = base."""
    from r1jax.stages import inputs

    return inputs.resolve(config.init.checkpoint or "base", workdir)


def _unfinished(path: str) -> tuple[int, int] | None:
    """(step, planned steps) when the stage in `path` stopped before the steps its config planned.

    Only the run's own saved config decides, so a user's finished checkpoint of any length counts as
    finished; None when it is finished or carries no plan.
    """
    step, meta = ckpt_lib.read_meta(os.path.join(path, "checkpoints"))
    try:
        planned = int(json.loads(meta.get("config") or "{}").get("steps", 0))
    except (TypeError, ValueError):
        return None
    return (step, planned) if step < planned else None


def ensure_input(config: ml_collections.ConfigDict, workdir: str) -> str:
    """The input stage directory; builds the toy base model there when it is missing and allowed.

    A base build that was interrupted (newest checkpoint before its planned steps) is resumed rather
    than taken as finished, so a killed main job never trains RL on a half-pretrained model.
    """
    path = input_dir(config, workdir)
    try:
        unfinished = _unfinished(path)
    except FileNotFoundError:  # no complete checkpoint at all
        if not config.init.build_if_missing:
            raise config_check.ConfigError(
                f"config.init.checkpoint={path!r} holds no complete checkpoint; run the previous "
                "stage into it first, or set config.init.build_if_missing=True to build the toy "
                "base model."
            ) from None
        why = f"no base model in {path}; pretraining the toy base model there first"
    else:
        if unfinished is None or not config.init.build_if_missing:
            return path
        why = (
            f"the base model in {path} stopped at step {unfinished[0]} of {unfinished[1]}; "
            "resuming its pretraining first"
        )
    build = config.init.get("build")
    if build:  # another stage makes this input (e.g. the cold-start SFT model for reasoning RL)
        from r1jax.stages import inputs

        print(
            f"r1jax: no finished model in {path}; running stage {build.stage!r} there first",
            flush=True,
        )
        inputs.run_stage(build, path)
        return path
    print(f"r1jax: {why} (config.init.pretrain)", flush=True)
    from r1jax.stages import pretrain

    pretrain.run(config.init.pretrain, path)  # resumes from the newest checkpoint, if any
    return path


def abstract_params(
    cfg: ModelConfig, mesh: Any, rules: sharding.Rules
) -> tuple[nnx.GraphDef, dict, dict]:
    """(graphdef, abstract params with shardings, shardings) without allocating anything."""
    with nnx.use_eager_sharding(False):
        abstract = nnx.eval_shape(lambda: Transformer(cfg, nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    shapes = nnx.to_pure_dict(state)
    shardings = sharding.tree_shardings(shapes, sharding.param_names(state), mesh, rules)
    target = jax.tree.map(
        lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), shapes, shardings
    )
    return graphdef, target, shardings


def read_model_config(path: str) -> ModelConfig:
    file = os.path.join(path, "model_config.json")
    if not os.path.exists(file):
        raise FileNotFoundError(f"{file} is missing; {path} is not an r1jax stage directory")
    with open(file, encoding="utf-8") as f:
        return ModelConfig.from_dict(json.load(f))


def load_policy(
    config: ml_collections.ConfigDict, workdir: str, mesh: Any, rules: sharding.Rules
) -> tuple[nnx.GraphDef, dict, dict, ModelConfig, Any, str]:
    """(graphdef, params, param shardings, model config, tokenizer, source description)."""
    if config.init.get("hf_dir"):
        from r1jax.model import hf
        from r1jax.tokenizers import hf as hf_tokenizer

        config_check.require_path(config.init.hf_dir, "init.hf_dir", "Hugging Face model folder")
        i = config.init
        graphdef, params, mcfg = hf.load_hf(
            i.hf_dir, mesh, rules, dtype=i.dtype, param_dtype=i.param_dtype, remat=i.remat,
            remat_policy=i.remat_policy, scan_layers=i.scan_layers,
        )  # fmt: skip
        shardings = jax.tree.map(lambda x: x.sharding, params)
        return (
            graphdef,
            params,
            shardings,
            mcfg,
            hf_tokenizer.load(config.init.hf_dir),
            config.init.hf_dir,
        )
    path = ensure_input(config, workdir)
    mcfg = read_model_config(path)
    graphdef, target, shardings = abstract_params(mcfg, mesh, rules)
    params = ckpt_lib.load_item(os.path.join(path, "checkpoints"), "params", target)
    tok = tok_lib.SentencePieceTokenizer.load(os.path.join(path, "tokenizer.model"))
    return graphdef, params, shardings, mcfg, tok, path


def publish_layout(workdir: str, source: str, mcfg: ModelConfig, tokenizer: Any) -> None:
    """Makes `workdir` a valid input for the next stage (tokenizer + model_config.json)."""
    if jax.process_index() != 0:
        return
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "model_config.json"), "w", encoding="utf-8") as f:
        json.dump(mcfg.to_dict(), f, indent=2)
    src = os.path.join(source, "tokenizer.model")
    dst = os.path.join(workdir, "tokenizer.model")
    if os.path.exists(src) and not os.path.exists(dst):
        shutil.copyfile(src, dst)
    elif not os.path.exists(dst) and hasattr(tokenizer, "save"):
        tokenizer.save(dst)
