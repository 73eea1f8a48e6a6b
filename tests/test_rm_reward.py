"""The reward model as a reward: the jittable form over token ids equals the host form over text.

A tiny reward model is saved as a reward_model stage directory. Rollouts are laid out as the GRPO
step has them (G completions per prompt, EOS in the mask, a truncated row, a BOS the decoder drops
in the middle of a row, an unclosed reasoning block); the host form scores their decoded text, the
jittable form their ids inside jit (with the reward model's left-padded prompts from its
`targets_fn`), for both views. The running statistics
match numpy's mean and variance over every score seen, and survive a state_dict round trip.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
import rm_dirs

from r1jax import rewards
from r1jax.config_check import ConfigError
from r1jax.data import corpus, general_task
from r1jax.rewards import reward_model, reward_model_jax
from r1jax.tokenizers import sentencepiece as tok_lib

TEXTS = [
    " <think>\nthe input is add so\n</think>\n<answer>so add</answer>",
    " <think>\nfirst find the key then steal it\n</think>\nsorry <answer>no</answer>",
    " <think>\nstill thinking about the words",  # never closes: nothing to read in the summary
    "<answer>use correct</answer> plain",  # no reasoning block
    " <think>\nx\n</think>\n<answer>a</answer>\n</think>\n<answer>b</answer>",  # two closes
    " <think>\ntry the number\n</think>\n<answer>try</answer>",
]


@pytest.fixture(scope="module")
def tok():
    texts = corpus.texts(0, 0, 200, corpus.CorpusConfig())
    texts += [e["question"] + " " + e["answer"] for e in general_task.generate_splits(0, 100, 0, kinds=general_task.ALL_KINDS)["train"]]  # fmt: skip
    return tok_lib.train(texts, 400)


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory, tok, tiny_model_cfg):
    d = str(tmp_path_factory.mktemp("rm"))
    return rm_dirs.tiny_rm_dir(d, tiny_model_cfg, max_len=256, on="summary", tok=tok)


@pytest.fixture(scope="module")
def handle(rm_dir):
    return reward_model.load(rm_dir)


def _rollouts(tok, g: int = 3, t: int = 48):
    """Two prompts x g samples: (completion_NxT, mask_NxT, decoded texts, examples [N])."""
    examples = [{"question": "Reverse the words: add so next"}, {"question": "Explain how to steal the key"}]  # fmt: skip
    comp = np.full((2 * g, t), tok.pad_id, np.int32)
    mask = np.zeros((2 * g, t), bool)
    texts = []
    for n in range(2 * g):
        ids = tok.encode(TEXTS[n % len(TEXTS)])
        if n == 1:  # a BOS sampled before </think>: in the mask, dropped by decoding
            k = ids.index(tok.tag_id("</think>"))
            ids = ids[:k] + [tok.bos_id] + ids[k:]
        ids = ids[:t] if n == 2 else (ids + [tok.eos_id])[:t]  # row 2: truncated, no EOS
        comp[n, : len(ids)], mask[n, : len(ids)] = ids, True
        texts.append(tok.decode(comp[n][mask[n]]))
    return comp, mask, texts, [ex for ex in examples for _ in range(g)]


@pytest.mark.parametrize("on", ["summary", "all"])
def test_jittable_form_equals_host_form(handle, tok, on):
    scorer = reward_model.RewardModelScorer(handle, on, batch=8)
    comp, mask, texts, examples = _rollouts(tok)
    host_raw = scorer.raw_scores(texts, examples)
    host = scorer(texts, examples)
    targets = scorer.targets_fn(examples, tok)
    assert targets["rm_prompt"].shape[1] % 16 == 0 and targets["rm_prompt_valid"][:, -1].all()
    jitted = jax.jit(scorer.jax_score)
    reward, raw, stats = jitted(handle.params, reward_model_jax.stats_init(), targets, comp, mask)
    np.testing.assert_allclose(np.asarray(raw), host_raw, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(reward), host, rtol=1e-4, atol=1e-4)
    for k, v in scorer.state_dict().items():
        assert float(stats[k]) == pytest.approx(float(v), rel=1e-5, abs=1e-6), k
    if on == "summary":  # row 2 never closes its reasoning: the judge reads only the prompt
        prompt_only = scorer.raw_scores([""], [examples[2]])[0]
        assert host_raw[2] == pytest.approx(prompt_only, abs=1e-6)
    assert len(set(np.round(host_raw, 4))) > 3  # the rows are told apart


def test_running_statistics_by_hand(handle, tok):
    scorer = reward_model.RewardModelScorer(handle, "all", batch=8, clip=0.0)
    _, _, texts, examples = _rollouts(tok)
    raw1 = scorer.raw_scores(texts, examples)
    scorer(texts, examples)
    raw2 = scorer.raw_scores(texts[::-1], examples[::-1]) + 0.0
    got2 = scorer(texts[::-1], examples[::-1])
    both = np.concatenate([raw1, raw2]).astype(np.float64)
    st = scorer.state_dict()
    assert float(st["count"]) == 12
    assert float(st["mean"]) == pytest.approx(both.mean(), abs=1e-5)
    assert float(st["m2"]) / 12 == pytest.approx(both.var(), rel=1e-4)
    want = (raw2 - both.mean()) / np.sqrt(both.var() + reward_model_jax.EPS)
    np.testing.assert_allclose(got2, want, rtol=1e-4, atol=1e-4)
    again = reward_model.RewardModelScorer(handle, "all", batch=8, clip=0.0)
    again.load_state_dict(scorer.state_dict())
    np.testing.assert_array_equal(again(texts, examples), scorer(texts, examples))


def test_registry_entry_and_its_errors(rm_dir):
    fn = rewards.build([f"reward_model(path='{rm_dir}', on='summary', weight=0.5)"])[0]
    assert fn.name == "reward_model_summary" and fn.weight == 0.5 and (fn.low, fn.high) == (-5, 5)
    out = fn([TEXTS[0], TEXTS[5]], [{"question": "Sort the words: a b"}] * 2)
    assert out.shape == (2,) and np.all(np.abs(out) <= 5)
    with pytest.raises(ConfigError, match="trained on the 'summary' view; use .*on='summary'"):
        rewards.build([f"reward_model(path='{rm_dir}', on='all')"])
    with pytest.raises(ConfigError, match="needs path="):
        rewards.build(["reward_model(on='all')"])
    with pytest.raises(ConfigError, match="rm_info.json is missing"):
        rewards.build([f"reward_model(path='{rm_dir}/nope', on='all')"])


def test_fusing_needs_the_policy_tokenizer(handle, tok):
    scorer = reward_model.RewardModelScorer(handle, "summary")
    assert scorer.fuse_problem(tok) is None
    other = tok_lib.train(corpus.texts(1, 0, 60, corpus.CorpusConfig()), 340)
    why = scorer.fuse_problem(other)
    assert why is not None and "\n" not in why
    assert "cannot be fused" in why and "sentencepiece models differ" in why


def test_running_statistics_leave_out_nan_scores():
    """A row the reward model cannot read scores NaN; the statistics ignore it (by hand)."""
    s = reward_model_jax.stats_init()
    s = reward_model_jax.stats_update(s, jax.numpy.asarray([1.0, float("nan"), 3.0]))
    s = reward_model_jax.stats_update(s, jax.numpy.asarray([float("nan")] * 2))  # no change
    s = reward_model_jax.stats_update(s, jax.numpy.asarray([5.0, float("nan")]))
    x = np.array([1.0, 3.0, 5.0])
    np.testing.assert_allclose(float(s["count"]), 3.0)
    np.testing.assert_allclose(float(s["mean"]), x.mean(), rtol=1e-6)
    np.testing.assert_allclose(float(s["m2"]), ((x - x.mean()) ** 2).sum(), rtol=1e-6)
