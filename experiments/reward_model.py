"""A reward model of one aspect (helpfulness on the summary, or harmlessness on the whole response).

Command (helpfulness; `:aspect=harmlessness` trains the whole-response harmlessness model):
    python -m r1jax.main --config=experiments/reward_model.py --workdir=/tmp/r1jax/rm_helpfulness

Starts from the policy in <workdir>/../base (the toy base model, built when missing; point
`init.checkpoint` at the multi-domain SFT model once it exists) and trains on the pairs in
<workdir>/../preference_data (built from experiments/preference_data.py when missing) with the
Bradley-Terry loss, evaluating held-out pair accuracy against the oracle's noiseless preference.
Measured numbers and the time they took are in the README ("Reward model"). `:tiny` is its own
test (well under a minute).
"""

from r1jax import config_base


def get_config(arg=None):
    a = config_base.parse_arg(arg, tiny=False, seed=0, aspect="helpfulness", steps=400)
    c = config_base.reward_model()
    c.seed = a.seed
    c.rm.aspect = a.aspect
    c.rm.on = "summary" if a.aspect == "helpfulness" else "all"
    pretrain_toy = config_base.sibling(__file__, "pretrain_toy")
    c.init.pretrain = pretrain_toy.get_config("tiny" if a.tiny else None)
    c.data.preference = config_base.sibling(__file__, "preference_data").get_config(
        "tiny" if a.tiny else None
    )
    c.steps = a.steps
    # the reward model reads "Question: ...\nAnswer:" + the response: the R1-Zero template's ~90
    # tokens of boilerplate would be most of every sequence (it renders its own prompt as a reward)
    c.rm.template = "plain"
    c.data.seq_len = 176
    c.optimizer.lr = 3e-4
    c.optimizer.warmup_steps = 20
    c.eval.every_steps = 50
    if a.tiny:
        c.steps = a.steps if a.steps != 400 else 12
        c.data.batch_pairs = 8
        c.data.seq_len = 192
        c.eval.batch_rows = 16
        c.eval.every_steps = 6
        c.optimizer.warmup_steps = 2
        c.checkpoint.every_steps = 6
    return c
