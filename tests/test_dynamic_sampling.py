"""DAPO dynamic sampling: groups without reward variance are dropped and refilled from fresh prompts.

A planned sampler (each prompt's G completions are right, wrong or mixed by plan) stands in for the
model, so the test checks exactly which groups are kept, how the batch is assembled (left padding to
the widest round, rows aligned with groups) and what is counted when the rounds run out.
"""

import jax
import numpy as np
import pytest

from r1jax import rewards
from r1jax.data import arithmetic, corpus
from r1jax.data import prompts as prompts_lib
from r1jax.parallel import distributed, sharding
from r1jax.rl import rollout
from r1jax.rl import step as step_lib
from r1jax.rl.dynamic import DynamicConfig, DynamicSampler
from r1jax.sampling.sample import SampleOutput
from r1jax.text import templates
from r1jax.tokenizers import sentencepiece as tok_lib


@pytest.fixture(scope="module")
def tok():
    return tok_lib.train(corpus.texts(0, 0, 200, corpus.CorpusConfig()), 320)


def _planned(tok, examples, plan, g=4, t=32):
    """A stub sampler: each prompt's G completions follow the plan for its example (right = the true
    answer, wrong = off by one, mixed = right, wrong, wrong, right), as a SampleOutput."""
    by_prompt = {templates.render("plain", ex["question"]): ex for ex in examples}

    def sample(params, ids, valid, key):
        del params, key
        rows = []
        for p, v in zip(np.asarray(ids), np.asarray(valid)):
            ex = by_prompt[tok.decode(p[v])]
            a = int(ex["answer"])
            right, wrong = (f" <think>\nso {x}\n</think>\n<answer>{x}</answer>" for x in (a, a + 1))
            kind = plan[ex["id"]]
            texts = {"right": [right] * g, "wrong": [wrong] * g}.get(
                kind, [right, wrong, wrong, right]
            )
            rows += [tok.encode(x) + [tok.eos_id] for x in texts]
        tokens = np.full((len(rows), t), tok.pad_id, np.int32)
        lengths = np.array([len(r) for r in rows], np.int32)
        for i, r in enumerate(rows):
            tokens[i, : len(r)] = r
        mask = np.arange(t)[None, :] < lengths[:, None]
        z = np.zeros((len(rows), t), np.float32)
        return SampleOutput(tokens, mask, z, np.zeros(len(rows), bool), lengths)

    return rollout.StepFns(sample=sample, update=None, fused=None)  # only the sampler is used


def test_dynamic_sampling_drops_and_refills_zero_variance_groups(tok, one_device_mesh):
    examples = list(arithmetic.examples("train", 12, digits=(1, 3)))
    stream = prompts_lib.PromptStream(examples, seed=0)
    order = stream.take(0, 12)
    kinds = ["mixed", "right", "mixed", "wrong", "wrong", "mixed", "right", "mixed"]
    kinds += ["right", "wrong", "mixed", "mixed"]
    plan = {ex["id"]: k for ex, k in zip(order, kinds)}
    reward_fns = rewards.build(("arithmetic_accuracy", "format(weight=0.5)"))
    mesh, rules = one_device_mesh, sharding.DEFAULT_RULES
    ctx = step_lib.StepContext(
        _planned(tok, examples, plan), False, reward_fns, tok, mesh, rules, 4
    )

    def encode(exs):  # prompt_bucket 1: the widths differ by round
        ids, valid = prompts_lib.encode_batch(tok, "plain", exs, 1)
        put = lambda x: distributed.global_batch(x, mesh, rules)  # noqa: E731
        return step_lib.Prompts(put(ids), put(valid), exs)

    def collect(position, rounds):
        ds = DynamicSampler(DynamicConfig(4, rounds), ctx, stream, encode)
        out, info, position = ds.collect(None, position, jax.random.key(0))
        return out.batch, out.examples, out.rewards_NxR, info, position

    # two rounds: the mixed groups of each are kept, the others dropped
    batch, chosen, r, info, position = collect(0, 3)
    assert [ex["id"] for ex in chosen] == [order[i]["id"] for i in (0, 2, 5, 7)]
    assert info == {
        "dynamic_rounds": 2,
        "dynamic_groups_with_signal_frac": 0.5,
        "dynamic_filled_zero_std": 0,
    }
    assert position == 8
    np.testing.assert_array_equal(r, np.tile([[1, 1], [0, 1], [0, 1], [1, 1]], (4, 1)))
    np.testing.assert_array_equal(np.asarray(batch["rewards_NxR"]), r)
    prompt, valid = np.asarray(batch["prompt"]), np.asarray(batch["prompt_valid"])
    for i, ex in enumerate(chosen):  # left padded to the widest round, rows aligned with groups
        want = prompts_lib.encode_prompt(tok, "plain", ex["question"])
        assert list(prompt[i][valid[i]]) == want and valid[i][-1]
        comp = np.asarray(batch["completion"])[i * 4]
        assert (
            tok.decode(comp)
            == f" <think>\nso {ex['answer']}\n</think>\n<answer>{ex['answer']}</answer>"
        )
    # out of rounds (one round only): the batch is completed with zero-variance groups, counted
    _, chosen, _, info, _ = collect(8, 0)
    assert [ex["id"] for ex in chosen] == [order[i]["id"] for i in (10, 11, 8, 9)]
    assert info["dynamic_rounds"] == 1 and info["dynamic_filled_zero_std"] == 2
    assert info["dynamic_groups_with_signal_frac"] == 0.5
