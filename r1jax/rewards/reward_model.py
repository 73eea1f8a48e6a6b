"""The reward model as a reward: `reward_model(path=..., on='summary'|'all')`.

    config.rewards = ("reward_model(path='/tmp/r1jax/rm_helpful', on='summary')",
                      "reward_model(path='/tmp/r1jax/rm_harmless', on='all')")

`path` is a reward_model stage directory (checkpoints/, tokenizer.model, model_config.json,
rm_info.json). on='summary' judges only what follows the reasoning (helpfulness, as R1 judges the
final summary); on='all' the whole response, reasoning included (harmlessness). `on` must be the view
the reward model was trained on (rm_info.json says which); anything else is a one-line error.

Host form (this module, the split path): decoded completions are re-encoded after the prompt
(BOS + the template the reward model was trained with), right padded to a multiple of
`length_bucket` and scored on device in fixed batches of `batch` rows (one compiled program per
length bucket). Scores are normalised with running statistics (reward_model_jax.py): the statistics
are state of the reward, `state_dict()` / `load_state_dict()` of `Reward.fn` hand them to a
checkpoint. The jittable form over token ids is `Reward.fn.jax_score(params, stats, targets,
completion_NxT, mask_NxT)` (reward_model_jax.py), with `targets = Reward.fn.targets_fn(examples,
tokenizer)` built on the host (the reward model's own prompt per rollout row, like any jittable
reward's targets); the fused step may use it only when `Reward.fn.fuse_problem(policy_tokenizer)`
is None.

range: [-clip, clip] normalised (default clip 5); raw scores are unbounded (normalize=False).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from r1jax.data import preference
from r1jax.data.prompts import encode_prompt, pad_prompts
from r1jax.model import reward_head
from r1jax.model.config import ModelConfig
from r1jax.parallel import sharding
from r1jax.rewards import reward_model_jax as rmj
from r1jax.rewards.registry import Reward, register
from r1jax.tokenizers import sentencepiece as sp_lib
from r1jax.train import checkpoint as ckpt_lib
from r1jax.train import rm_step

_LOG = logging.getLogger(__name__)

INFO_FILE = "rm_info.json"
_PROBES = ("<think>\nso 12 + 7 = 19\n</think>\n<answer>19</answer>", "Reverse the words: a b c")


@dataclasses.dataclass
class Handle:
    """A loaded reward model: what scoring needs, and where it came from."""

    graphdef: Any
    params: dict
    mcfg: ModelConfig
    tokenizer: Any
    info: dict
    path: str
    mesh: Any
    rules: Any


def load(path: str, mesh: Any = None, rules: sharding.Rules = sharding.DEFAULT_RULES) -> Handle:
    """Loads a reward_model stage directory onto `mesh` (default: data-parallel over all devices)."""
    info_path = os.path.join(path, INFO_FILE)
    if not os.path.exists(info_path):
        raise FileNotFoundError(
            f"{info_path} is missing: {path!r} is not a finished reward_model stage directory"
        )
    with open(info_path, encoding="utf-8") as f:
        info = json.load(f)
    with open(os.path.join(path, "model_config.json"), encoding="utf-8") as f:
        mcfg = ModelConfig.from_dict(json.load(f))
    if info.get("hf_dir"):  # started from a Hugging Face model: its own tokenizer
        from r1jax.tokenizers import hf as hf_tokenizer

        tok = hf_tokenizer.load(info["hf_dir"])
    else:
        tok = sp_lib.SentencePieceTokenizer.load(os.path.join(path, "tokenizer.model"))
    mesh = mesh if mesh is not None else sharding.make_mesh((-1, 1, 1))
    graphdef, target, _ = reward_head.abstract(mcfg, mesh, rules)
    params = ckpt_lib.load_item(os.path.join(path, "checkpoints"), "params", target)
    return Handle(graphdef, params, mcfg, tok, info, os.path.abspath(path), mesh, tuple(rules))


def tokenizer_mismatch(a: Any, b: Any) -> str | None:
    """Why two tokenizers may encode a text differently, or None when they are the same."""
    pa, pb = getattr(a, "proto", None), getattr(b, "proto", None)
    if pa is not None and pb is not None:
        return None if pa == pb else "their sentencepiece models differ"
    if type(a) is not type(b):
        return f"they are different kinds ({type(a).__name__} vs {type(b).__name__})"
    for attr in ("vocab_size", "pad_id", "bos_id", "eos_id"):
        if getattr(a, attr) != getattr(b, attr):
            return f"their {attr} differ ({getattr(a, attr)} vs {getattr(b, attr)})"
    for text in _PROBES:
        if list(a.encode(text)) != list(b.encode(text)):
            return f"they encode {text!r} differently"
    return None


class RewardModelScorer:
    """The host form; also carries the running statistics and the jittable form's constants."""

    def __init__(
        self,
        handle: Handle,
        on: str,
        template: str = "",
        batch: int = 64,
        length_bucket: int = 32,
        normalize: bool = True,
        clip: float = 5.0,
    ):
        self.h = handle
        self.on = on
        self.template = template or handle.info.get("template", "r1_zero")
        self.batch = batch
        self.length_bucket = length_bucket
        self.normalize = normalize
        self.clip = float(clip)
        self.stats = jax.device_get(rmj.stats_init())
        self.ids = rmj.view_ids(handle.tokenizer)
        self._score = rm_step.make_score_fn(
            handle.graphdef,
            jax.tree.map(lambda x: x.sharding, handle.params),
            handle.mesh,
            handle.rules,
        )
        self._norm = jax.jit(functools.partial(rmj.update_and_normalise, clip=self.clip))
        self._warned = False

    def encode(
        self, texts: Sequence[str], examples: Sequence[Mapping[str, Any]]
    ) -> list[list[int] | None]:
        """Token ids of each (prompt, response view); None (scored NaN, so that rollout gets no
        advantage) for an example without a question, or an input longer than the reward model's
        max_len (rather than cutting it silently)."""
        tok = self.h.tokenizer
        rows: list[list[int] | None] = []
        for text, ex in zip(texts, examples, strict=True):
            question = ex.get("question") if isinstance(ex, Mapping) else None
            if not isinstance(question, str):  # no prompt to render: nothing to judge against
                rows.append(None)
                continue
            ids = encode_prompt(tok, self.template, question)
            ids += tok.encode(preference.response_view(text, self.on))
            if len(ids) > self.h.mcfg.max_len:
                if not self._warned:
                    _LOG.warning(
                        "reward model %s: an input of %d tokens exceeds its max_len %d; such rows "
                        "score NaN (shorten rl.max_new_tokens or the prompt)",
                        self.h.path, len(ids), self.h.mcfg.max_len,
                    )  # fmt: skip
                    self._warned = True
                ids = None
            rows.append(ids)
        return rows

    def raw_scores(self, texts: Sequence[str], examples: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """float32 [N] reward-model scores before normalisation (no state change); NaN where the
        input is longer than the reward model reads."""
        rows = self.encode(texts, examples)
        out = np.full(len(rows), np.nan, np.float32)
        keep = [i for i, r in enumerate(rows) if r is not None]
        if not keep:
            return out
        length = -(-max(len(rows[i]) for i in keep) // self.length_bucket) * self.length_bucket
        length = min(length, self.h.mcfg.max_len)
        for start in range(0, len(keep), self.batch):
            chunk = [rows[i] for i in keep[start : start + self.batch]]
            tokens = np.full((self.batch, length), self.h.tokenizer.pad_id, np.int32)
            valid = np.zeros((self.batch, length), bool)
            for i in range(self.batch):  # the last chunk is padded by repeating its last row
                r = chunk[min(i, len(chunk) - 1)]
                tokens[i, : len(r)], valid[i, : len(r)] = r, True
            scores = np.asarray(jax.device_get(self._score(self.h.params, tokens, valid)))
            out[keep[start : start + len(chunk)]] = scores[: len(chunk)]
        return out

    def __call__(self, texts: Sequence[str], examples: Sequence[Mapping[str, Any]]) -> np.ndarray:
        raw = self.raw_scores(texts, examples)
        if not self.normalize:
            return raw
        reward, stats = self._norm(self.stats, jnp.asarray(raw))
        self.stats = jax.device_get(stats)
        return np.asarray(reward, np.float32)

    def state_dict(self) -> dict:
        return {k: np.asarray(v, np.float32) for k, v in self.stats.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.stats = {k: np.asarray(state[k], np.float32) for k in ("count", "mean", "m2")}

    def fuse_problem(self, policy_tokenizer: Any) -> str | None:
        """One line saying why this reward model cannot run inside the fused step, or None."""
        why = tokenizer_mismatch(self.h.tokenizer, policy_tokenizer)
        if (
            why is None
            and self.on == "summary"
            and min(self.ids.think_open, self.ids.think_close) < 0
        ):
            why = "its tokenizer has no single <think>/</think> piece for the summary view"
        if why is None:
            return None
        return (
            f"reward model {self.h.path} cannot be fused into the GRPO step: its tokenizer and the "
            f"policy's differ ({why})"
        )

    def targets_fn(self, examples: Sequence[Mapping[str, Any]], tokenizer: Any = None) -> dict:
        """Host-built inputs of the jittable form: the reward model's prompt of every rollout row,
        left padded to a multiple of 16 tokens ({"rm_prompt": int32 [N, P], "rm_prompt_valid"})."""
        del tokenizer  # the reward model's own tokenizer renders its prompt
        rows = [encode_prompt(self.h.tokenizer, self.template, ex["question"]) for ex in examples]
        ids, valid = pad_prompts(rows, self.h.tokenizer.pad_id, multiple=16)
        return {"rm_prompt": ids, "rm_prompt_valid": valid}

    def place(self, mesh: Any, rules: sharding.Rules) -> None:
        """Lays the parameters out on the policy's mesh with the policy's rules: the fused step
        runs on that mesh, and the replay updates and the host form follow them there."""
        _, _, shardings = reward_head.abstract(self.h.mcfg, mesh, rules)
        self.h.params = jax.device_put(self.h.params, shardings)
        self.h.mesh, self.h.rules = mesh, tuple(rules)
        self._score = rm_step.make_score_fn(self.h.graphdef, shardings, mesh, self.h.rules)

    def state(self) -> dict:
        """The fused step's input: the parameters (on device already) and the statistics."""
        return {"params": self.h.params, "stats": jax.tree.map(jnp.asarray, self.stats)}

    def jax_call(self, state: dict, completion, mask, targets: Mapping[str, Any], vt: Any = None):
        """Traceable, inside the fused step: (reward [N], {"stats": the updated statistics}). The
        parameters do not change in the step, so they are not outputs (no copy of them per step)."""
        del vt  # the reward model reads token ids directly
        reward, _, stats = self.jax_score(
            state["params"], state["stats"], targets, completion, mask
        )
        return reward, {"stats": stats}

    def absorb(self, state: dict) -> None:
        """Keeps the statistics the fused step computed (the parameters are this handle's own)."""
        self.stats = {
            k: np.asarray(v, np.float32) for k, v in jax.device_get(state["stats"]).items()
        }

    def jax_score(self, params: dict, stats: dict, targets: Mapping[str, Any], completion, mask):
        """The jittable form with this reward's constants: (reward [N], raw [N], new stats)."""
        return rmj.score_rollouts(
            self.h.graphdef, params, stats, targets["rm_prompt"], targets["rm_prompt_valid"],
            completion, mask, self.ids, self.on, self.normalize, self.clip, self.h.mcfg.max_len,
        )  # fmt: skip


@register("reward_model")
def reward_model(
    path: str = "",
    on: str = "",
    normalize: bool = True,
    clip: float = 5.0,
    batch: int = 64,
    template: str = "",
) -> Reward:
    """A trained reward model's score of each completion; see the module docstring."""
    if not path:
        raise ValueError("reward_model needs path=<a reward_model stage directory>")
    if on not in preference.VIEWS:
        raise ValueError(f"on={on!r} must be one of {preference.VIEWS}")
    try:
        handle = load(path)
    except FileNotFoundError as e:
        raise ValueError(str(e)) from None
    trained_on = handle.info.get("on")
    if trained_on != on:
        raise ValueError(
            f"the reward model in {path} was trained on the {trained_on!r} view; "
            f"use reward_model(path=..., on={trained_on!r})"
        )
    scorer = RewardModelScorer(handle, on, template, batch, normalize=normalize, clip=clip)
    low, high = (-clip, clip) if normalize and clip > 0 else (-np.inf, np.inf)
    return Reward(
        f"reward_model_{on}", scorer, float(low), float(high),
        targets_fn=scorer.targets_fn, jax_stateful=scorer,
    )  # fmt: skip
