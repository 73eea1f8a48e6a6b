"""Per-step cost of 2 processes x 4 CPU devices against 1 process x 8 devices, printed as JSON.

    python benchmarks/multihost.py [--steps 10] [--warmup 3] [--out benchmarks/results/x.json]

The GRPO step of experiments/r1_zero_countdown.py:tiny (model preset "test", 4 prompts x G 4, 24 new
tokens, the Countdown rewards, beta 0.02) from a randomly initialised policy and a tokenizer trained
once by this script, on two meshes: (data 2, fsdp 2, tensor 2), the one the tests use, and
(8, 1, 1), pure data parallelism (8 prompts there: one per device). Each side runs this file with
`--worker` (the two processes get the environment `python -m r1jax.launch` gives its children,
gloo collectives over localhost). Per step, after the warm-up steps, the median of:
  sample          the sampler (one program; on 2 processes each runs its half of the rows)
  own_rows        reading this process's rows of tokens, mask, lengths from its own shards
  decode_rewards  decoding and scoring them (the Countdown rewards on the host)
  gather          gathering the [N, R] rewards and the lengths to every process, rewards to devices
  update          the GRPO update (one program)
and, for comparison, what the step used to do before issue 13 (`all_rows_gather`: gathering every
completion to every host; `all_rows_rewards`: scoring all N rows on each). On this 2-core machine
the two processes share the same 2 cores as the one process does, so the difference measures
the software's overhead (collectives over gloo, host work), not the benefit of a second host.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
PARTS = ("sample", "own_rows", "decode_rewards", "gather", "update", "step")
PARTS += ("all_rows_gather", "all_rows_rewards")


def worker(args) -> None:
    from r1jax.parallel import distributed

    distributed.initialize()  # the R1JAX_* variables (two processes) or nothing (one)
    import jax

    from r1jax import config_base
    from r1jax import model as model_lib
    from r1jax.data import prompts as prompts_lib
    from r1jax.data import tasks
    from r1jax.parallel import rows, sharding
    from r1jax.rewards import build as build_rewards
    from r1jax.rl import rollout, train_step
    from r1jax.rl import step as step_lib
    from r1jax.stages import grpo_config
    from r1jax.tokenizers import sentencepiece as tok_lib
    from r1jax.train import lm_step, optim

    config = config_base.sibling(os.path.join(ROOT, "experiments", "x.py"), "r1_zero_countdown")
    config = config.get_config("tiny")
    shape = tuple(int(x) for x in args.mesh.split(","))
    mesh, rules = sharding.make_mesh(shape), sharding.DEFAULT_RULES
    sharding.set_rules(rules)
    tok = tok_lib.SentencePieceTokenizer.load(args.tokenizer)
    mcfg = model_lib.ModelConfig.from_dict(config.init.pretrain.model.to_dict())
    graphdef, params, pshard = model_lib.create(mcfg, 0, mesh, rules)
    reward_fns = build_rewards(config.rewards)
    tx, _ = optim.make(optim.OptimizerConfig.from_dict(config.optimizer.to_dict()), args.steps)
    state, sshard = lm_step.init_state(graphdef, params, pshard, tx, mesh)
    state = train_step.state_with_ref(state, config.rl.beta)
    sshard = dict(sshard, ref_params=pshard)
    repl = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    batch_sh = lambda nd: sharding.batch_sharding(mesh, rules, nd) if nd else repl  # noqa: E731
    scfg = grpo_config.sampling_config(config, tok)
    ucfg = grpo_config.update_config(config, reward_fns)
    with jax.set_mesh(mesh):
        fns = rollout.build(graphdef, tx, scfg, ucfg, reward_fns, None, sshard, batch_sh, False)
    g = config.rl.group_size
    ctx = step_lib.StepContext(fns, False, reward_fns, tok, mesh, rules, g, config.rl.length_bucket)
    t = config.task
    stream = prompts_lib.PromptStream(
        tasks.load(t.name, "train", args.tfds, **t.options.to_dict()), config.seed
    )
    # the tiny config's 4 prompts, or one per data-parallel device when the mesh has more
    b = max(config.rl.prompts_per_step, sharding.data_parallel_size(mesh, rules))
    put = lambda x: rows.global_from_host(x, mesh, rules)  # noqa: E731
    per_step = []
    for step in range(args.steps):
        examples = stream.take(step * b, b)
        ids, valid = prompts_lib.encode_batch(tok, t.template, examples, config.rl.prompt_bucket)
        prompts = step_lib.Prompts(put(ids), put(valid), examples)
        t0 = time.perf_counter()
        out = step_lib.sample(ctx, state["params"], prompts, jax.random.key(step))
        jax.block_until_ready(out.tokens_NxT)
        t1 = time.perf_counter()
        parts: dict = {}
        scored = step_lib.score(ctx, prompts, out, parts)
        t2 = time.perf_counter()
        state, _ = step_lib.update(ctx, state, scored)
        jax.block_until_ready(state["params"])
        t3 = time.perf_counter()
        parts.update(sample=t1 - t0, update=t3 - t2, step=t3 - t0)
        # the path before issue 13: every completion gathered to every host, all N rows scored
        t4 = time.perf_counter()
        toks, mask = (rows.gather_rows(x) for x in (out.tokens_NxT, out.mask_NxT))
        t5 = time.perf_counter()
        texts = step_lib.decode_rows(tok, toks, mask)
        rollout.host_rewards(reward_fns, texts, prompts.grouped(g), scored.lengths_N)
        parts.update(all_rows_gather=t5 - t4, all_rows_rewards=time.perf_counter() - t5)
        per_step.append(parts)
    counted = per_step[args.warmup :]
    result = {
        "mesh": list(shape),
        "processes": jax.process_count(),
        "devices_per_process": jax.local_device_count(),
        "rows_scored_per_process": int(counted[0]["rows"]),
        "rows_per_step": b * g,
        "steps_counted": len(counted),
    }
    result.update({f"{k}_s_median": float(np.median([p[k] for p in counted])) for k in PARTS})
    if jax.process_index() == 0:
        print("RESULT " + json.dumps(result), flush=True)


def _side(processes: int, mesh: str, args, tmp: str) -> dict:
    """Runs the workers of one side; returns process 0's result."""
    from r1jax import launch

    cmd = [sys.executable, os.path.abspath(__file__), "--worker", f"--steps={args.steps}"]
    cmd += [f"--mesh={mesh}"]
    cmd += [f"--warmup={args.warmup}", f"--tokenizer={tmp}/tok.model", f"--tfds={tmp}/tfds"]
    coord = f"127.0.0.1:{launch.free_port()}"
    base = {k: v for k, v in os.environ.items() if not k.startswith("R1JAX_")}
    procs = []
    for i in range(processes):
        env = launch.process_env(i, processes, coord, 8 // processes, base)
        if processes == 1:
            for k in ("R1JAX_COORDINATOR", "R1JAX_NUM_PROCESSES", "R1JAX_PROCESS_ID"):
                env.pop(k)
        env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))  # fmt: skip
    outs = [p.communicate(timeout=1800) for p in procs]
    for p, (_, err) in zip(procs, outs):
        if p.returncode:
            raise SystemExit(f"worker exited {p.returncode}:\n{err[-4000:]}")
    line = next(ln for ln in outs[0][0].splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--out", default="")
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--tokenizer", default="")
    ap.add_argument("--tfds", default="")
    ap.add_argument("--mesh", default="2,2,2", help="worker: the mesh")
    ap.add_argument("--meshes", default="2,2,2;8,1,1", help="the meshes to compare, ';'-separated")
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    from r1jax.data import corpus
    from r1jax.tokenizers import sentencepiece as tok_lib

    res = {
        "benchmark": "multihost",
        "config": "experiments/r1_zero_countdown.py:tiny, random-init policy",
        "machine": f"{os.cpu_count()} CPUs (shared)",
        "load_average_1min_at_start": os.getloadavg()[0],
    }
    with tempfile.TemporaryDirectory() as tmp:
        tok_lib.train(corpus.texts(7919, 0, 300, corpus.CorpusConfig()), 400).save(
            f"{tmp}/tok.model"
        )
        for mesh in args.meshes.split(";"):
            one, two = _side(1, mesh, args, tmp), _side(2, mesh, args, tmp)
            overhead = two["step_s_median"] - one["step_s_median"]
            res[f"mesh_{mesh.replace(',', 'x')}"] = {
                "one_process_x8": one,
                "two_processes_x4": two,
                "step_overhead_s": overhead,
                "step_overhead_frac": overhead / one["step_s_median"],
                "sample_update_overhead_s": (two["sample_s_median"] + two["update_s_median"])
                - (one["sample_s_median"] + one["update_s_median"]),
                "gather_s_two_processes": two["gather_s_median"],
                "scoring_s_one_vs_two": [
                    one["decode_rewards_s_median"],
                    two["decode_rewards_s_median"],
                ],
            }
    res["load_average_1min_at_end"] = os.getloadavg()[0]
    text = json.dumps(res, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
