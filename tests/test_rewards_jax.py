"""Jittable rewards equal their host forms; the fused step equals the split step; dynamic sampling.

Both reward paths are the trainer's own: `rollout.host_rewards` over `decode_rows` text (split step)
and `rollout.jax_rewards` over token ids (fused step), with a toy sentencepiece tokenizer trained
here on corpus documents.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from r1jax import rewards
from r1jax.data import arithmetic, corpus
from r1jax.data import prompts as prompts_lib
from r1jax.model import ModelConfig, api
from r1jax.parallel import distributed, sharding
from r1jax.rewards import token_tables
from r1jax.rl import rollout
from r1jax.rl import step as step_lib
from r1jax.rl.grpo_loss import LossOptions
from r1jax.rl.step import decode_rows
from r1jax.rl.train_step import UpdateConfig
from r1jax.sampling.sample import SampleOutput, SamplingConfig
from r1jax.tokenizers import sentencepiece as tok_lib
from r1jax.train import lm_step

T = 64  # completion slots of the reward comparisons
VOCAB = 336  # model vocabulary: 16 ids beyond the tokenizer's 320, which a policy can still sample
SPECS = ("format", "tag_count", "arithmetic_accuracy", "overlong(max_tokens=64, cache=40)")


@pytest.fixture(scope="module")
def tok():
    return tok_lib.train(corpus.texts(0, 0, 200, corpus.CorpusConfig()), 320)


@pytest.fixture(scope="module")
def scorer(tok):
    """(token rows, truths) -> (host [N, R], jax [N, R]); rows may end in EOS (counted, as sampled)."""
    fns = rewards.build(SPECS)
    vt = token_tables.build(tok, VOCAB)

    @jax.jit
    def jax_scores(tokens, mask, targets):
        z = jnp.zeros(tokens.shape)
        out = SampleOutput(tokens, mask, z, mask.all(1), mask.sum(1))
        return rollout.jax_rewards(fns, out, targets, vt)[0]

    def score(rows, truths):
        n = 256 * -(-len(rows) // 256)  # few distinct shapes: few compilations
        tokens = np.full((n, T), tok.pad_id, np.int32)
        mask = np.zeros((n, T), bool)
        for i, r in enumerate(rows):
            assert len(r) <= T, len(r)
            tokens[i, : len(r)], mask[i, : len(r)] = r, True
        truths = list(truths) + [0] * (n - len(rows))
        examples = [{"answer": str(t), "ground_truth": {"answer": t}} for t in truths]
        texts = decode_rows(tok, tokens, mask)
        host = rollout.host_rewards(fns, texts, examples, mask.sum(1))
        targets = rollout.jax_targets(fns, examples, tok)
        return host[: len(rows)], np.asarray(jax_scores(tokens, mask, targets))[: len(rows)]

    return score


STRUCTURES = (
    "{w0}<think>{th}</think>{w1}<answer>{ans}</answer>{w2}",
    "{w0}<think>{th}</think>{w1}<answer>{ans}</answer>{w2}<answer>{ans}</answer>",
    "{w0}<think>{th}</think><think>{th}</think>{w1}<answer>{ans}</answer>{w2}",
    "{w0}<think>{th}</think>{w1}<answer>{ans}</answer>{w2}so",
    "x{w0}<think>{th}</think>{w1}<answer>{ans}</answer>",
    "{w0}<think>{th}</think>{w1}12{w1}<answer>{ans}</answer>",
    "{w0}<think>{th}{w1}<answer>{ans}</answer>{w2}",
    "{w0}{th}</think>{w1}<answer>{ans}</answer>",
    "{w0}<think>{th}</think>{w1}<answer>{ans}{w2}",
    "{w0}<think>{th}</think>{w1}{ans}</answer>",
    "{w0}<answer>{ans}</answer>{w1}<think>{th}</think>",
    "{w0}<think>{th}<answer>{ans}</answer></think>{w2}",
    "<answer>7<answer>{ans}</answer>{w2}",
    "{w0}<think>{th}</think>{w1}<answer></answer><answer>{ans}</answer>",
    "{th}{w2}{ans}",
)
ANSWERS = ("12", " 12 ", "1 2", "\n12\n", "1\t2", "1\x0b2", "012", "12.0", "+12", "-12", "12a")
ANSWERS += ("", " ", "twelve", "13", "21", "1 3", "<think>12", "12</think>")
THOUGHTS = ("", "so 12", "tam 1556\nso 12", "3 * 4 = 12 OK")
SPACES = ("", " ", "\n", " \n", "\t", "\r\n", "\x0b", "\x0c", "\x1f ", "  ")


def completions(seed: int, n_random: int) -> list[tuple[str, int]]:
    """Every structure x answer (truth 12), random whitespace/reasoning, plus other truths."""
    rng = np.random.default_rng(seed)
    pick = lambda xs: xs[int(rng.integers(len(xs)))]  # noqa: E731
    out = []
    for s, ans in itertools.product(STRUCTURES, ANSWERS):
        out.append((s.format(w0=" ", w1="\n", w2="", th="so 12", ans=ans), 12))
    for _ in range(n_random):
        w0, w1, w2 = pick(SPACES), pick(SPACES), pick(SPACES)
        s = pick(STRUCTURES) if rng.random() < 0.5 else STRUCTURES[0]
        out.append((s.format(w0=w0, w1=w1, w2=w2, th=pick(THOUGHTS), ans=pick(ANSWERS)), 12))
    for t in (0, 7, 105, 99999):
        for ans in (str(t), " ".join(str(t)), "0" + str(t), str(t + 1), str(t)[:-1]):
            out.append((f" <think>\nso {t}\n</think>\n<answer>{ans}</answer>", t))
    return out


def test_jax_rewards_equal_host_rewards_on_texts(tok, scorer):
    cases = completions(0, 300)
    rng = np.random.default_rng(1)
    rows = []
    for text, _ in cases:
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        rows.append(ids + [tok.eos_id] if rng.random() < 0.8 else ids)  # else: truncated
    host, jx = scorer(rows, [t for _, t in cases])
    bad = np.nonzero((host != jx).any(1))[0]
    assert not len(bad), [(i, cases[i][0], host[i].tolist(), jx[i].tolist()) for i in bad[:5]]
    # not vacuous: each reward takes several values on these texts
    assert 40 < host[:, 0].sum() < len(cases) - 40  # strict format
    assert 40 < host[:, 2].sum() < len(cases) - 40  # arithmetic accuracy
    assert len(np.unique(host[:, 1])) == 5 and len(np.unique(host[:, 3])) > 3


def test_jax_rewards_equal_host_rewards_on_token_soup(tok, scorer):
    """What a policy can sample beyond what encode produces: specials (pad, BOS, unk) mid-text,
    byte pieces of ASCII whitespace, ids beyond the tokenizer, random edits of a valid answer."""
    rng = np.random.default_rng(2)
    byte = lambda ch: tok.sp.piece_to_id(f"<0x{ord(ch):02X}>")  # noqa: E731
    extra = [tok.pad_id, tok.bos_id, 1, VOCAB - 1, byte("\x0b"), byte("\x0c"), byte("\x1c")]
    extra += [byte(" "), byte("\n"), byte("\t")] + tok.encode("so 1 2 a\n")
    extra += [tok.tag_id(t) for t in tok_lib.R1_TAGS]
    rows, truths = [], []
    for _ in range(512):
        ids = tok.encode(f" <think>\nso 12\n</think>\n<answer>{rng.choice(['12', '1 2'])}</answer>")
        for _ in range(int(rng.integers(0, 4))):  # insert, delete or replace a token
            i = int(rng.integers(len(ids) + 1))
            op = rng.integers(3)
            if op == 0:
                ids.insert(i, int(rng.choice(extra)))
            elif i < len(ids):
                ids[i : i + 1] = [] if op == 1 else [int(rng.choice(extra))]
        rows.append(ids + [tok.eos_id])
        truths.append(12)
    host, jx = scorer(rows, truths)
    bad = np.nonzero((host != jx).any(1))[0]
    assert not len(bad), [(tok.decode(rows[i]), rows[i], host[i], jx[i]) for i in bad[:5]]
    assert 50 < host[:, 0].sum() < 462 and 50 < host[:, 2].sum() < 462


KNOWN_GAPS = (  # text fragments, each encoded alone; the token form cannot see these as the host does
    ("<answer>1\u00a02</answer>",),  # multi-byte whitespace (2 byte pieces): the host strips it
    (" <think>\nx\n</think>\n<answer>\u00a0</answer>",),  # host: empty answer; token: not empty
    (" <think>\n<", "answer>\n</think>\n<answer>12</answer>"),  # a tag spelled from byte pieces
)


@pytest.mark.parametrize("fragments", KNOWN_GAPS)
@pytest.mark.xfail(strict=True, reason="known gap between the token and host forms (KNOWN_GAPS)")
def test_known_gaps_between_token_and_host_forms(tok, scorer, fragments):
    ids = [i for f in fragments for i in tok.encode(f)]
    host, jx = scorer([ids + [tok.eos_id]], [12])
    np.testing.assert_array_equal(jx, host)


def test_fused_step_equals_split_step(tok, one_device_mesh):
    """Same key, same state: sampling + jittable rewards + update in one program, or sampling, host
    rewards on decoded text, then the update. Format/tag/digit/EOS logits are boosted in a random
    tiny model so that rewards differ within groups and the advantages are not all zero."""
    mesh, rules, g, t = one_device_mesh, sharding.DEFAULT_RULES, 4, 16
    mcfg = ModelConfig(
        vocab_size=VOCAB, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, mlp_dim=48, max_len=128
    )
    graphdef, params, pshard = api.create(mcfg, 0, mesh, rules)
    vt = token_tables.build(tok, VOCAB)
    boost = [tok.eos_id, *vt.tag_ids, *np.nonzero(vt.digit_V >= 0)[0]]
    params = dict(params, lm_head=params["lm_head"].at[:, np.asarray(boost)].multiply(4.0))
    reward_fns = rewards.build(
        ("format", "tag_count", "arithmetic_accuracy", "overlong(max_tokens=16, cache=8)")
    )
    scfg = SamplingConfig(max_new_tokens=t, eos_id=tok.eos_id, pad_id=tok.pad_id)
    ucfg = UpdateConfig(
        group_size=g,
        mu=2,
        reward_weights=tuple(f.weight for f in reward_fns),
        share_prefix=False,  # compiles faster; test_grpo_step checks it against the shared path
        loss=LossOptions(beta=0.04, max_tokens=t),
    )
    tx = optax.sgd(0.5)
    state, sshard = lm_step.init_state(graphdef, params, pshard, tx, mesh)
    rng = np.random.default_rng(0)
    ref = jax.tree.map(lambda x: x + 0.02 * rng.standard_normal(x.shape, np.float32), params)
    state, sshard = dict(state, ref_params=ref), dict(sshard, ref_params=pshard)
    repl = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    batch_sh = lambda nd: sharding.batch_sharding(mesh, rules, nd) if nd else repl  # noqa: E731
    with jax.set_mesh(mesh):
        fns = rollout.build(graphdef, tx, scfg, ucfg, reward_fns, vt, sshard, batch_sh, True)
    examples = list(arithmetic.examples("train", 4))
    ids, valid = prompts_lib.encode_batch(tok, "plain", examples, 16)
    ids, valid = (distributed.global_batch(x, mesh, rules) for x in (ids, valid))
    prompts = step_lib.Prompts(ids, valid, examples)

    def step(fused):
        fresh = jax.tree.map(jnp.copy, state)  # the step donates its state
        ctx = step_lib.StepContext(fns, fused, reward_fns, tok, mesh, rules, g)
        res = step_lib.run(ctx, fresh, prompts, jax.random.key(5))
        return res.state, res.metrics, res.rollouts

    s_f, m_f, out_f = step(True)
    s_s, m_s, out_s = step(False)
    assert (m_f["fused"], m_s["fused"]) == (1, 0)
    np.testing.assert_array_equal(out_f.tokens_NxT, out_s.tokens_NxT)
    np.testing.assert_array_equal(out_f.mask_NxT, out_s.mask_NxT)
    # jittable rewards == host rewards, bit for bit
    np.testing.assert_array_equal(out_f.rewards_NxR, out_s.rewards_NxR)
    assert m_f["frac_reward_zero_std"] < 1.0 and m_f["adv_abs_mean"] > 0.1
    for k in ("loss", "kl", "pg_loss", "reward", "adv_abs_mean", "ratio_mean"):
        assert m_f[k] == pytest.approx(m_s[k], rel=1e-5, abs=1e-7), k
    for new_f, new_s, old in zip(*(jax.tree.leaves(x["params"]) for x in (s_f, s_s, state))):
        d_f, d_s = np.asarray(new_f - old), np.asarray(new_s - old)
        np.testing.assert_allclose(d_f, d_s, rtol=0, atol=1e-5 * np.abs(d_s).max())
