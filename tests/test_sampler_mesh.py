"""The sampler on a mesh of its own gives the rollouts and the update of the one-mesh step.

Two GRPO steps (split path, host reward) with the policy trained on one CPU device and decoded on
2 (data) and on 2 x 2 (data x tensor) devices of the 8 simulated ones, against the same steps
decoded on the training device: the same tokens, log-probs within float32 rounding (the rows are
split across devices, the per-row arithmetic is not), the same loss, and the rollouts handed to
the update batch-sharded on the training mesh. Bad sampler-mesh arithmetic is one line. And the
tiny Countdown experiment decoded on 2 devices (`rl.sampler_mesh`) logs the one-device run's numbers.
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_compile_count import CFG, tiny_step
from test_grpo_step import _run_experiment

from r1jax.config_check import ConfigError
from r1jax.parallel import sharding
from r1jax.rl import sampler_mesh
from r1jax.rl import step as step_lib
from r1jax.sampling.threads import ThreadedSampler

B, P = 4, 6  # 4 prompts split over 2 sampler devices (the model, G and T: test_compile_count)
RULES = sharding.DEFAULT_RULES


def run_steps(sampler_shape: tuple | None, steps: int = 2, threads: int = 1) -> list:
    """(tokens, old log-probs, loss) of `steps` tiny split GRPO steps on one training device,
    decoded on a sampler mesh of `sampler_shape`, or in `threads` threaded parts (shared with
    tests/test_sampler_threads.py)."""
    mesh = sharding.make_mesh((1, 1, 1), jax.devices()[:1])
    ctx, state = tiny_step(CFG, mesh, False, B, sampler_shape, threads)
    assert isinstance(ctx.fns.sample, ThreadedSampler) == (threads > 1)
    sm = ctx.fns.sampler_mesh
    if sampler_shape is not None:
        assert sm.mesh.size == np.prod(sampler_shape) and sm.out.mesh == sm.mesh
    rng = np.random.default_rng(0)
    results = []
    for step in range(steps):
        ids = rng.integers(6, 64, (B, P)).astype(np.int32)
        valid = np.arange(P)[None, :] >= rng.integers(0, P - 1, (B, 1))
        prompts = step_lib.Prompts(jnp.asarray(ids), jnp.asarray(valid), [{}] * B)
        res = step_lib.run(ctx, state, prompts, jax.random.key(step))
        state = res.state
        assert res.rollouts.tokens_NxT.sharding.mesh == mesh  # back on the training mesh
        results.append(
            (
                np.asarray(res.rollouts.tokens_NxT),
                np.asarray(res.rollouts.batch["old_logp_NxT"]),
                res.metrics["loss"],
            )
        )
    return results


@pytest.fixture(scope="module")
def one_mesh():
    return run_steps(None)


@pytest.mark.parametrize("shape", [(2, 1, 1), (2, 1, 2)], ids=["data2", "data2_tensor2"])
def test_sampler_mesh_gives_the_one_mesh_rollouts_and_update(one_mesh, shape):
    for (tok_a, logp_a, loss_a), (tok_b, logp_b, loss_b) in zip(one_mesh, run_steps(shape)):
        np.testing.assert_array_equal(tok_b, tok_a)
        np.testing.assert_allclose(logp_b, logp_a, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(loss_b, loss_a, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "shape,prompts,match",
    [
        ((16, 1, 1), 4, "needs 16 devices"),
        ((8, 1, 1), 4, "do not split"),
        ((3, -1, -1), 4, "at most one entry may be -1"),
    ],
)
def test_bad_sampler_mesh_is_one_line(shape, prompts, match):
    mesh = sharding.make_mesh((1, 1, 1), jax.devices()[:1])
    with pytest.raises(ConfigError, match=match) as e:
        sampler_mesh.make(shape, mesh, RULES, {}, prompts)
    assert "\n" not in str(e.value)


@pytest.mark.slow
@pytest.mark.parametrize("placement", ["sampler_mesh", "sampler_threads"])
def test_countdown_decoded_on_a_sampler_mesh_matches_one_device(tmp_path_factory, placement):
    """The tiny Countdown run trained on one CPU device and decoded on 2 (`rl.sampler_mesh`, as
    the README suggests for a CPU host), or in 2 threaded parts on its one device
    (`rl.sampler_threads`), logs what the one-device run logs: the same tokens make the same
    rewards and lengths, and the loss agrees to float32 rounding."""
    root = tmp_path_factory.getbasetemp() / "r1_zero_runs"
    one = str(root / "r1_zero_countdown")
    if not os.path.exists(os.path.join(one, "metrics.jsonl")):
        _run_experiment("experiments/r1_zero_countdown.py:tiny", one)
    two = str(root / f"r1_zero_countdown_{placement}")
    if placement == "sampler_mesh":
        flags = ("--config.mesh.shape=(1,1,1)", "--config.rl.sampler_mesh=(2,1,1)")
        _run_experiment("experiments/r1_zero_countdown.py:tiny", two, *flags, devices=2)
    else:
        _run_experiment(
            "experiments/r1_zero_countdown.py:tiny", two, "--config.rl.sampler_threads=2"
        )
    rows = {}
    for name, w in (("one", one), ("two", two)):
        with open(os.path.join(w, "metrics.jsonl")) as f:
            rows[name] = [json.loads(line) for line in f]
    assert len(rows["one"]) == len(rows["two"]) == 3
    for a, b in zip(rows["one"], rows["two"]):
        for k in ("reward", "accuracy", "format", "completion_length"):
            if k in a:
                assert b[k] == a[k], (k, a[k], b[k])
        np.testing.assert_allclose(b["loss"], a["loss"], rtol=1e-4, atol=1e-6)
