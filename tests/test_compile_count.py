"""No recompilation after the first GRPO step (a compile counter, not a timer).

JAX reports every XLA backend compilation, and every executable it takes from the persistent
compilation cache instead (the test suite shares one, tests/conftest.py), to `jax.monitoring`; a
listener counts both per step of a tiny GRPO run (jitted sampler, host reward, jitted update; and
the fused single program). Step 0 compiles; steps 1.. must compile nothing: new prompts, keys,
rewards and completion lengths all reuse the programs. (The split path's `length_bucket` > 0 compiles one update per bucket by design;
this run keeps the full length.) A scanned model is checked too.
"""

import dataclasses
import threading

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import monitoring

from r1jax.model import ModelConfig, api
from r1jax.parallel import sharding
from r1jax.rewards.registry import Reward
from r1jax.rl import grpo_loss, rollout, sampler_mesh, train_step
from r1jax.rl import step as step_lib
from r1jax.sampling import sample as sampling
from r1jax.train import lm_step

B, G, P, T = 2, 4, 6, 8
CFG = ModelConfig(vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, mlp_dim=48)
COMPILES: list[str] = []
# (function name, thread) of every backend compile, a persistent-cache hit included
PROGRAMS: list[tuple[str, str]] = []
monitoring.register_event_duration_secs_listener(
    lambda name, _secs, **kw: (
        (
            COMPILES.append(name),
            PROGRAMS.append((kw.get("fun_name"), threading.current_thread().name)),
        )
        if name == "/jax/core/compile/backend_compile_duration"
        else None
    )
)
monitoring.register_event_listener(
    lambda name, **_: COMPILES.append(name) if name == "/jax/compilation_cache/cache_hits" else None
)


class Tok:
    def decode(self, ids) -> str:
        return " ".join(str(int(i)) for i in ids)


def _reward(texts, examples):  # range: [0, 1]
    return np.array([len(t) % 7 / 7 for t in texts], np.float32)


def _jax_reward(tokens, mask, targets, vt):  # range: [0, 1]
    return (jnp.sum(mask, axis=1) % 7) / 7.0


def tiny_step(
    cfg: ModelConfig,
    mesh,
    fused: bool,
    prompts: int,
    sampler_shape: tuple | None = None,
    sampler_threads: int = 1,
) -> tuple[step_lib.StepContext, dict]:
    """A tiny GRPO step (G 4, T 8, beta 0.04, host or jittable length reward) and its train
    state on `mesh`; decoded on a sampler mesh of `sampler_shape` when given (shared with
    tests/test_sampler_mesh.py), or in `sampler_threads` threaded parts
    (tests/test_sampler_threads.py)."""
    rules = sharding.DEFAULT_RULES
    graphdef, params, pshard = api.create(cfg, 0, mesh, rules)
    tx = optax.adamw(1e-3)
    state, sshard = lm_step.init_state(graphdef, params, pshard, tx, mesh)
    state = train_step.state_with_ref(state, 0.04)
    sshard = dict(sshard, ref_params=pshard)
    scfg = sampling.SamplingConfig(max_new_tokens=T, eos_id=5)
    ucfg = train_step.UpdateConfig(group_size=G, loss=grpo_loss.LossOptions(beta=0.04))
    reward = Reward("r", _reward, 0.0, 1.0, jax_fn=_jax_reward if fused else None)
    repl = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    batch_sh = lambda nd: sharding.batch_sharding(mesh, rules, nd) if nd else repl  # noqa: E731
    sm = None
    if sampler_shape is not None:
        sm = sampler_mesh.make(sampler_shape, mesh, rules, pshard, prompts)
    with jax.set_mesh(mesh):
        fns = rollout.build(
            graphdef, tx, scfg, ucfg, [reward], None, sshard, batch_sh, fused, sm, sampler_threads
        )
    return step_lib.StepContext(fns, fused, [reward], Tok(), mesh, rules, G), state


def _compiles_per_step(
    cfg: ModelConfig, fused: bool, steps: int = 3, mesh_shape: tuple = (1, 1, 1)
) -> list[int]:
    n_dev = int(np.prod(mesh_shape))
    mesh = sharding.make_mesh(mesh_shape, jax.devices()[:n_dev])
    ctx, state = tiny_step(cfg, mesh, fused, B)
    fns = ctx.fns
    rng = np.random.default_rng(0)
    counts = []
    for step in range(steps):
        before, programs_before = len(COMPILES), len(PROGRAMS)
        ids = rng.integers(6, 64, (B, P)).astype(np.int32)
        valid = np.arange(P)[None, :] >= rng.integers(0, P - 1, (B, 1))  # new padding each step
        prompts = step_lib.Prompts(jnp.asarray(ids), jnp.asarray(valid), [{}] * B)
        res = step_lib.run(ctx, state, prompts, jax.random.key(step))
        state = res.state
        jax.block_until_ready(state["params"])
        assert np.isfinite(res.metrics["loss"])
        counts.append(len(COMPILES) - before)
        if step == 0 and not fused:
            # the update compiled on a thread while the sampler ran, and exactly once: the
            # step's own call found that executable (tests/test_host_memory.py has the rest)
            updates = [p for p in PROGRAMS[programs_before:] if p[0] == "jit(update_fn)"]
            assert updates == [("jit(update_fn)", "r1jax-compile")], PROGRAMS
            assert not fns.update._pending and len(fns.update._seen) == 1
    return counts


@pytest.mark.parametrize(
    "cfg,fused",
    [(CFG, False), (CFG, True), (dataclasses.replace(CFG, scan_layers=True), False)],
    ids=["split", "fused", "split_scanned"],
)
def test_no_compilation_after_the_first_step(cfg, fused):
    counts = _compiles_per_step(cfg, fused)
    assert counts[0] > 0 and counts[1:] == [0, 0], counts


def test_update_compiled_meanwhile_on_a_sharded_mesh():
    """The background compile's abstract batch carries the shardings the real batch will have
    (batch-sharded over data, the model over tensor), so the step's call finds it compiled, as on one device."""
    counts = _compiles_per_step(CFG, False, steps=2, mesh_shape=(2, 1, 2))
    assert counts[0] > 0 and counts[1:] == [0], counts
