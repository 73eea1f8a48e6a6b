"""R1-Zero on Countdown from Qwen2.5-1.5B (base), TinyZero-style: GRPO, accuracy + format rewards.

NOT RUN HERE: no GPU or real checkpoint was available while writing this file. Its `:tiny` variant
runs in tests/test_real_configs.py on a random model of the same architecture (Qwen2, tied
embeddings, padded vocabulary, bf16 compute, eos == pad as in the base model's folder); the numbers
below are estimates from arithmetic and the anchors' reports, not measurements.

Command (a local model folder; the problems are generated, nothing is downloaded):
    python -m r1jax.main --config=experiments/r1_zero_qwen2p5_1p5b_countdown.py \\
        --config.init.hf_dir=/models/Qwen2.5-1.5B --workdir=/runs/r1z_qwen1p5b_countdown
On one GPU add `:devices=1` (same memory per device, 32 micro-batches per update instead of 4).

The task: 3 numbers from 1..99 and a target in 1..100 reachable with + - * / (each number once).
TinyZero trains on Countdown-Tasks-3to4 (3 or 4 numbers). r1jax's Countdown enumerates every
solvable problem, which for 3 numbers up to 99 is 648,371 problems (583,443 train / 64,928 test by a
hash of the problem), ~40 s of enumeration per split when the data set is first built; 4 numbers up
to 99 would be 4.2M number sets at ~3 ms each, hours of single-core enumeration, so this config
keeps 3 numbers (`--config.task.options.n_numbers=4 --config.task.options.max_number=30`, 40,920
sets, is a 4-number variant that builds in a few minutes). The held-out split is 1,024 problems.

Hardware: 8 GPUs with >= 40 GB each (A100/H100) or one 80 GB GPU; with another device count N
pass `:devices=N` (a micro-batch holds one prompt group per device).
Memory (estimate): params f32 6.2 GB + reference 6.2 GB + Adam 12.4 GB + grads 6.2 GB ~= 31 GB,
FSDP-sharded over the mesh (1, -1, 1) (~4 GB a device on 8); the update's largest transient is the
full-vocabulary f32 log-softmax of one prompt group (8 rows x 1,024 tokens x 151,936 x 4 B = 5 GB
per copy, ~20 GB in forward + backward); the sampler's bf16 KV cache is 28 KB per token (256 rows x
1,152 slots = 8.5 GB, on one device). One 80 GB GPU: ~55-60 GB at the peak.
Time (estimate, one H100): the update's forward + backward is ~2.7e15 FLOPs (256 rollouts x
~1,150 tokens x 6 x 1.54B params), ~5.5e15 with the remat, reference and old-policy forwards:
11-22 s at 25-50 % of bf16 peak. The sampler reads 6.2 GB of f32 weights and up to 8.5 GB of KV
cache at each of its <= 1,024 decode steps: a bandwidth floor of ~3 s, 10-20 s in practice.
Roughly 25-40 s a step, so 3-4.5 hours for 400 steps (12,800 problems, 2 % of the train split),
plus evaluations and compiles. Completions shorter than 1,024 tokens make both phases cheaper
(the update cuts completions to the longest, rounded up to rl.length_bucket).

What comparable runs reported (not reproduced here):
- TinyZero (Pan et al. 2025; README, scripts/train_tiny_zero.sh, the authors' thread): Countdown
  with veRL PPO, 256 prompts a step, prompt 256 / response 1,024 tokens, actor lr 1e-6, KL 0.001,
  reward 1 for a correct equation and 0.1 for a well-formed wrong one; Qwen2.5-3B base learns
  self-verification and search, "from 1.5B, the model start learning to search, to self-verify and
  to revise its solutions", 0.5B "guess a solution and stop"; single GPU "works for model <= 1.5B";
  base and instruct converge to about the same score, instruct faster; PPO, GRPO and PRIME all work.
- The DeepSeek-R1 paper (R1-Zero): KL coefficient 0.001, temperature 1, 32 questions x 16 samples
  per step, lr 3e-6. Dr. GRPO (understand-r1-zero README): 1.5B on 8x A100-40G, lr 1e-6 constant,
  8 samples per prompt, temperature 1.
Expected behaviour to check, given those: accuracy rises from the base model's few percent, the
completion length first falls then grows as the policy learns to try and check several equations,
and the format reward saturates early.

`:tiny` (its own test, on CPU): 3 numbers up to 9, 2 prompts x 4 samples, 16 tokens, 3 steps, on
the folder given by `--config.init.hf_dir`.
"""

from r1jax import config_base

PLACEHOLDER_MODEL = "/path/to/Qwen2.5-1.5B"  # set --config.init.hf_dir


def get_config(arg=None):
    a = config_base.parse_arg(arg, tiny=False, devices=8, seed=0, steps=400)
    c = config_base.grpo()
    c.seed = a.seed
    # (1) The model: a local Hugging Face folder, f32 master weights, bf16 compute, remat.
    c.init.hf_dir = PLACEHOLDER_MODEL
    c.init.build_if_missing = False  # never fall back to pretraining the toy model
    c.init.dtype, c.init.param_dtype, c.init.remat = "bfloat16", "float32", True
    c.mesh.shape = (1, -1, 1)  # FSDP: 31 GB of weights and optimizer state, sharded
    # (2) The task: 3 numbers up to 99, targets up to 100; 1,024 held-out problems.
    c.task = config_base.task("countdown", n_numbers=3, max_number=99, max_target=100, n_test=1024)
    c.rewards = ("countdown_accuracy", "format(weight=0.1)")  # TinyZero: 1 correct, 0.1 format
    # (3) GRPO: 32 prompts x 8 samples = 256 rollouts a step (TinyZero: 256), on-policy, small KL.
    r = c.rl
    r.prompts_per_step, r.group_size, r.max_new_tokens = 32, 8, 1024
    r.temperature, r.top_p = 1.0, 1.0
    r.prompt_bucket = 64  # Countdown prompts are ~130 tokens: one or two compiled shapes
    r.beta = 0.001
    r.mu = 1
    # bf16: the sampler's cached log-probs differ slightly from the update's forward; recomputing
    # them makes the first update exactly on-policy, as verl does
    r.old_logp = "recompute"
    # remat only applies to cache-free forwards, so the update runs the full sequences (the
    # prompt is ~1/8 of a sequence here, so re-running it per sample costs little)
    r.share_prefix = False
    r.grad_accum = max(1, r.prompts_per_step // a.devices)  # one prompt group per device
    # the update runs on completions cut to the longest one, rounded up to this: <= 4 update shapes per prompt shape
    r.length_bucket = 256
    c.optimizer.update(lr=1e-6, warmup_steps=0, schedule="constant", b2=0.999, weight_decay=0.0)
    # (4) Evaluation with the paper's sampling settings.
    c.eval.update(
        accuracy_reward="countdown_accuracy",
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
        c.task.options.update(max_number=9, max_target=99, n_test=8)
        r.prompts_per_step, r.group_size, r.max_new_tokens = 2, 4, 16
        r.grad_accum = 2
        c.eval.update(max_new_tokens=16, every_steps=2, num_problems=2, samples=2)
        c.eval.update(final_samples=2, batch_prompts=2)
        c.steps = a.steps if a.steps != 400 else 3
        c.checkpoint.every_steps = 2
    return c
