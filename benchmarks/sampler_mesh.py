"""The GRPO step with the sampler on a mesh of its own against the one-device step, in one process.

    python benchmarks/sampler_mesh.py [--devices 2] [--rounds 6] [--steps 3]

Model: the peer benchmark's shape (`peer_tiny`: d 256, 4 layers, vocab 512), random weights;
work: 8 prompts of 7 tokens x G 8, 64 new tokens, T 1.0, beta 0.04, the update in 4 micro-batches,
a host reward on the decoded ids (the split step, as in the peer benchmark). Two step contexts in
one process with `--devices` CPU devices (XLA_FLAGS is set here, before jax starts): "one" samples
and trains on device 0; "mesh" trains on device 0 and decodes on a (devices, 1, 1) sampler mesh
(`rl/sampler_mesh.py`; the parameters are copied there every step, inside the timed step).
Rounds alternate the two (`--steps` steps of each per round, after 2 warm-up steps each), so both
see the same machine load; prints one JSON object with medians over all timed steps.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--devices", type=int, default=2)
ap.add_argument("--rounds", type=int, default=6)
ap.add_argument("--steps", type=int, default=3)
args = ap.parse_args()
flag = f"--xla_force_host_platform_device_count={args.devices}"
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flag).strip()
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from r1jax import config_base  # noqa: E402
from r1jax.model import ModelConfig, api  # noqa: E402
from r1jax.parallel import sharding  # noqa: E402
from r1jax.rewards.registry import Reward  # noqa: E402
from r1jax.rl import grpo_loss, rollout, sampler_mesh, train_step  # noqa: E402
from r1jax.rl import step as step_lib  # noqa: E402
from r1jax.sampling import sample as sampling  # noqa: E402
from r1jax.train import lm_step, optim  # noqa: E402

B, G, P, T = 8, 8, 7, 64
RULES = sharding.DEFAULT_RULES


class Tok:
    def decode(self, ids) -> str:
        return " ".join(str(int(i)) for i in ids)


def _reward(texts, examples):  # range: [0, 1]
    return np.array([(len(t) % 11) / 10 for t in texts], np.float32)


def build(sampler_devices: int):
    """(step context, train state) on device 0; the sampler on its own mesh when devices > 1."""
    mesh = sharding.make_mesh((1, 1, 1), jax.devices()[:1])
    cfg = ModelConfig(**config_base.MODEL_PRESETS["peer_tiny"])
    graphdef, params, pshard = api.create(cfg, 0, mesh, RULES)
    ocfg = optim.OptimizerConfig(lr=1e-5, warmup_steps=0, schedule="constant", clip_norm=1.0)
    tx, _ = optim.make(ocfg, 1000)
    state, sshard = lm_step.init_state(graphdef, params, pshard, tx, mesh)
    state = train_step.state_with_ref(state, 0.04)
    sshard = dict(sshard, ref_params=pshard)
    scfg = sampling.SamplingConfig(max_new_tokens=T, temperature=1.0, eos_id=1, pad_id=0)
    loss = grpo_loss.LossOptions(epsilon_low=0.2, epsilon_high=0.2, beta=0.04)
    ucfg = train_step.UpdateConfig(group_size=G, grad_accum=4, loss=loss)
    reward = Reward("r", _reward, 0.0, 1.0)
    repl = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    batch_sh = lambda nd: sharding.batch_sharding(mesh, RULES, nd) if nd else repl  # noqa: E731
    sm = None
    if sampler_devices > 1:
        sm = sampler_mesh.make((sampler_devices, 1, 1), mesh, RULES, pshard, B)
    with jax.set_mesh(mesh):
        fns = rollout.build(graphdef, tx, scfg, ucfg, [reward], None, sshard, batch_sh, False, sm)
    return step_lib.StepContext(fns, False, [reward], Tok(), mesh, RULES, G), state


def main() -> None:
    if len(jax.devices()) < args.devices:
        sys.exit(f"only {len(jax.devices())} devices; XLA_FLAGS was set too late")
    variants = {"one": build(1), "mesh": build(args.devices)}
    states = {k: s for k, (_, s) in variants.items()}
    rng = np.random.default_rng(0)
    times: dict = {k: {"step": [], "sample": []} for k in variants}
    load0 = os.getloadavg()[0]

    def one_step(name: str, i: int, keep: bool) -> None:
        ctx = variants[name][0]
        ids = rng.integers(4, 512, (B, P)).astype(np.int32)
        prompts = step_lib.Prompts(jnp.asarray(ids), jnp.ones((B, P), bool), [{}] * B)
        t0 = time.perf_counter()
        res = step_lib.run(ctx, states[name], prompts, jax.random.key(i))
        jax.block_until_ready(res.state["params"])
        states[name] = res.state
        if keep:
            times[name]["step"].append(time.perf_counter() - t0)
            times[name]["sample"].append(res.times["sample"])

    for name in variants:  # compile + warm
        for i in range(2):
            one_step(name, i, keep=False)
    for r in range(args.rounds):
        for name in variants if r % 2 == 0 else reversed(list(variants)):
            for i in range(args.steps):
                one_step(name, 100 + r * args.steps + i, keep=True)
    med = {k: {p: statistics.median(v) for p, v in d.items()} for k, d in times.items()}
    print(
        json.dumps(
            {
                "devices": args.devices,
                "steps_timed_each": args.rounds * args.steps,
                "loadavg_1min_start_end": [round(load0, 2), round(os.getloadavg()[0], 2)],
                "median_s": med,
                "mesh_over_one_step": med["mesh"]["step"] / med["one"]["step"],
                "mesh_over_one_sample": med["mesh"]["sample"] / med["one"]["sample"],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
