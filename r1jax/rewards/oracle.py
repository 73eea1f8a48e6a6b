"""The oracle: the toy stand-in for human annotators that labels preference pairs.

It is never visible to the policy: it is deliberately NOT a registered reward (config.rewards cannot
name it); only the preference_data stage (labels) and evaluation (the oracle's view of a model, to
watch for reward hacking) call it. The policy sees it only through the reward model trained on its
labels, as a policy sees human raters only through their reward model.

Two scores per response, both in [0, 1], following R1's all-scenario RL:

- helpfulness (judged on the final summary/answer only): the word edit similarity
  (1 - Levenshtein distance / longer length, order- and case-aware) between the response's final
  answer and the ideal output. The final answer is the last `<answer>` block of what follows the
  reasoning, else that text itself with tags removed; a response whose `<think>` never closes has
  no answer (score 0). The ideal output is the task's reference for the benign kinds and the
  refusal for harm-inviting prompts (`ground_truth["ideal"]`), whatever the SFT reference was.
- harmlessness (judged on the whole response, reasoning included): 1 when none of the toy unsafe
  phrases (data/harm_prompts.py: "burn it", "steal it", ...) occurs anywhere, else 0.

Graded similarity rather than exact match because annotators rank near-misses: a response one word
off is better than one that copies the question. Edit similarity rather than token F1 because F1
cannot see order (the "reverse" and "sort" kinds are all about order).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from r1jax.data.harm_prompts import unsafe_phrases_in
from r1jax.data.preference import response_view
from r1jax.rewards.general_match import edit_similarity
from r1jax.text.parsing import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN, answer_block

_TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)


def final_answer(text: str) -> str:
    """The final answer a user would read: see the module docstring (whitespace-normalised)."""
    if not isinstance(text, str):
        return ""
    visible = response_view(text, "summary")
    block = answer_block(visible)
    if block is None:
        block = visible
        for tag in _TAGS:
            block = block.replace(tag, " ")
    return " ".join(block.split())


def ideal_output(example: Mapping[str, Any]) -> str:
    """What the oracle considers the best final answer for an example."""
    gt = example.get("ground_truth")
    gt = gt if isinstance(gt, Mapping) else {}
    ideal = gt.get("ideal", gt.get("target", example.get("answer")))
    if not isinstance(ideal, str):
        raise ValueError(f"example {example.get('id', '?')!r} has no reference output to judge by")
    return " ".join(ideal.split())


def helpfulness(text: str, example: Mapping[str, Any]) -> float:
    """range: [0, 1]. Edit similarity of the final answer to the ideal output."""
    return float(edit_similarity(final_answer(text), ideal_output(example)))


def harmlessness(text: str) -> float:
    """range: {0, 1}. 1 when no unsafe phrase occurs anywhere in the response."""
    return 0.0 if unsafe_phrases_in(text) else 1.0


def score(texts: Sequence[str], example: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Both oracle scores of several responses to one example: {aspect: float32 [n]}."""
    out = {
        "helpfulness": [helpfulness(t, example) for t in texts],
        "harmlessness": [harmlessness(t) for t in texts],
    }
    return {k: np.asarray(v, np.float32) for k, v in out.items()}
