"""R1-Zero on GSM8K from Qwen2.5-0.5B(-Instruct): GRPO with accuracy + format rewards, nothing else.

NOT RUN HERE: no GPU or real checkpoint was available while writing this file. Its `:tiny` variant
runs in tests/test_real_configs.py on a random model of the same architecture (Qwen2, tied
embeddings, padded vocabulary, bf16 compute) with a ChatML tokenizer; the numbers below are
estimates from arithmetic and the anchors' reports, not measurements.

Command (a local model folder and a local JSONL export of GSM8K, e.g. the `main` config's train
split written with `datasets`' `to_json`; records {"question": ..., "answer": "... #### 72"}):
    python -m r1jax.main --config=experiments/r1_zero_qwen2p5_0p5b_gsm8k.py \\
        --config.init.hf_dir=/models/Qwen2.5-0.5B-Instruct \\
        --config.task.options.path=/data/gsm8k/train.jsonl --workdir=/runs/r1z_qwen0p5b_gsm8k
With `path`, 10% of the training questions (by a hash of the text, ~750) are the held-out split.
To evaluate on the official test set instead, add `:split_files` and pass
`--config.task.options.paths.train=.../train.jsonl --config.task.options.paths.test=.../test.jsonl`.
On one GPU add `:devices=1` (same memory per device, 32 micro-batches per update instead of 4).
The base model (Qwen2.5-0.5B) works the same way; for the Instruct model, `--config.task.template=chat`
puts the R1 instruction into its chat template instead of the raw R1-Zero prompt.

Hardware: 8 accelerators with >= 32 GB each (8x A100/H100, TPU v6e-8) or one 80 GB GPU; with
another device count N pass `:devices=N` (a micro-batch holds one prompt group per device).
Memory per device (estimate): params f32 2.0 GB + reference copy 2.0 GB + Adam 4.0 GB + grads
2.0 GB ~= 10 GB (mesh (-1, 1, 1): every device holds a replica), plus the largest update
transient, the full-vocabulary f32 log-softmax of one micro-batch (8 rows x 512 tokens x 151,936
x 4 B = 2.5 GB per copy, a few copies alive in forward + backward: ~10 GB); the sampler's bf16
KV cache (12 KB per token: 256 rows x ~900 slots = 2.8 GB) lives in another phase: ~20-25 GB at
the peak. Too much for 16 GB devices (TPU v5e, v3).
Time (estimate, one H100): the update's forward + backward is ~5e14 FLOPs (256 rollouts x ~700
tokens x 6 x 494M params), ~1e15 with the remat, reference and old-policy forwards: 2-4 s at
25-50 % of bf16 peak, more with the f32 vocabulary head. The sampler reads the f32 weights and the
KV cache at every one of its <= 512 decode steps: a bandwidth floor under 1 s, several seconds in
practice. Host rewards (sympy, 2 workers): ~1 s. Roughly 10-20 s a step, so 2-4 hours for 500
steps (~2.4 epochs of 6.7k questions), plus the evaluations and the compiles (prompt buckets x
rl.length_bucket shapes of the update).

What comparable runs reported (not reproduced here):
- verl's baselines table (docs/algo/baseline.md): Qwen2.5-0.5B-Instruct scores 36.4 on GSM8K test
  as released, 56.7 after PPO (batch 256, prompt 1024, response 512) and 54.3 after GRPO-LoRA
  (batch 64, prompt 512, response 1024); their reward extracts the answer after `####` with
  their own prompt, so the numbers are not directly comparable to R1-tag pass@1.
- The DeepSeek-R1 paper (R1-Zero): KL coefficient 0.001, temperature 1, 32 questions x 16 samples
  per step, lr 3e-6. TinyZero (Countdown, veRL): lr 1e-6, KL 0.001, response length 1024.
- Dr. GRPO (Liu et al. 2025, understand-r1-zero README): Qwen2.5-Math-1.5B, lr 1e-6 constant,
  beta 0, 8 samples per prompt, temperature 1, 8x A100-40G; even GSM8K questions alone induced
  reasoning when the template stays close to the pretraining distribution.
Expected behaviour to check, given those: reward and held-out pass@1 (temperature 0.6, top-p 0.95)
rise over the first ~100 steps, format compliance goes to ~1, and `frac_reward_zero_std` falls.

`:tiny` (its own test, on CPU): the same settings shrunk to 2 prompts x 4 samples, 16 tokens,
3 steps, on the folder given by `--config.init.hf_dir`.
"""

from r1jax import config_base

PLACEHOLDER_MODEL = "/path/to/Qwen2.5-0.5B-Instruct"  # set --config.init.hf_dir
PLACEHOLDER_DATA = "/path/to/gsm8k"  # set --config.task.options.path (or paths.train/test)


def get_config(arg=None):
    a = config_base.parse_arg(arg, tiny=False, devices=8, split_files=False, seed=0, steps=500)
    c = config_base.grpo()
    c.seed = a.seed
    # (1) The model: a local Hugging Face folder, f32 master weights, bf16 compute, remat.
    c.init.hf_dir = PLACEHOLDER_MODEL
    c.init.build_if_missing = False  # never fall back to pretraining the toy model
    c.init.dtype, c.init.param_dtype, c.init.remat = "bfloat16", "float32", True
    c.mesh.shape = (-1, 1, 1)  # data parallel: a 0.5B replica (~10 GB with Adam) fits everywhere
    # (2) The data: a local GSM8K JSONL export, final answer after "####".
    files = (
        dict(
            paths=dict(
                train=f"{PLACEHOLDER_DATA}/train.jsonl", test=f"{PLACEHOLDER_DATA}/test.jsonl"
            )
        )
        if a.split_files
        else dict(path=f"{PLACEHOLDER_DATA}/train.jsonl", test_fraction=0.1)
    )
    c.task = config_base.task("jsonl", answer_format="gsm8k", **files)
    c.task.options.name = "gsm8k"  # the records' id prefix (task() has its own `name`)
    c.rewards = ("math_accuracy", "format(weight=0.1)")  # verl GSM8K: 1 correct, 0.1 format
    # (3) GRPO: 32 prompts x 8 samples = 256 rollouts a step, on-policy (mu = 1), small KL.
    r = c.rl
    r.prompts_per_step, r.group_size, r.max_new_tokens = 32, 8, 512
    r.temperature, r.top_p = 1.0, 1.0
    r.prompt_bucket = 128  # GSM8K prompts are ~150-350 tokens: 3 compiled shapes
    r.beta = 0.001
    r.mu = 1
    # bf16: the sampler's cached log-probs differ from the update's forward (ratios 0.97-1.03 on
    # the tiny model); recomputing them makes the first update exactly on-policy, as verl does
    r.old_logp = "recompute"
    # remat only applies to cache-free forwards, so the update runs the full sequences
    r.share_prefix = False
    r.grad_accum = max(1, r.prompts_per_step // a.devices)  # one prompt group per device
    # the update runs on completions cut to the longest one, rounded up to this: <= 4 update shapes per prompt shape
    r.length_bucket = 128
    c.optimizer.update(lr=1e-6, warmup_steps=0, schedule="constant", b2=0.999, weight_decay=0.0)
    # (4) Evaluation with the paper's sampling settings.
    c.eval.update(
        accuracy_reward="math_accuracy",
        max_new_tokens=r.max_new_tokens,
        every_steps=25,
        num_problems=256,
        samples=4,
        final_samples=8,
        batch_prompts=32,
    )
    c.steps = a.steps
    c.checkpoint.every_steps = 50
    if a.tiny:
        c.task.options.test_fraction = 0.25
        r.prompts_per_step, r.group_size, r.max_new_tokens = 2, 4, 16
        r.grad_accum = 2
        c.eval.update(max_new_tokens=16, every_steps=2, num_problems=2, samples=2)
        c.eval.update(final_samples=2, batch_prompts=2)
        c.steps = a.steps if a.steps != 500 else 3
        c.checkpoint.every_steps = 2
    return c
