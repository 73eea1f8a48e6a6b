"""The whole R1 recipe from one config (R1 paper, sections 2.2-2.4), each stage in <workdir>/<name>.

    python -m r1jax.main --config=experiments/r1_pipeline.py --workdir=/tmp/r1jax/pipeline  # 1 hour
    python -m r1jax.main --config=experiments/r1_pipeline.py:full --workdir=/tmp/r1jax/pipe_full
    python -m r1jax.main --config=experiments/r1_pipeline.py:quick --workdir=/tmp/r1jax/quick  # minutes
    python -m r1jax.main --config=experiments/r1_pipeline.py:tiny --workdir=/tmp/r1p_tiny  # CI size
    python -m r1jax.main --config=experiments/r1_pipeline.py:seed=1 --workdir=/tmp/r1jax/p1 \
        --config.reuse_from=/tmp/r1jax/pipeline --config.reuse="('base',)"  # shared base model

Stages (each is the experiment file of the same name with its own defaults; any key can be
overridden, e.g. `--config.stages.reasoning_rl.rl.beta=0.0`; `--config.only=report`,
`--config.until=reasoning_rl` run a subset):

    base               toy tokenizer + base model (pretrain_toy.py:general=0.3: the corpus
                       also answers the general tasks)
    r1_zero            R1-Zero GRPO on Countdown from the base (accuracy + format)
    cold_start_data    a few thousand readable long-CoT examples: R1-Zero's correct samples
                       rewritten in the readable pattern + hand-designed traces
    cold_start_sft     SFT of the base on them
    reasoning_rl       GRPO from the cold-start model: accuracy + readable format + language
                       consistency
    rejection_sampling the RL model's correct, readable, unmixed samples + the cold start's
                       designed give-up searches + general data at 3:1 (all six kinds,
                       harm-inviting prompts included)
    multi_domain_sft   SFT of the base on them (2 epochs)
    preference_data    the multi-domain model's own samples on general and harm-inviting prompts
                       (:tiny: perturbed references), labelled by the toy oracle with rater noise
    rm_helpfulness, rm_harmlessness   reward models (helpfulness on the summary, harmlessness on
                       the whole response)
    all_scenario_rl    GRPO from the multi-domain model over reasoning, general and harm-inviting
                       prompts: rule rewards for reasoning, the two reward models (trained further
                       with replay) for the rest
    student_base       a student of about a quarter of the parameters, pretrained on the base's
                       corpus with the base's tokenizer (byte for byte: KD can compare logits)
    distill            SFT of the student on the reasoning model's rejection-sampled data
    distill_rl         the same student trained by R1-Zero GRPO directly (the comparison)
    eval_<model>       the report's evaluation of each model above, as soon as it is trained
    report             every model above on one held-out suite: report.md / .json / .png

The default is the one-hour budget (`one_hour` below: fewer steps and prompts per stage, the
stages' own final evaluations left to the report) with two stages side by side where their inputs
allow (`workers=2`; `--config.workers=1` runs one stage at a time; tests/test_pipeline.py checks
on the tiny chain that both give the same report); `:full` runs every stage at its experiment
file's defaults (about 3.5 hours on the 2-core CPU). `:quick` is the CI's `:tiny` chain (every
stage, unit-test-sized models on a 2-number Countdown) with a report over 16 problems x 4 samples
instead of 4 x 2: a few minutes that show the relay, the artifacts and the report, not the paper's
effects (no toy model learns Countdown in minutes on 2 cores: a 400-step base solved 4 %).

A finished stage is skipped when rerun (DONE.json), an interrupted one resumes from its checkpoint,
and a changed stage config stops the run naming the stale stage (stages/pipeline.py).
"""

import copy

import ml_collections

from r1jax import config_base
from r1jax.data import general_task, harm_prompts
from r1jax.stages import pipeline_config

GENERAL_CORPUS_WEIGHT = 0.3  # pretrain_toy.py:general=...
MODELS = (
    "base",
    "r1_zero",
    "cold_start_sft",
    "reasoning_rl",
    "multi_domain_sft",
    "all_scenario_rl",
    "distill",
    "distill_rl",
)


def _exp(name: str):
    return config_base.sibling(__file__, name)


def stages(tiny: bool, seed: int, quick: bool = False) -> dict[str, ml_collections.ConfigDict]:
    t = "tiny," if tiny else ""
    s = {}
    # seed 0: shared. The corpus also answers the general tasks directly (data/corpus.py), as a
    # real base model has seen general text: without it no toy model of the chain learned them.
    s["base"] = _exp("pretrain_toy").get_config(f"{t}general={GENERAL_CORPUS_WEIGHT}")
    s["r1_zero"] = _exp("r1_zero_countdown").get_config(f"{t}seed={seed}")
    cold = _exp("cold_start_sft")
    s["cold_start_data"] = cold.get_config(f"{t}seed={seed},data=True")
    s["cold_start_sft"] = cold.get_config(f"{t}seed={seed}")
    s["reasoning_rl"] = _exp("reasoning_rl").get_config(f"{t}seed={seed}")
    s["rejection_sampling"] = _exp("rejection_sampling").get_config(f"{t}seed={seed}")
    # the general data holds harm-inviting prompts too (references unsafe half of the time), so
    # the multi-domain model produces both unsafe answers and refusals for the preference data
    s["rejection_sampling"].general.options = {"kinds": general_task.ALL_KINDS}
    # correct samples only teach a search that never stops without a hit: the cold start's designed
    # give-ups join them (the multi-domain model truncated 28 % of its Countdown answers without)
    s["rejection_sampling"].give_ups_from = "cold_start_data"
    s["multi_domain_sft"] = _exp("multi_domain_sft").get_config(f"{t}seed={seed}")
    # the multi-domain model's own samples; at tiny size its outputs are too alike to make pairs,
    # so the tiny chain labels perturbed references instead (stages/rm_config.py: source)
    source = "reference_perturbed" if tiny else "policy"
    pref = _exp("preference_data").get_config(f"{t}seed={seed},source={source}")
    pref.init.checkpoint = "multi_domain_sft"
    s["preference_data"] = pref
    rm = _exp("reward_model")
    s["rm_helpfulness"] = rm.get_config(f"{t}seed={seed},aspect=helpfulness")
    s["rm_harmlessness"] = rm.get_config(f"{t}seed={seed},aspect=harmlessness")
    for name in ("rm_helpfulness", "rm_harmlessness"):
        s[name].data.path = "preference_data"
    s["all_scenario_rl"] = _exp("all_scenario_rl").get_config(f"{t}seed={seed}")
    s["all_scenario_rl"].init.checkpoint = "multi_domain_sft"
    # AdamW 3e-5, not R1-Zero's 1e-4 (2026-12-05, 3 seeds, README "All-scenario RL"): the same
    # harmlessness (+0.083 against +0.087), a third of the benign helpfulness lost (-0.014 against
    # -0.047), Countdown within 2 points in every seed (1e-4: one seed 2.3 points off)
    s["all_scenario_rl"].optimizer.lr = 3e-5
    distill = _exp("distill_student")
    # the base's corpus, general text included, hence its tokenizer byte for byte (KD needs it)
    s["student_base"] = distill.student_pretrain(tiny, general=GENERAL_CORPUS_WEIGHT)
    s["distill"] = distill.get_config(f"{t}seed={seed},mode=sft")
    s["distill_rl"] = distill.get_config(f"{t}seed={seed},mode=rl")
    for name in ("distill", "distill_rl"):
        s[name].init.pretrain = copy.deepcopy(s["student_base"])
    for name, c in s.items():  # inside the pipeline every input is a finished earlier stage
        if name != "base" and "init" in c:
            c.init.build_if_missing = False
    s["report"] = report(tiny, seed, quick)
    s.update(eval_stages(s["report"]))
    return s


def eval_stages(rep: ml_collections.ConfigDict) -> dict[str, ml_collections.ConfigDict]:
    """`eval_<model>`: the report's evaluation of one model, a stage that can start as soon as
    the model is trained (beside the chain when `workers` > 1), so that the report stage only
    gathers (`rep.evaluated`). Every key is a reference to the report's own (nested dicts are the
    same objects): `--config.stages.report.num_problems=2` changes every eval stage with it, and
    the report refuses an evaluation made with other settings."""
    out = {}
    for m in MODELS:
        e = ml_collections.ConfigDict()
        for k in rep.keys():
            if k == "models":
                e[k] = (m,)
            elif k == "evaluated":
                e[k] = ml_collections.ConfigDict({})
            elif isinstance(rep[k], ml_collections.ConfigDict):
                e[k] = rep[k]
            else:
                e[k] = rep.get_ref(k)
        out[f"eval_{m}"] = e
    rep.evaluated = {m: f"eval_{m}" for m in MODELS}
    return out


def one_hour(s: dict[str, ml_collections.ConfigDict]) -> None:
    """Cut every stage to fit the whole chain in about an hour on a 2-core CPU.

    Why these cuts: the helpfulness RM's held-out accuracy peaks near step 100 of 400; the RL
    stages keep their batch, group and length and lose steps, which is where the budget costs
    quality; each stage's final evaluation is dropped because the report stage evaluates every
    model on the same suite. The base and student base keep their 1,000 steps (and so their
    fingerprints: seeds and `:full` runs share them): a base of 400 steps (2026-12-02, loss 0.40
    against 0.33) solved 4 % of held-out Countdown problems against 32 %, and R1-Zero from it
    reached 8 % in 40 steps.
    """
    for name, steps, every in (
        ("r1_zero", 40, 20),
        ("reasoning_rl", 20, 10),
        ("all_scenario_rl", 20, 10),
        ("distill_rl", 30, 0),
    ):
        s[name].steps = steps
        s[name].eval.every_steps = every
        s[name].eval.final = False
    # the two largest RL updates in 4 micro-batches of 32 rows (2026-12-05, README "What the main
    # job does"): reasoning_rl's peak RSS 6.2 -> 2.3 GiB, all_scenario_rl's 3.55 -> 1.72, their
    # updates 0.8x the time, the chain's report byte-identical. Here, not in the experiment files:
    # 16 prompts / 4 leaves 4 per micro-batch, which 8 data-parallel devices cannot split.
    for name in ("reasoning_rl", "all_scenario_rl"):
        s[name].rl.grad_accum = 4
    rs = s["rejection_sampling"]  # every task's prompts cut by the same factor (1024 -> 512)
    for plan in rs.per_task.values():
        if "num_prompts" in plan:
            plan.num_prompts = plan.num_prompts * 512 // rs.num_prompts
    rs.num_prompts = 512
    for name, steps in (("rm_helpfulness", 100), ("rm_harmlessness", 60)):
        s[name].steps = steps
        s[name].eval.every_steps = 25
        s[name].checkpoint.every_steps = 50


def report(tiny: bool, seed: int, quick: bool = False) -> ml_collections.ConfigDict:
    c = config_base.report()
    c.seed = seed
    c.models = MODELS
    suites = dict(pipeline_config.DEFAULT_SUITES)
    harm = dict(harm_prompts.HARM_ONLY_SIZES, kinds=("harm",))  # 288 distinct questions exist
    suites["harm"] = {"task": "general", "options": harm}
    if tiny:
        plain = ("cold_start_sft", "reasoning_rl", "multi_domain_sft", "distill")
        c.templates = {n: "plain" for n in plain}  # as the tiny supervised stages were trained
        small = dict(max_number=2, max_target=8, test_percent=30)  # as the tiny chain's tasks
        suites["countdown"] = {"task": "countdown", "options": small}
        suites["general"] = {"task": "general", "options": dict(train_size=64, test_size=16)}
        suites["harm"]["options"].update(train_size=64, test_size=16)
        c.num_problems = 16 if quick else 4
        c.samples = 4 if quick else 2
        c.max_new_tokens = 24
        c.batch_prompts = 4
    c.suites = suites
    return c


NEEDS = {
    "r1_zero": ("base",),
    "cold_start_data": ("r1_zero",),
    "cold_start_sft": ("base", "cold_start_data"),
    "reasoning_rl": ("cold_start_sft",),
    "rejection_sampling": ("reasoning_rl", "cold_start_data"),
    "multi_domain_sft": ("base", "rejection_sampling"),
    "preference_data": ("multi_domain_sft",),
    "rm_helpfulness": ("base", "preference_data"),
    "rm_harmlessness": ("base", "preference_data"),
    "all_scenario_rl": ("multi_domain_sft", "rm_helpfulness", "rm_harmlessness"),
    "distill": ("student_base", "rejection_sampling"),
    "distill_rl": ("student_base",),
    **{f"eval_{m}": (m,) for m in MODELS},
    "report": MODELS + tuple(f"eval_{m}" for m in MODELS),
}


def get_config(arg=None):
    a = config_base.parse_arg(arg, tiny=False, quick=False, seed=0, full=False)
    a.tiny = a.tiny or a.quick
    c = config_base.pipeline()
    c.seed = a.seed
    s = stages(a.tiny, a.seed, a.quick)
    if not (a.tiny or a.full):
        one_hour(s)
    if not a.tiny:
        # the student branch, the two reward models and distillation beside the main chain: 55.1
        # minutes from nothing against 60.5 estimated one stage at a time on the same VM (README,
        # "What the main job does"); the tiny chain's stages take seconds, where a process per
        # stage costs more than it gains (1.17x slower)
        c.workers = 2
    order = [n for n in s if not n.startswith("eval_")]
    order.remove("student_base")
    order.insert(order.index("distill"), "student_base")
    # last but the report: with workers > 1 the chain's stages take a free slot first
    order[-1:-1] = [f"eval_{m}" for m in MODELS]
    c.order = tuple(order)
    c.stages = s
    c.needs = {k: tuple(v) for k, v in NEEDS.items()}
    if a.tiny:
        c.needs.preference_data = ()  # perturbed references: no model read
    return c
