"""r1jax in the shared peer benchmark (../shared/peer-bench): time a GRPO step beside TRL and Tunix.

Copy the peer-bench folder to a scratch directory, then copy this file into it as bench_r1jax.py:

    cp -r ../shared/peer-bench /tmp/pb && cp benchmarks/peer_bench_r1jax.py /tmp/pb/bench_r1jax.py
    cd /tmp/pb && bash setup_venvs.sh && ./venv-trl/bin/python make_assets.py
    ./venv-trl/bin/python check_parity.py hf
    python3 -m venv venv-r1jax && venv-r1jax/bin/pip install -e /path/to/r1jax safetensors
    venv-r1jax/bin/python bench_r1jax.py --tag r1jax_r1 [--fused]

(its own venv, as the peer-bench HOWTO asks of every implementation; then add
`"r1jax ./venv-r1jax/bin/python bench_r1jax.py"` to PEERS in run_all.sh to time it beside the peers).

It follows bench_new_template.py's contract exactly: the same safetensors weights (loaded with
r1jax.model.hf), `common.encode/decode`, prompts from `common.make_prompts`, reward
`common.arith_reward_one`, G=8, 8 prompts/step, 64 new tokens, T=1.0, beta 0.04 (k3), eps 0.2, mu 1,
AdamW 1e-5 constant + clip 1.0, fp32; step time = wall time between step ends with results
materialised. The forward pass is checked against assets/parity_hf.npy first.
"""

import argparse
import os
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common as C  # noqa: E402

from r1jax.train import heap_policy  # noqa: E402

heap_policy.configure()  # as `python -m r1jax.main` (R1JAX_MALLOC_ARENAS, R1JAX_HEAP)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from r1jax import model as model_lib  # noqa: E402
from r1jax.model import hf  # noqa: E402
from r1jax.parallel import sharding  # noqa: E402
from r1jax.rewards.registry import Reward  # noqa: E402
from r1jax.rl import grpo_loss, rollout, sampler_mesh, train_step  # noqa: E402
from r1jax.rl import step as step_lib  # noqa: E402
from r1jax.sampling import sample as sampling  # noqa: E402
from r1jax.sampling import threads as sampling_threads  # noqa: E402
from r1jax.train import lm_step, optim  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=C.TOTAL_STEPS)
ap.add_argument("--tag", default="r1jax")
ap.add_argument("--fused", action="store_true", help="jittable reward, one XLA program per step")
ap.add_argument("--scan-layers", type=int, default=0, help="1: one lax.scan over stacked layers")
ap.add_argument(
    "--grad-accum",
    type=int,
    default=4,
    help="micro-batches of the update (the same update: sums over one batch-level normaliser); "
    "4 keeps a quarter of the activations (peak RSS 903 vs 1155 MiB, step time within noise)",
)
ap.add_argument(
    "--no-compile-ahead",
    action="store_true",
    help="compile the update after sampling in the first step, not on a thread meanwhile",
)
ap.add_argument(
    "--sampler-data",
    type=int,
    default=0,
    help="N > 0: decode on a mesh of N CPU devices (data-parallel rows; rl/sampler_mesh.py), "
    "train on one; N CPU devices come from XLA_FLAGS=--xla_force_host_platform_device_count=N",
)
ap.add_argument(
    "--sampler-threads",
    type=int,
    default=0,
    help="K > 1: sample K parts of the prompts at once from K host threads "
    "(sampling/threads.py; the same tokens); 1: one call; 0: auto, as the GRPO stage (2 here)",
)
ap.add_argument(
    "--cache-pieces",
    type=int,
    default=0,
    help="the decode loop in N pieces (SamplingConfig.cache_pieces); 0: the sampler's default",
)
args = ap.parse_args()


class PeerTokenizer:
    pad_id, eos_id, bos_id = C.PAD_ID, C.EOS_ID, C.BOS_ID
    vocab_size = C.MODEL["vocab_size"]

    def encode(self, text):
        return C.encode(text)[1:]

    def decode(self, ids):
        return C.decode(ids)


def peer_reward(completions, examples):
    return np.array(
        [C.arith_reward_one(ex["prompt"], c) for c, ex in zip(completions, examples)], np.float32
    )


def check_parity(graphdef, params):
    path = os.path.join(C.ASSETS, "parity_hf.npy")
    if not os.path.exists(path):
        print(f"[{args.tag}] no {path}; run check_parity.py hf first (parity not checked)")
        return None
    ref = np.load(path)
    # check_parity.py's fixed batch (its TEXT), through the same char-level ids
    ids = np.array([C.encode(t) for t in ("12+35=7\u0100\u0101", "99+10=109")], np.int32)
    logits, _ = model_lib.apply(graphdef, params, jnp.asarray(ids))
    diff = float(np.abs(np.asarray(logits) - ref).max())
    print(f"[{args.tag}] parity vs HF logits: max abs diff {diff:.2e}")
    return diff


def main():
    mesh = sharding.make_mesh((1, 1, 1), jax.devices()[:1])
    rules = sharding.DEFAULT_RULES
    graphdef, params, _ = hf.load_hf(C.MODEL_DIR, mesh, rules, scan_layers=bool(args.scan_layers))
    pshard = jax.tree.map(lambda x: x.sharding, params)
    parity = check_parity(graphdef, params)
    tx, _ = optim.make(
        optim.OptimizerConfig(
            lr=C.LEARNING_RATE, warmup_steps=0, schedule="constant", weight_decay=0.0, clip_norm=1.0
        ),
        args.steps,
    )
    state, sshard = lm_step.init_state(graphdef, params, pshard, tx, mesh)
    state = train_step.state_with_ref(state, C.BETA)
    sshard = dict(sshard, ref_params=pshard)
    scfg = sampling.SamplingConfig(
        max_new_tokens=C.MAX_COMPLETION,
        temperature=C.TEMPERATURE,
        eos_id=C.EOS_ID,
        pad_id=C.PAD_ID,
        cache_pieces=args.cache_pieces or None,
    )
    ucfg = train_step.UpdateConfig(
        group_size=C.NUM_GENERATIONS,
        grad_accum=args.grad_accum,
        mu=C.NUM_ITERATIONS,
        temperature=C.TEMPERATURE,
        loss=grpo_loss.LossOptions(epsilon_low=C.EPSILON, epsilon_high=C.EPSILON, beta=C.BETA),
    )
    reward = Reward("arith", peer_reward, 0.0, 1.1)
    if args.fused:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__))))
        from grpo_step import arith_reward_jax  # same rule on char ids (benchmarks/grpo_step.py)

        reward = Reward(
            "arith",
            peer_reward,
            0.0,
            1.1,
            jax_fn=arith_reward_jax,
            targets_fn=lambda exs, tok=None: _targets(exs),
        )
    repl = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    batch_sh = lambda nd: sharding.batch_sharding(mesh, rules, nd) if nd else repl  # noqa: E731
    sm = None
    if args.sampler_data:
        shape = (args.sampler_data, 1, 1)
        sm = sampler_mesh.make(shape, mesh, rules, pshard, C.PROMPTS_PER_STEP)
    threads = 1
    if not args.fused and sm is None:  # as the GRPO stage picks it (stages/grpo.py)
        threads = sampling_threads.resolve(args.sampler_threads, C.PROMPTS_PER_STEP, mesh)
    with jax.set_mesh(mesh):
        fns = rollout.build(
            graphdef, tx, scfg, ucfg, [reward], None, sshard, batch_sh, args.fused, sm, threads
        )  # fmt: skip
    tok = PeerTokenizer()
    ctx = step_lib.StepContext(
        fns, args.fused, [reward], tok, mesh, rules, C.NUM_GENERATIONS,
        compile_ahead=not args.no_compile_ahead,
    )  # fmt: skip
    rows = C.make_prompts(C.PROMPTS_PER_STEP * (args.steps + 2))
    step_times, gen_times, gen_tokens, cpu_times = [], [], [], []
    rss = [round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)]  # before step 0
    t_prev, c_prev = time.perf_counter(), time.process_time()
    for step in range(args.steps):
        batch = rows[step * C.PROMPTS_PER_STEP : (step + 1) * C.PROMPTS_PER_STEP]
        ids = np.array([C.encode(r["prompt"]) for r in batch], np.int32)
        prompts = step_lib.Prompts(jnp.asarray(ids), jnp.ones(ids.shape, bool), list(batch))
        res = step_lib.run(ctx, state, prompts, jax.random.key(step))
        state = res.state
        jax.block_until_ready(state["params"])
        rss.append(round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
        gen_times.append(res.times["sample"])
        gen_tokens.append(int(res.rollouts.lengths_N.sum()))
        now, c = time.perf_counter(), time.process_time()
        step_times.append(now - t_prev)
        cpu_times.append(c - c_prev)
        t_prev, c_prev = now, c
    C.summarize(
        args.tag,
        step_times,
        gen_times,
        gen_tokens,
        cpu_times=cpu_times,
        extra=dict(
            versions={"python": sys.version.split()[0], "jax": jax.__version__},
            parity_max_abs_diff=parity,
            path="fused" if args.fused else "split",
            scan_layers=bool(args.scan_layers),
            grad_accum=args.grad_accum,
            sampler_devices=args.sampler_data or 1,
            sampler_threads=threads,
            cache_pieces=sampling.num_pieces(scfg),
            peak_rss_mib_before_and_after_each_step=rss,
        ),
    )


def _targets(examples):
    digits = np.full((len(examples), 4), -1, np.int32)
    n = np.zeros(len(examples), np.int32)
    for i, ex in enumerate(examples):
        s = ex["answer"]
        digits[i, : len(s)] = [int(ch) for ch in s]
        n[i] = len(s)
    return {"digits_NxD": digits, "n_N": n}


if __name__ == "__main__":
    main()
