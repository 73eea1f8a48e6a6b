"""Building blocks of experiment configs (ml-collections), shared by the files in experiments/.

An experiment file starts from one of the stage defaults here and changes values; `config_check`
validates a finished config against the same defaults, so every key a user can set is listed here
with its type. Presets are plain dicts so that an experiment can print or override any entry.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import ml_collections

from r1jax.data.corpus import CorpusConfig
from r1jax.model.config import ModelConfig
from r1jax.model.presets import MODEL_PRESETS
from r1jax.parallel import sharding


def parse_arg(arg: str | None, **defaults: Any) -> ml_collections.ConfigDict:
    """big_vision-style `file.py:tiny,seed=3`: bare words are True flags, key=value pairs are typed."""
    out = ml_collections.ConfigDict(defaults)
    if not arg:
        return out
    for part in arg.split(","):
        part = part.strip()
        if not part:
            continue
        key, _, val = part.partition("=")
        if key not in defaults:
            raise ValueError(
                f"unknown config argument {key!r}; valid arguments: {sorted(defaults)}."
            )
        if not val:
            out[key] = True
        else:
            kind = type(defaults[key])
            out[key] = val.lower() in ("1", "true", "yes") if kind is bool else kind(val)
    return out


def model(preset: str = "toy", **overrides: Any) -> ml_collections.ConfigDict:
    fields = {f.name: f.default for f in dataclasses.fields(ModelConfig)}
    fields["rope_scaling"] = None
    fields.update(MODEL_PRESETS[preset])
    fields.update(overrides)
    return ml_collections.ConfigDict(fields)


def corpus(**overrides: Any) -> ml_collections.ConfigDict:
    fields = dataclasses.asdict(CorpusConfig())
    fields.update(overrides)
    return ml_collections.ConfigDict(fields)


def optimizer(**overrides: Any) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict(
        dict(
            lr=1e-3,
            warmup_steps=100,
            schedule="cosine",  # cosine | constant | linear
            end_lr_fraction=0.1,
            b1=0.9,
            b2=0.95,
            eps=1e-8,
            weight_decay=0.1,
            clip_norm=1.0,
            grad_accum=1,
        )
    )
    c.update(overrides)
    return c


def checkpoint(**overrides: Any) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict(
        dict(every_steps=200, keep=2, keep_period=0, async_save=True, fallback_to_previous=True)
    )
    c.update(overrides)
    return c


def common(stage: str) -> ml_collections.ConfigDict:
    """Keys every stage has."""
    c = ml_collections.ConfigDict()
    c.stage = stage
    c.seed = 0
    c.mesh = ml_collections.ConfigDict(dict(shape=(-1, 1, 1)))
    c.sharding_rules = tuple(sharding.DEFAULT_RULES)
    # True: a parameter dimension the mesh cannot divide is an error instead of being replicated
    c.sharding_strict = False
    # one process unless num_processes > 1 (or R1JAX_* from r1jax.launch), auto=True (JAX's cluster
    # detection: TPU pods, SLURM, Open MPI), or a multi-task SLURM/MPI/TPU environment is detected;
    # a dead peer stops the others within heartbeat_timeout_s (parallel/distributed.py)
    c.distributed = ml_collections.ConfigDict(
        dict(
            coordinator="",
            num_processes=1,
            process_id=0,
            cpu_collectives="gloo",
            auto=False,
            init_timeout_s=300,
            heartbeat_timeout_s=100,
            local_device_ids=(),  # () = JAX's default (under SLURM/MPI on GPUs: one per process)
        )
    )
    c.checkpoint = checkpoint()
    # keys that may differ from the checkpoint's config when a run resumes (stages/resume_guard.py)
    c.resume = ml_collections.ConfigDict(dict(allow_changes=""))
    c.log_every = 1
    c.log_samples = 2  # completions logged per step (samples.jsonl + TensorBoard text); 0 = off
    c.profile_steps = ()  # (start, stop): a profiler trace of those steps in <workdir>/profile
    # Weights & Biases (optional extra `wandb`): offline by default, `wandb sync` uploads later
    c.wandb = ml_collections.ConfigDict(
        dict(enabled=False, project="r1jax", mode="offline", entity="")
    )
    c.plot_keys = ("loss",)
    c.max_consecutive_nonfinite = 5
    return c


def pretrain() -> ml_collections.ConfigDict:
    """Defaults of the LM training stage (stages/pretrain.py)."""
    c = common("pretrain")
    c.model = model("toy")
    c.tokenizer = ml_collections.ConfigDict(dict(path="", vocab_size=512, train_docs=20000))
    c.corpus = corpus()
    c.data = ml_collections.ConfigDict(dict(seq_len=256, batch_size=32, loss_on="all"))
    c.optimizer = optimizer()
    c.steps = 2000
    c.plot_keys = ("loss", "grad_norm", "lr", "tokens_per_s")
    return c


def rl(**overrides: Any) -> ml_collections.ConfigDict:
    """GRPO knobs (see rl/grpo_loss.py and rl/train_step.py for what each means)."""
    c = ml_collections.ConfigDict(
        dict(
            prompts_per_step=32,
            group_size=8,
            max_new_tokens=128,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            prompt_bucket=16,
            mu=1,
            mini_batches=1,
            grad_accum=1,
            advantage="grpo",  # grpo | dr_grpo | rloo
            std_ddof=0,
            adv_eps=1e-4,
            epsilon_low=0.2,
            epsilon_high=0.2,
            dual_clip=0.0,
            beta=0.04,
            kl_estimator="k3",
            aggregation="seq_mean_token_mean",
            loss="grpo",  # a registered loss (rl/losses.py), "name(key=value)" for its arguments
            kl_clamp=0.0,  # c > 0 bounds ref_logp - logp to [-c, c] inside the KL estimator
            mask_truncated=False,
            share_prefix=True,
            old_logp="sampler",
            ref_update_every=0,  # 0 = never refresh the reference
            dynamic_sampling=False,
            max_resample_rounds=3,
            fused="auto",  # auto | on | off
            length_bucket=32,  # split path: update on completions cut to the longest, rounded up
            vocab_chunk=8192,  # log-probs of a larger vocabulary in chunks (no [N, T, V] logits)
            entropy=True,  # log the policy entropy (a diagnostic; costs a pass over the logits)
            # () samples on the training mesh; (data, fsdp, tensor) decodes on that many devices of
            # their own (rl/sampler_mesh.py, the split step; on a CPU host with XLA_FLAGS=
            # --xla_force_host_platform_device_count=<cores>, mesh.shape=(1,1,1), (<cores>,1,1))
            sampler_mesh=(),
            # K > 1: the sampler as K parts at once from K threads; 0: auto (sampling/threads.py)
            sampler_threads=0,
        )
    )
    c.update(overrides)
    return c


def evaluation(**overrides: Any) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict(
        dict(
            every_steps=50,
            num_problems=64,
            samples=4,
            final_samples=8,
            temperature=0.6,
            top_p=0.95,
            top_k=0,
            max_new_tokens=128,
            batch_prompts=16,
            accuracy_reward="",  # "" = the task's registered accuracy reward (data/tasks.py)
            final=True,  # the full held-out evaluation at the end of the stage
        )
    )
    c.update(overrides)
    return c


def task(name: str = "countdown", **options: Any) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        dict(name=name, data_dir="", template="r1_zero", eval_split="test", options=dict(options))
    )


def grpo() -> ml_collections.ConfigDict:
    """Defaults of the GRPO stage (stages/grpo.py)."""
    c = common("grpo")
    c.init = ml_collections.ConfigDict(
        dict(
            checkpoint="",
            build_if_missing=True,
            hf_dir="",
            # how a model from hf_dir is built: compute dtype, parameter dtype, rematerialisation
            dtype="float32",
            param_dtype="float32",
            remat=False,
            remat_policy="nothing_saveable",  # what remat keeps (model.config.REMAT_POLICIES)
            scan_layers=False,  # stacked layers run as one lax.scan (compile time flat in depth)
            pretrain=pretrain(),
            build=None,  # a stage config that makes the input model when it is missing (not pretrain)
        )
    )
    c.task = task("countdown")
    c.task.mixture = ()  # all-scenario RL: ({source, name, options, weight}, ...); () = one task
    c.rewards = ("countdown_accuracy", "format(weight=0.5)")
    c.update(_stage_defaults("mixture_config", "grpo_defaults"))  # rewards_by_source, replay, ...
    c.rl = rl()
    c.optimizer = optimizer(lr=1e-5, warmup_steps=0, schedule="constant", weight_decay=0.0)
    c.eval = evaluation()
    c.steps = 200
    c.checkpoint = checkpoint(every_steps=25)
    c.plot_keys = (
        "reward",
        "accuracy",
        "eval_pass@1",
        "completion_length_mean",
        "kl",
        "entropy",
        "frac_reward_zero_std",
        "clip_frac_high",
    )
    return c


def sibling(this_file: str, name: str) -> Any:
    """Imports experiments/<name>.py next to `this_file` (configs compose without sys.path tricks)."""
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(os.path.abspath(this_file)), f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"r1jax_experiment_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def eval_stage() -> ml_collections.ConfigDict:
    """Defaults of the evaluation stage (stages/eval.py)."""
    c = common("eval")
    del c["checkpoint"]  # evaluation saves no checkpoint; here the key names the model to evaluate
    c.checkpoint = ""  # a stage workdir (checkpoints/ + tokenizer.model + model_config.json)
    c.hf_dir = ""  # or a Hugging Face model folder
    c.task = "countdown"
    c.task_options = ml_collections.ConfigDict({})
    c.data_dir = ""
    c.split = "test"
    c.template = "r1_zero"
    c.accuracy_reward = ""  # default: the task's registered accuracy reward (data/tasks.py)
    c.num_problems = 0  # 0 = the whole split
    c.samples = 8
    c.temperature = 0.6
    c.top_p = 0.95
    c.top_k = 0
    c.max_new_tokens = 160
    c.batch_prompts = 16
    c.prompt_bucket = 16
    return c


def _stage_defaults(module: str, name: str) -> ml_collections.ConfigDict:
    """The later stages' defaults live in stages/sft_config.py and stages/rm_config.py (this file's
    300-line limit); they are imported on use (stages import this module)."""
    import importlib

    return getattr(importlib.import_module(f"r1jax.stages.{module}"), name)()


sft = functools.partial(_stage_defaults, "sft_config", "sft")  # stages/sft.py
distill = functools.partial(_stage_defaults, "sft_config", "distill")  # stages/distill.py
cold_start_data = functools.partial(_stage_defaults, "sft_config", "cold_start_data")
rejection_sampling = functools.partial(_stage_defaults, "sft_config", "rejection_sampling")
preference_data = functools.partial(_stage_defaults, "rm_config", "preference_data_defaults")
reward_model = functools.partial(_stage_defaults, "rm_config", "reward_model_defaults")
pipeline = functools.partial(_stage_defaults, "pipeline_config", "pipeline")
report = functools.partial(_stage_defaults, "pipeline_config", "report")
