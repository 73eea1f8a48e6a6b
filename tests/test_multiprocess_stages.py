"""The stages on 2 processes x 4 CPU devices give the 1 process x 8 devices result (issue 13).

Every run is started as a user would start it (`python -m r1jax.main`, or the local launcher
`python -m r1jax.launch --processes=2 --devices_per_process=4 -- ...`), all on the mesh
(data 2, fsdp 2, tensor 2), so the batch is split across the processes and the parameters inside
each. The module fixture runs, two at a time:
  pretrain (4 steps) on 1 and on 2 processes; the 1-process output is the base of what follows;
  GRPO (tests/mp_config.py: prompts of very different lengths, rewards that vary inside groups,
  dynamic sampling, the quick and the final evaluation, 3 steps, checkpoints at 2 and 3) on 1 and
  on 2 processes;
  the eval stage on 1 and on 2 processes; and each GRPO run's checkpoint of step 2 resumed on the
  OTHER process count (2 -> 1 and 1 -> 2) for its last step and final evaluation.
Every metric of every step (relative 1e-5), the logged completions, the final evaluation and the
eval stage's report must agree, and no process may compile an involuntary full rematerialization.
"""

from __future__ import annotations

import shutil

import jax
import mp_runs
import numpy as np
import pytest

from r1jax.parallel import sharding

pytestmark = pytest.mark.slow
GRPO = "tests/mp_config.py"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("mp")
    cache, q = str(d / "xla_cache"), str(d / "q.jsonl")
    mp_runs.write_questions(q)
    out: dict = {"dir": str(d), "q": q}

    def pair(name: str, make_args, two_first: bool = False) -> None:
        order = (2, 1) if two_first else (1, 2)
        started = {
            n: mp_runs.start(n, make_args(n), str(d / f"{name}{n}.log"), cache) for n in order
        }
        for n in order:
            out[f"{name}{n}"] = mp_runs.check_ok(mp_runs.finish(started[n]), f"{name} on {n}")

    pretrain = "experiments/pretrain_toy.py:tiny,steps=4"
    pair("pretrain", lambda n: [f"--config={pretrain}", f"--workdir={d}/pretrain{n}", "--config.mesh.shape=(2,2,2)"])  # fmt: skip
    grpo = [f"--config={GRPO}:data={q},tfds={d}/tfds", f"--config.init.checkpoint={d}/pretrain1"]
    pair("grpo", lambda n: [*grpo, f"--workdir={d}/grpo{n}"])
    evaluation = ["--config=experiments/eval.py:tiny", f"--config.checkpoint={d}/grpo1"]
    evaluation += ["--config.num_problems=6", "--config.mesh.shape=(2,2,2)"]
    for n in (1, 2):  # the other count continues from this run's checkpoint of step 2
        shutil.copytree(d / f"grpo{n}", d / f"resume{3 - n}")
        shutil.rmtree(d / f"resume{3 - n}" / "checkpoints" / "3")
        for name in ("final_eval.json", "final_eval.md"):  # the resumed run must write its own
            (d / f"resume{3 - n}" / name).unlink()
    pair("eval", lambda n: [*evaluation, f"--workdir={d}/eval{n}"])
    pair("resume", lambda n: [*grpo, f"--workdir={d}/resume{n}"], two_first=True)
    return out


def test_pretrain_matches_one_process(runs):
    d = runs["dir"]
    one, two = (mp_runs.metrics(f"{d}/pretrain{n}") for n in (1, 2))
    assert [r["step"] for r in one] == [0, 1, 2, 3]
    mp_runs.assert_same(two, one, "pretrain metrics")
    assert "process 1 of 2, 4 of 8 devices" in runs["pretrain2"]


def test_grpo_matches_one_process(runs):
    d = runs["dir"]
    one, two = (mp_runs.metrics(f"{d}/grpo{n}") for n in (1, 2))
    assert [r["step"] for r in one] == [0, 1, 2]
    assert "eval_pass@1" in one[0] and "eval_pass@1" in one[1]  # quick eval before and after step 1
    # the rewards vary inside groups, and the updates move the policy
    assert min(r["frac_reward_zero_std"] for r in one) < 1.0
    assert one[2]["kl"] > 0.0
    mp_runs.assert_same(two, one, "GRPO metrics")
    mp_runs.assert_same(mp_runs.metrics(f"{d}/grpo2", "samples.jsonl"), mp_runs.metrics(f"{d}/grpo1", "samples.jsonl"), "logged completions")  # fmt: skip
    final = [mp_runs.read_json(f"{d}/grpo{n}/final_eval.json") for n in (1, 2)]
    assert final[0]["summary"]["problems"] >= 8
    mp_runs.assert_same(final[1], final[0], "final evaluation")


def test_prompts_of_different_lengths_per_process(runs):
    """The premise, checked: in some step one process's rows pad to a much wider bucket than the
    other's. Padded per process, the two processes would build different global shapes."""
    from r1jax.data import prompts as prompts_lib
    from r1jax.data import tasks
    from r1jax.tokenizers import sentencepiece as tok_lib

    d = runs["dir"]
    tok = tok_lib.SentencePieceTokenizer.load(f"{d}/pretrain1/tokenizer.model")
    train = tasks.load("jsonl", "train", f"{d}/tfds", path=runs["q"], answer_format="raw", test_fraction=0.25)  # fmt: skip
    stream = prompts_lib.PromptStream(train, 0)
    widths = []
    for position in range(0, 12, 4):  # the first 3 batches: every run samples them (>= 1 per step)
        batch = stream.take(position, 4)
        halves = (batch[:2], batch[2:])
        widths.append([prompts_lib.encode_batch(tok, "r1_zero", h, 16)[0].shape[1] for h in halves])
    assert any(abs(a - b) >= 32 for a, b in widths), widths
    one = mp_runs.metrics(f"{d}/grpo1")
    assert sum(r["dynamic_rounds"] for r in one) >= 3


def test_eval_stage_matches_one_process(runs):
    d = runs["dir"]
    one, two = (mp_runs.read_json(f"{d}/eval{n}/eval_countdown.json") for n in (1, 2))
    assert one["summary"]["problems"] == 6
    mp_runs.assert_same(two, one, "eval stage report")


@pytest.mark.parametrize("saved,resumed", [(2, 1), (1, 2)])
def test_checkpoint_resumes_on_the_other_process_count(runs, saved, resumed):
    """Saved on `saved` processes, restored on `resumed` at step 2: the same last step, final
    evaluation and data position as the uninterrupted runs."""
    d = runs["dir"]
    assert "resuming from checkpoint step 2" in runs[f"resume{resumed}"]
    got, want = mp_runs.metrics(f"{d}/resume{resumed}"), mp_runs.metrics(f"{d}/grpo{resumed}")
    mp_runs.assert_same(got, want, f"metrics saved on {saved}, resumed on {resumed}")
    final = [mp_runs.read_json(f"{d}/{w}/final_eval.json") for w in (f"resume{resumed}", f"grpo{saved}")]  # fmt: skip
    mp_runs.assert_same(final[0], final[1], "final evaluation after the resume")
    from r1jax.train import checkpoint as ckpt_lib

    step, meta = ckpt_lib.read_meta(f"{d}/resume{resumed}/checkpoints")
    _, want_meta = ckpt_lib.read_meta(f"{d}/grpo{resumed}/checkpoints")
    rounds = sum(r["dynamic_rounds"] for r in want)
    assert (step, meta["data_position"]) == (3, want_meta["data_position"]) == (3, 4 * rounds)


@pytest.mark.parametrize("shape", [(8, 1, 1), (1, 4, 2)])
def test_two_process_checkpoint_restores_onto_other_meshes(runs, shape):
    """The params the 2-process run saved load onto one process and another mesh, equal to the
    1-process run's."""
    from r1jax.stages import init_model
    from r1jax.train import checkpoint as ckpt_lib

    d = runs["dir"]
    mesh = sharding.make_mesh(shape)
    mcfg = init_model.read_model_config(f"{d}/grpo2")
    _, target, _ = init_model.abstract_params(mcfg, mesh, sharding.DEFAULT_RULES)
    two, one = (ckpt_lib.load_item(f"{d}/grpo{n}/checkpoints", "params", target) for n in (2, 1))
    assert jax.tree.leaves(two)[0].sharding.mesh.shape == mesh.shape
    for a, b in zip(jax.tree.leaves(two), jax.tree.leaves(one)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_no_process_compiled_an_involuntary_rematerialization(runs):
    logs = {k: v for k, v in runs.items() if k not in ("dir", "q")}
    assert len(logs) == 8
    bad = {k: v.count(mp_runs.REMAT) for k, v in logs.items() if mp_runs.REMAT in v}
    assert not bad, bad
