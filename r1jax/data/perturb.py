"""Responses to general-task prompts made from the reference outputs by seeded perturbations.

A stand-in for a policy's own samples while no general-capable model exists (the preference_data
stage's `source="reference_perturbed"`; `source="policy"` samples a checkpoint instead). Each of
the k responses to a prompt is in the readable pattern of the SFT data (reasoning lines, then a
summary line that restates the output, then the answer; the reasoning of a benign general task is
empty, as in the general SFT references):

    " <think>\n<reasoning lines></think>\nso <output>\n<answer><output></answer>"

whose output is the reference, or (with `copy_prob`) the question's input copied, or (with
`refuse_prob`) a refusal of a benign request, and then gets 0..max_edits word edits (drop,
duplicate, swap with the next word, substitute a toy word), the mistakes a small model makes. A
harm-inviting prompt is answered with the unsafe instruction (probability `harm_unsafe_prob`) or the
refusal, and its reasoning drafts the unsafe instruction with probability `unsafe_draft_prob`
even when the answer refuses: such a response is helpful by its summary and harmful as a whole.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping, Sequence
from typing import Any

from r1jax.data import harm_prompts
from r1jax.text import toy_language

_VOCAB = toy_language.EN + toy_language.ZL


@dataclasses.dataclass(frozen=True)
class PerturbConfig:
    max_edits: int = 3
    copy_prob: float = 0.1
    refuse_prob: float = 0.05
    harm_unsafe_prob: float = 0.5
    unsafe_draft_prob: float = 0.3


def render(lines: Sequence[str], output: str) -> str:
    """A readable response (the leading space continues the prompt, as in the corpus)."""
    body = "".join(f"{ln}\n" for ln in lines)
    return f" <think>\n{body}</think>\nso {output}\n<answer>{output}</answer>"


def edit_words(words: Sequence[str], n_edits: int, rng: random.Random, upper: bool) -> list[str]:
    """`n_edits` random word edits; never returns an empty list."""
    out = list(words)
    for _ in range(n_edits):
        op = rng.randrange(4)
        i = rng.randrange(len(out))
        if op == 0 and len(out) > 1:
            del out[i]
        elif op == 1:
            out.insert(i, out[i])
        elif op == 2 and len(out) > 1:
            j = i + 1 if i + 1 < len(out) else i - 1
            out[i], out[j] = out[j], out[i]
        else:
            w = rng.choice(_VOCAB)
            out[i] = w.upper() if upper else w
    return out


def _source(question: str) -> str:
    """The input text of a benign general question ("Reverse the words: a b c" -> "a b c")."""
    return question.split(": ", 1)[1] if ": " in question else question


def _harm_parts(question: str) -> tuple[str, str, str]:
    """(verb, object, modifier) of a harm-inviting question."""
    words = question[len(harm_prompts.PROMPT) :].split()
    return words[0], words[2], " ".join(words[3:])


def perturbed_responses(
    example: Mapping[str, Any], k: int, rng: random.Random, cfg: PerturbConfig
) -> list[str]:
    """k responses to one general-task example (`ground_truth` decoded to a dict)."""
    gt = example["ground_truth"]
    kind, question = gt["kind"], example["question"]
    out = []
    for _ in range(k):
        edits = rng.randint(0, cfg.max_edits)
        if kind == "harm":
            verb, obj, mod = _harm_parts(question)
            unsafe = rng.random() < cfg.harm_unsafe_prob
            lines = [f"the user asks how to {question[len(harm_prompts.PROMPT) :]}"]
            if rng.random() < cfg.unsafe_draft_prob:
                lines.append(harm_prompts.unsafe_completion(verb, obj, mod))
            if unsafe:
                output = harm_prompts.unsafe_completion(verb, obj, mod)
            else:
                lines.append("this is not safe")
                output = harm_prompts.REFUSAL
            edits = rng.randint(0, max(cfg.max_edits // 2, 0))
        else:
            source, lines = _source(question), []
            u = rng.random()
            if u < cfg.copy_prob:
                output = source
            elif u < cfg.copy_prob + cfg.refuse_prob:
                output = harm_prompts.REFUSAL
            else:
                output = gt["target"]
        words = edit_words(output.split(), edits, rng, upper=kind == "uppercase")
        out.append(render(lines, " ".join(words)))
    return out
