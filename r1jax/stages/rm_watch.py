"""Reward hacking in view, and the per-step hooks of all-scenario RL around the GRPO step.

`Watch`: at every eval step (before the first update and every `eval.every_steps` steps) the policy
answers held-out prompts of `config.rm_eval.sources` (`num_problems` each, G samples each, the RL sampler) and each reward
model's raw score is logged beside the oracle's score of the same responses:

    eval_rm_score_<aspect>       mean raw reward-model score (its own scale)
    eval_oracle_score_<aspect>   mean oracle score in [0, 1]
    eval_rm_agreement_<aspect>   share of same-prompt response pairs the oracle tells apart that
                                 the reward model orders the same way (scale-free: a policy that
                                 hacks the reward model drives the RM score up and this down)

and each of the three again per source, suffixed `_<source>` (`eval_oracle_score_helpfulness_general`):
pooled over benign and harm-inviting prompts, a rise on one can hide a fall on the other.

`Hooks.step` wraps `GRPOStage.step`: it keeps the reward models' checkpoint items out of the policy's
update, feeds each step's rollouts to the replay (stages/rm_replay.py) and runs the watch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import ml_collections
import numpy as np

from r1jax.data import tasks
from r1jax.parallel import rows as rows_lib
from r1jax.rewards import oracle
from r1jax.rewards.reward_model import RewardModelScorer
from r1jax.rl import step as step_lib
from r1jax.stages.mixture_config import Mixture, option
from r1jax.stages.rm_replay import Replay


def agreement(rm_G: np.ndarray, oracle_G: np.ndarray) -> tuple[int, int]:
    """(pairs the RM orders as the oracle does, pairs the oracle tells apart) within one group."""
    agree = total = 0
    for a in range(len(rm_G)):
        for b in range(a + 1, len(rm_G)):
            d = oracle_G[a] - oracle_G[b]
            if d != 0 and np.isfinite(rm_G[a]) and np.isfinite(rm_G[b]):  # NaN: unreadable
                total += 1
                agree += int((rm_G[a] - rm_G[b]) * d > 0)
    return agree, total


def summarise(
    oracle_by_aspect: dict[str, np.ndarray],
    rm_by_aspect: dict[str, np.ndarray],
    sources: Sequence[str],
    group_size: int,
) -> dict[str, float]:
    """The watch's metrics from per-response scores (responses in groups of `group_size`, one
    source per response): pooled, then per source with the suffix `_<source>`."""
    sources = np.asarray(sources)
    subsets = [("", np.ones(len(sources), bool))]
    subsets += [(f"_{s}", sources == s) for s in dict.fromkeys(sources.tolist())]
    m = {}
    for suffix, keep in subsets:
        for a, v in oracle_by_aspect.items():
            m[f"eval_oracle_score_{a}{suffix}"] = float(v[keep].mean())
        for a, raw in rm_by_aspect.items():
            r = raw[keep]
            m[f"eval_rm_score_{a}{suffix}"] = float(np.nanmean(r)) if np.isfinite(r).any() else np.nan  # fmt: skip
            o = oracle_by_aspect[a][keep]
            pairs = [agreement(r[k : k + group_size], o[k : k + group_size]) for k in range(0, len(r), group_size)]  # fmt: skip
            total = sum(t for _, t in pairs)
            if total:
                m[f"eval_rm_agreement_{a}{suffix}"] = sum(x for x, _ in pairs) / total
    return m


class Watch:
    """The reward models' and the oracle's scores of the same held-out responses."""

    def __init__(
        self,
        mix: Mixture,
        examples: Sequence[tuple[str, dict]],
        encode: Callable[[list[dict]], step_lib.Prompts],
        ctx: step_lib.StepContext,
        batch: int,
    ):
        """examples: (source, example) pairs."""
        self.scorers = [f.fn for f in mix.rewards if isinstance(f.fn, RewardModelScorer)]
        n = -(-len(examples) // batch) * batch  # whole batches (the sampler's compiled shape)
        self.examples = [examples[i % len(examples)] for i in range(n)]
        self.real = len(examples)  # the padding's responses are dropped before scoring
        self.encode, self.ctx, self.batch = encode, ctx, batch

    def __call__(self, params, key: jax.Array) -> dict:
        g = self.ctx.group_size
        texts, exs, srcs = [], [], []
        for i in range(0, len(self.examples), self.batch):
            chunk = self.examples[i : i + self.batch]
            prompts = self.encode([ex for _, ex in chunk])
            out = step_lib.sample(self.ctx, params, prompts, jax.random.fold_in(key, i))
            toks, mask = (rows_lib.gather_rows(x) for x in (out.tokens_NxT, out.mask_NxT))
            texts += step_lib.decode_rows(self.ctx.tokenizer, toks, mask)
            exs += [ex for _, ex in chunk for _ in range(g)]
            srcs += [src for src, _ in chunk for _ in range(g)]
        texts, exs, srcs = (x[: self.real * g] for x in (texts, exs, srcs))
        orc = {a: [] for a in ("helpfulness", "harmlessness")}
        for k in range(0, len(texts), g):
            for a, v in oracle.score(texts[k : k + g], exs[k]).items():
                orc[a].append(v)
        orc = {a: np.concatenate(v) for a, v in orc.items()}
        raw = {
            s.h.info.get("aspect", "helpfulness"): s.raw_scores(texts, exs) for s in self.scorers
        }
        return summarise(orc, raw, srcs, g)


class Hooks:
    """`step(state, i)` for loop.run: the GRPO step plus the replay and the watch."""

    def __init__(self, stage, replay: Replay | None, watch: Watch | None, every: int, seed: int):
        self.stage, self.replay, self.watch, self.every, self.seed = (
            stage,
            replay,
            watch,
            every,
            seed,
        )
        self.keys = set(replay.keys) if replay else set()

    def step(self, state: dict, i: int) -> tuple[dict, dict]:
        rl = {k: v for k, v in state.items() if k not in self.keys}
        key = jax.random.fold_in(jax.random.key(self.seed + 7), i)
        m = self.watch(rl["params"], key) if self.watch and self.every and i == 0 else {}
        rl, got = self.stage.step(rl, i)
        m.update(got)
        if self.replay is not None:
            m.update(self.replay.observe(i, self.stage.last_rollouts, self.stage.ctx))
            m.update(self.replay.update(i))
        if self.watch and self.every and (i + 1) % self.every == 0:
            m.update(self.watch(rl["params"], jax.random.fold_in(key, 1)))
        if self.replay is not None:
            rl = dict(rl, **self.replay.items())
        return rl, m


def hooks(
    config: ml_collections.ConfigDict, stage, mix: Mixture | None, replay: Replay | None
) -> Hooks | None:
    """The hooks the run needs (None on the single-task path: its step is untouched)."""
    sources = tuple(option(config, "rm_eval.sources"))
    watch = None
    if mix is not None and sources:
        held = []
        for spec in (s for s in mix.specs if s.source in sources):
            t = tasks.load(spec.name, config.task.eval_split, config.task.data_dir, **spec.options)
            held += [(spec.source, ex) for ex in t[: option(config, "rm_eval.num_problems")]]
        watch = Watch(mix, held, stage.encode, stage.ctx, config.rl.prompts_per_step)
    if watch is None and replay is None:
        return None
    return Hooks(stage, replay, watch, config.eval.every_steps, config.seed)


def plot(workdir: str) -> str | None:
    """plots/rm_vs_oracle.png: per aspect, the RM's score and the oracle's over the eval steps on
    twin axes (their scales differ), and the RM-oracle pair agreement (process 0 only)."""
    import json
    import os

    from r1jax.stages.rm_plots import _figure, _save

    path = os.path.join(workdir, "metrics.jsonl")
    if jax.process_index() != 0 or not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    aspects = [a for a in ("helpfulness", "harmlessness") if any(f"eval_rm_score_{a}" in r for r in rows)]  # fmt: skip
    if not aspects:
        return None
    plt, fig, ax = _figure(len(aspects) + 1)
    for k, a in enumerate(aspects):
        got = [r for r in rows if f"eval_rm_score_{a}" in r]
        steps = [r["step"] for r in got]
        ax[k].plot(steps, [r[f"eval_rm_score_{a}"] for r in got], "o-", color="C0", label="RM")
        ax[k].set_ylabel("reward model score (raw)", color="C0")
        twin = ax[k].twinx()
        twin.plot(
            steps, [r[f"eval_oracle_score_{a}"] for r in got], "s--", color="C1", label="oracle"
        )
        prefix = f"eval_oracle_score_{a}_"
        sources = sorted({k[len(prefix) :] for r in got for k in r if k.startswith(prefix)})
        for j, src in enumerate(sources):  # a pooled rise can hide a fall on one source
            pts = [(r["step"], r[prefix + src]) for r in got if prefix + src in r]
            twin.plot(*zip(*pts), ":", marker=".", color=f"C{j + 2}", label=f"oracle, {src}")
        if sources:
            twin.legend(fontsize=7)
        twin.set_ylabel("oracle score", color="C1")
        ax[k].set_title(a)
        ax[k].set_xlabel("step")
        agree = [(r["step"], r[f"eval_rm_agreement_{a}"]) for r in got if f"eval_rm_agreement_{a}" in r]  # fmt: skip
        if agree:
            ax[-1].plot(*zip(*agree), "o-", color=f"C{k}", label=a)
        for j, src in enumerate(sources):
            name = f"eval_rm_agreement_{a}_{src}"
            pts = [(r["step"], r[name]) for r in got if name in r]
            style = dict(ls=(":", "-.")[j % 2], marker=".x+"[j % 3], color=f"C{k}")
            if pts:
                ax[-1].plot(*zip(*pts), label=f"{a}, {src}", **style)
    ax[-1].set_title("RM-oracle pair agreement")
    ax[-1].set_xlabel("step")
    ax[-1].set_ylim(0, 1)
    if ax[-1].lines:
        ax[-1].legend(fontsize=7)
    out = os.path.join(workdir, "plots", "rm_vs_oracle.png")
    return _save(plt, fig, out, "held-out responses: reward model vs oracle")
