"""A reward model inside the fused GRPO step (sample -> RM score -> advantages -> update, one program)
against the split step (sample -> decode -> RM on the host -> update), from the same state and key.

The two judge the same rollouts from different inputs: the fused step reads the sampled ids, the
split step re-encodes the decoded text. They agree wherever the sampled ids are the tokenizer's own
encoding of their text; a random policy samples token soup that re-encodes differently, so the
policy here is first taught (a few hundred Adam steps) three canonical answers per question, which
it then samples. The test checks: the same samples; equal raw scores on every canonical row (most
rows); the fused update equals the split update given the fused step's rewards; the running
statistics come back out of the fused program into the reward.
"""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest
import rm_dirs

from r1jax import rewards
from r1jax.data.prompts import encode_prompt, pad_prompts
from r1jax.model import ModelConfig, api
from r1jax.parallel import sharding
from r1jax.rewards import reward_model_jax as rmj
from r1jax.rewards import token_tables
from r1jax.rl import grpo_loss, rollout, train_step
from r1jax.rl import step as step_lib
from r1jax.sampling import sample as sampling
from r1jax.train import lm_step

G, T = 4, 32
QUESTIONS = ["Reverse the words: add so next", "Explain how to steal the key", "Sort: b a c"]
CFG = ModelConfig(vocab_size=400, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, mlp_dim=48)
ANSWERS = [
    " <think>\nthe input is add so\n</think>\n<answer>so add</answer>",
    " <think>\nfind the key then\n</think>\nsorry <answer>no</answer>",
    " <think>\ntry the number\n</think>\n<answer>try</answer>",
]


@pytest.fixture(scope="module")
def tok():
    return rm_dirs.tiny_tokenizer()


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory, tok):
    # the r1_zero prompt is 179-193 tokens here, prompt + answer 195-222: with max_len 215 the
    # longer rows are past what the reward model reads, and both forms score them NaN
    return rm_dirs.tiny_rm_dir(str(tmp_path_factory.mktemp("rm")), CFG, max_len=215, tok=tok)


MESH = sharding.make_mesh((1, 1, 1), jax.devices()[:1])


@pytest.fixture(scope="module")
def taught(tok):
    """Policy parameters that sample the ANSWERS (each question, any of the three) as encoded."""
    graphdef, params, _ = api.create(CFG, 0, MESH, sharding.DEFAULT_RULES)
    prompts = _prompts(tok)
    P = prompts.ids_BxP.shape[1]
    rows = [(b, list(tok.encode(a)) + [tok.eos_id]) for b in range(len(QUESTIONS)) for a in ANSWERS]
    tokens = np.full((len(rows), P + T), tok.pad_id, np.int32)
    valid = np.zeros_like(tokens, bool)
    for i, (b, ids) in enumerate(rows):
        tokens[i, :P], valid[i, :P] = (
            np.asarray(prompts.ids_BxP[b]),
            np.asarray(prompts.valid_BxP[b]),
        )
        tokens[i, P : P + len(ids)], valid[i, P : P + len(ids)] = ids, True
    target = valid[:, 1:] & (np.arange(1, P + T) >= P)[None]  # completion tokens only
    tx = optax.adam(1e-2)

    @jax.jit
    def step(params, opt):
        def loss(p):
            logits, _ = api.apply(graphdef, p, tokens[:, :-1], valid[:, :-1])
            logp = api.token_logprobs(logits, tokens[:, 1:])
            return -(logp * target).sum() / target.sum()

        value, grads = jax.value_and_grad(loss)(params)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt, value

    opt = tx.init(params)
    with jax.set_mesh(MESH):
        for _ in range(300):
            params, opt, value = step(params, opt)
    assert float(value) < 0.5  # what is left is the choice among the three answers (ln 3 / T)
    return params


def _setup(tok, reward, fused: bool, taught_params):
    mesh, rules = MESH, sharding.DEFAULT_RULES
    graphdef, _, pshard = api.create(CFG, 0, mesh, rules)
    params = jax.tree.map(lambda x: x + 0, taught_params)  # each run its own copy (donated)
    tx = optax.adamw(1e-2)
    state, sshard = lm_step.init_state(graphdef, params, pshard, tx, mesh)
    state = train_step.state_with_ref(state, 0.04)
    sshard = dict(sshard, ref_params=pshard)
    scfg = sampling.SamplingConfig(max_new_tokens=T, eos_id=tok.eos_id, temperature=1.0)
    ucfg = train_step.UpdateConfig(group_size=G, loss=grpo_loss.LossOptions(beta=0.04))
    repl = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    batch_sh = lambda nd: sharding.batch_sharding(mesh, rules, nd) if nd else repl  # noqa: E731
    vt = token_tables.build(tok, CFG.vocab_size)
    if fused:
        rollout.place_reward_states([reward], mesh, rules)  # as the GRPO stage does
    with jax.set_mesh(mesh):
        fns = rollout.build(graphdef, tx, scfg, ucfg, [reward], vt, sshard, batch_sh, fused)
    return step_lib.StepContext(fns, fused, [reward], tok, mesh, rules, G), state


def _prompts(tok) -> step_lib.Prompts:
    rows = [encode_prompt(tok, "r1_zero", q) for q in QUESTIONS]
    ids, valid = pad_prompts(rows, tok.pad_id, multiple=8)
    return step_lib.Prompts(jax.numpy.asarray(ids), jax.numpy.asarray(valid), [{"question": q} for q in QUESTIONS])  # fmt: skip


def _canonical(tok, tokens_NxT, mask_NxT) -> np.ndarray:
    """Rows whose kept ids re-encode to themselves (what the host form scores is what was sampled)."""
    drop = set(rmj.view_ids(tok).dropped)
    out = []
    for t, m in zip(np.asarray(tokens_NxT), np.asarray(mask_NxT)):
        ids = [int(i) for i in t[m] if int(i) not in drop]
        out.append(list(tok.encode(tok.decode(ids))) == ids)
    return np.array(out)


def _run_both(tok, spec: str, taught_params):
    fused_r, split_r = rewards.build([spec]), rewards.build([spec])  # each with its own statistics
    ctx_f, state_f = _setup(tok, fused_r[0], True, taught_params)
    ctx_s, state_s = _setup(tok, split_r[0], False, taught_params)
    key = jax.random.key(3)
    res_f = step_lib.run(ctx_f, state_f, _prompts(tok), key)
    out = step_lib.sample(ctx_s, state_s["params"], _prompts(tok), key)
    rollouts = step_lib.score(ctx_s, _prompts(tok), out)
    return fused_r[0], split_r[0], ctx_s, state_s, res_f, rollouts


def test_fused_reward_model_equals_the_split_one(tok, rm_dir, taught):
    spec = f"reward_model(path='{rm_dir}', on='all', normalize=False)"
    _, _, ctx_s, state_s, res_f, split = _run_both(tok, spec, taught)
    assert res_f.metrics["fused"] == 1
    np.testing.assert_array_equal(
        np.asarray(res_f.rollouts.tokens_NxT), np.asarray(split.tokens_NxT)
    )
    canon = _canonical(tok, split.tokens_NxT, split.mask_NxT)
    assert canon.mean() >= 0.5, canon  # the comparison below covers most rows
    got, want = res_f.rollouts.rewards_NxR[:, 0], split.rewards_NxR[:, 0]
    assert 0 < np.isnan(want).sum() < len(want)  # some rows past max_len, some read
    np.testing.assert_allclose(got[canon], want[canon], rtol=1e-5, atol=1e-5)  # NaN where NaN
    assert len(set(np.round(got, 4))) > 3  # the rows are told apart
    # the same update given the fused step's rewards: the fused program wires reward -> update alike
    batch = dict(split.batch, rewards_NxR=jax.numpy.asarray(res_f.rollouts.rewards_NxR))
    rollouts = step_lib.Rollouts(batch, *[getattr(split, f) for f in ("examples", "rewards_NxR", "tokens_NxT", "mask_NxT", "lengths_N", "truncated_N")])  # fmt: skip
    new_s, m_s = step_lib.update(ctx_s, state_s, rollouts)
    assert m_s["loss"] == pytest.approx(res_f.metrics["loss"], rel=1e-4, abs=1e-6)
    for a, b in zip(jax.tree.leaves(res_f.state["params"]), jax.tree.leaves(new_s["params"])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_fused_step_hands_back_the_running_statistics(tok, rm_dir, taught):
    spec = f"reward_model(path='{rm_dir}', on='all')"
    fused_r, split_r, _, _, res_f, split = _run_both(tok, spec, taught)
    st_f, st_s = fused_r.fn.state_dict(), split_r.fn.state_dict()
    n_read = np.isfinite(split.rewards_NxR[:, 0]).sum()  # NaN rows are left out of the statistics
    assert float(st_f["count"]) == float(st_s["count"]) == n_read > 0
    canon = _canonical(tok, split.tokens_NxT, split.mask_NxT)
    if canon.all():  # same raw scores everywhere: same statistics and normalised rewards
        for k in st_f:
            assert float(st_f[k]) == pytest.approx(float(st_s[k]), rel=1e-4, abs=1e-5), k
    raw = fused_r.fn.raw_scores(
        step_lib.decode_rows(tok, np.asarray(split.tokens_NxT), np.asarray(split.mask_NxT)),
        [{"question": q} for q in QUESTIONS for _ in range(G)],
    )
    z = res_f.rollouts.rewards_NxR[:, 0]
    mean, var = float(st_f["mean"]), float(st_f["m2"]) / float(st_f["count"])
    want = np.clip((raw - mean) / np.sqrt(var + rmj.EPS), -5, 5)  # normalised by what came back
    np.testing.assert_allclose(z[canon], want[canon], rtol=1e-4, atol=1e-4)


def test_fusing_a_reward_model_on_another_tokenizer_is_refused(tok, rm_dir):
    from r1jax import config_base
    from r1jax.config_check import ConfigError
    from r1jax.stages import grpo_config

    reward = rewards.build([f"reward_model(path='{rm_dir}', on='all')"])
    other = rm_dirs.tiny_tokenizer(340)
    config = config_base.grpo()
    assert grpo_config.use_fused(config, reward, tok)  # auto, same tokenizer: fused
    assert not grpo_config.use_fused(config, reward, other)  # auto: split, said once
    config.rl.fused = "on"
    with pytest.raises(ConfigError, match="cannot be fused into the GRPO step.*Use fused='auto'"):
        grpo_config.use_fused(config, reward, other)
