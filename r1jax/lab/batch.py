"""One batch of scored rollouts as host arrays, saved and loaded as a single `.npz` file.

Letters: B prompts, G samples each, N = B * G rollouts (row b * G + g is sample g of prompt b),
P prompt length (left padded), T completion length, R reward columns.

The batch holds everything a loss needs (tokens, mask, the sampler's log-probs, advantages) and
everything a reader needs (the prompts' and completions' text, each reward column by name, the
examples with their ground truth), so an ablation can be rerun from the file alone. Advantages are
data, not recomputed: edit `adv_N` and every loss and update in `r1jax.lab` uses yours.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np

from r1jax.rl import train_step

ARRAYS = (
    "prompt_BxP",
    "prompt_valid_BxP",
    "completion_NxT",
    "mask_NxT",
    "old_logp_NxT",
    "rewards_NxR",
    "adv_N",
    "truncated_N",
    "lengths_N",
)
FORMAT = 1  # bumped when the file layout changes; `load_batch` refuses other versions


@dataclasses.dataclass
class RolloutBatch:
    """Scored rollouts of B prompts x G samples and how they were made."""

    prompt_BxP: np.ndarray  # int32, left padded
    prompt_valid_BxP: np.ndarray  # bool
    completion_NxT: np.ndarray  # int32 sampled tokens (pad after EOS)
    mask_NxT: np.ndarray  # bool: generated tokens up to and including EOS
    old_logp_NxT: np.ndarray  # f32 the sampler's log-probs at `temperature` (0 off the mask)
    rewards_NxR: np.ndarray  # f32, one column per reward (NaN: could not be scored)
    adv_N: np.ndarray  # f32 advantages (by `advantage` over the weighted reward sum)
    truncated_N: np.ndarray  # bool: no EOS within the budget
    lengths_N: np.ndarray  # int32 generated tokens, EOS included
    reward_names: tuple[str, ...]
    reward_weights: tuple[float, ...]
    prompts: list[str]  # B rendered prompts (text)
    completions: list[str]  # N decoded completions
    examples: list[dict]  # B task examples (question, answer, ground_truth, ...)
    group_size: int
    temperature: float
    max_new_tokens: int
    advantage: str  # the estimator's name
    source: str = ""  # the policy's directory

    def __post_init__(self):
        n, b = self.completion_NxT.shape[0], self.prompt_BxP.shape[0]
        if n != b * self.group_size:
            raise ValueError(f"{n} rollouts are not {b} prompts x group_size {self.group_size}.")
        if self.rewards_NxR.shape != (n, len(self.reward_names)):
            raise ValueError(
                f"rewards_NxR has shape {self.rewards_NxR.shape}; want ({n}, {len(self.reward_names)})"
                " (one column per reward name)."
            )

    @property
    def reward_N(self) -> np.ndarray:
        """The weighted sum of the reward columns (weight-0 columns are diagnostics, left out)."""
        return np.asarray(train_step.total_reward(self.rewards_NxR, self.reward_weights))

    def reward(self, name: str) -> np.ndarray:
        """One reward column by name."""
        return self.rewards_NxR[:, self.reward_names.index(name)]

    def update_inputs(self) -> dict[str, np.ndarray]:
        """The rollout dict `rl.train_step.update` takes (rewards as the trainer would score them)."""
        return {
            "prompt": self.prompt_BxP,
            "prompt_valid": self.prompt_valid_BxP,
            "completion": self.completion_NxT,
            "mask_NxT": self.mask_NxT,
            "old_logp_NxT": self.old_logp_NxT,
            "rewards_NxR": self.rewards_NxR,
            "truncated_N": self.truncated_N,
        }

    def rows(self, prompts: slice | list[int]) -> RolloutBatch:
        """The sub-batch of some prompts (with all G samples of each)."""
        idx = np.arange(self.prompt_BxP.shape[0])[prompts]
        g = self.group_size
        r = (idx[:, None] * g + np.arange(g)[None, :]).reshape(-1)
        pick = {k: getattr(self, k)[idx if k.startswith("prompt") else r] for k in ARRAYS}
        return dataclasses.replace(
            self,
            **pick,
            prompts=[self.prompts[i] for i in idx],
            completions=[self.completions[i] for i in r],
            examples=[self.examples[i] for i in idx],
        )


def _json_default(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"cannot store {type(x).__name__} in a rollout batch's examples")


def save_batch(batch: RolloutBatch, path: str) -> str:
    """Writes the batch to one `.npz` (arrays as they are; text and metadata as JSON strings)."""
    meta = {
        "format": FORMAT,
        "reward_names": list(batch.reward_names),
        "reward_weights": list(batch.reward_weights),
        "group_size": batch.group_size,
        "temperature": batch.temperature,
        "max_new_tokens": batch.max_new_tokens,
        "advantage": batch.advantage,
        "source": batch.source,
    }
    text = {"prompts": batch.prompts, "completions": batch.completions, "examples": batch.examples}
    arrays = {k: np.asarray(getattr(batch, k)) for k in ARRAYS}
    with open(path, "wb") as f:  # a file object: numpy must not append ".npz" to the name
        np.savez_compressed(
            f,
            meta=np.asarray(json.dumps(meta)),
            text=np.asarray(json.dumps(text, default=_json_default)),
            **arrays,
        )
    return path


def load_batch(path: str) -> RolloutBatch:
    """Reads a batch written by `save_batch` (no pickle: text is JSON)."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        if meta.get("format") != FORMAT:
            raise ValueError(
                f"{path} has rollout-batch format {meta.get('format')}, this r1jax reads {FORMAT}; "
                "collect the batch again."
            )
        text = json.loads(str(z["text"]))
        arrays = {k: z[k] for k in ARRAYS}
    return RolloutBatch(
        **arrays,
        reward_names=tuple(meta["reward_names"]),
        reward_weights=tuple(float(w) for w in meta["reward_weights"]),
        prompts=text["prompts"],
        completions=text["completions"],
        examples=text["examples"],
        group_size=int(meta["group_size"]),
        temperature=float(meta["temperature"]),
        max_new_tokens=int(meta["max_new_tokens"]),
        advantage=meta["advantage"],
        source=meta["source"],
    )
