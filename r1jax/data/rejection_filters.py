"""The filters of rejection sampling: which verified samples become SFT data.

R1 samples many responses per prompt from the converged reasoning-RL model, keeps the correct ones,
and "filters out chain-of-thought with mixed languages, long paragraphs, and code blocks". At toy
scale, per sample and in this order (the first failure is what the statistics count):

    correct    the task's rule verifier says 1 (computed by the stage, passed in)
    length     not truncated, at most `max_tokens` tokens (0 = no cap), no reasoning line longer
               than `max_line_chars` characters (an overlong "paragraph")
    language   the reasoning uses one toy language (not mixed)
    repeated   no attempt is repeated (text.parsing.attempt_key)
    format     the readable pattern (text.parsing.readable_violation), the strict R1-Zero format,
               or none
then per prompt: `dedup` drops a sample whose whitespace-normalised text was already kept, and
`per_prompt` keeps at most m samples (the first m in sampling order).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from r1jax.text import toy_language
from r1jax.text.parsing import (
    attempt_keys,
    readable_format_ok,
    reasoning_text,
    strict_format_ok,
)

FILTERS = ("correct", "length", "language", "repeated", "format", "dedup", "per_prompt")
FORMATS = ("readable", "r1_zero", "none")


@dataclasses.dataclass(frozen=True)
class FilterConfig:
    format: str = "readable"
    language_mixing: bool = True
    repeated_attempts: bool = True
    max_tokens: int = 0
    max_line_chars: int = 160
    dedup: bool = True
    keep_per_prompt: int = 2

    def __post_init__(self):
        if self.format not in FORMATS:
            raise ValueError(f"filters.format={self.format!r} is not one of {FORMATS}")
        if self.keep_per_prompt < 1:
            raise ValueError(f"keep_per_prompt={self.keep_per_prompt} must be >= 1")


def first_failure(
    text: str, n_tokens: int, truncated: bool, correct: bool, cfg: FilterConfig
) -> str | None:
    """The first per-sample filter that rejects the sample, or None when it passes them all."""
    if not correct:
        return "correct"
    reasoning = reasoning_text(text)
    too_long = cfg.max_tokens > 0 and n_tokens > cfg.max_tokens
    if truncated or too_long or any(len(ln) > cfg.max_line_chars for ln in reasoning.splitlines()):
        return "length"
    if cfg.language_mixing and toy_language.is_mixed(reasoning):
        return "language"
    if cfg.repeated_attempts:
        keys = attempt_keys(reasoning)
        if len(set(keys)) != len(keys):
            return "repeated"
    if cfg.format == "readable" and not readable_format_ok(text):
        return "format"
    if cfg.format == "r1_zero" and not strict_format_ok(text):
        return "format"
    return None


def select(
    texts: Sequence[str],
    lengths: Sequence[int],
    truncated: Sequence[bool],
    correct: Sequence[bool],
    cfg: FilterConfig,
) -> tuple[list[int], dict[str, int], list[str | None]]:
    """(indices of the kept samples of one prompt, {filter: samples it removed}, and per sample the
    filter that removed it or None)."""
    removed = dict.fromkeys(FILTERS, 0)
    kept: list[int] = []
    seen: set[str] = set()
    verdicts: list[str | None] = []
    for i, text in enumerate(texts):
        why = first_failure(text, lengths[i], truncated[i], correct[i], cfg)
        norm = " ".join(text.split())
        if why is None and cfg.dedup and norm in seen:
            why = "dedup"
        if why is None and len(kept) >= cfg.keep_per_prompt:
            why = "per_prompt"
        verdicts.append(why)
        if why is not None:
            removed[why] += 1
            continue
        seen.add(norm)
        kept.append(i)
    return kept, removed, verdicts
