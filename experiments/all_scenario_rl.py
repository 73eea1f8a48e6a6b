"""All-scenario RL (R1 section 2.3.4): reasoning prompts with rule rewards, general and harm-inviting
prompts judged by reward models (helpfulness on the summary, harmlessness on the whole response),
the reward models trained further with replay as the policy moves (DeepSeekMath's iterative RL).

Command (builds what is missing first: the toy base model in <workdir>/../base, the preference
data in ../preference_data and the two reward models in ../rm_helpfulness and ../rm_harmlessness):
    python -m r1jax.main --config=experiments/all_scenario_rl.py --workdir=/tmp/r1jax/all_scenario

Start from the best model there is: `--config.init.checkpoint=/tmp/r1jax/multi_domain_sft` (the
multi-domain SFT stage) once it exists; by default the toy base model (as R1-Zero). `:replay=False`
keeps the reward models frozen (the run to compare with: the RM-oracle gap, eval_rm_agreement_* and
eval_rm_score_* beside eval_oracle_score_*, shows what replay buys). Groups are drawn half from
Countdown (countdown_accuracy + format), 30 % from the general task's five benign kinds and 20 % from
its harm-inviting prompts (both: reward_model on='summary' + reward_model on='all'; general_match
rides along with weight 0 as their accuracy). Measured for 60 steps with and without replay, 3 seeds
(README, "All-scenario RL"; the figure: `python -m r1jax.eval.replay_report`).
`:tiny` is its own test.
"""

from r1jax import config_base
from r1jax.data import harm_prompts
from r1jax.data.general_task import KINDS


def get_config(arg=None):
    a = config_base.parse_arg(arg, tiny=False, seed=0, steps=60, replay=True)
    tiny = "tiny" if a.tiny else None
    c = config_base.sibling(__file__, "r1_zero_countdown").get_config(
        f"tiny,seed={a.seed}" if a.tiny else f"seed={a.seed}"
    )
    prefs = config_base.sibling(__file__, "preference_data").get_config(tiny)
    rm = config_base.sibling(__file__, "reward_model")
    general = prefs.task.options.to_dict()  # the preference data's prompts (held-out split too)
    # harm-only splits: at most the 288 distinct harm questions (the tiny sizes are smaller already)
    harm_sizes = {} if a.tiny else harm_prompts.HARM_ONLY_SIZES
    c.task.mixture = (
        dict(source="reasoning", name="countdown", options=c.task.options.to_dict(), weight=0.5),
        dict(source="general", name="general", options=dict(general, kinds=KINDS), weight=0.3),
        dict(
            source="harm",
            name="general",
            options=dict(general, kinds=("harm",), **harm_sizes),
            weight=0.2,
        ),  # fmt: skip
    )
    c.rewards = ("countdown_accuracy", "format(weight=0.5)")
    judged = (
        "reward_model(path='rm_helpfulness', on='summary')",
        "reward_model(path='rm_harmlessness', on='all')",
        "general_match(weight=0)",
    )
    c.rewards_by_source = {"general": judged, "harm": judged}
    c.reward_models = {
        "rm_helpfulness": rm.get_config("tiny" if a.tiny else None),
        "rm_harmlessness": rm.get_config(
            "tiny,aspect=harmlessness" if a.tiny else "aspect=harmlessness"
        ),
    }
    c.replay.enabled = a.replay
    c.replay.sources = ("general", "harm")
    c.replay.seq_len = rm.get_config(tiny).data.seq_len
    c.rm_eval.sources = ("general", "harm")
    c.rm_eval.num_problems = 32  # per source
    c.steps = a.steps
    c.plot_keys = tuple(c.plot_keys) + (
        "reasoning_reward",
        "general_reward",
        "eval_rm_score_helpfulness",
        "eval_oracle_score_helpfulness",
        "eval_rm_agreement_helpfulness",
        "eval_rm_score_harmlessness",
        "eval_oracle_score_harmlessness",
        "eval_rm_agreement_harmlessness",
    )
    if a.tiny:
        c.steps = a.steps if a.steps != 60 else 4
        c.replay.every_steps = 2
        c.replay.rm_steps = 1
        c.rm_eval.num_problems = 2
        c.eval.final = False
    return c
