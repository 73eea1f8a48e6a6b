"""The language-consistency reward of the R1 paper: the share of reasoning words in the target language.

R1 adds it during reasoning RL because R1-Zero's chains of thought mixed languages. Here the languages
are the toy ones (data/toy_language.py); a reasoning text with no word of either language scores 0.
"""

from __future__ import annotations

import numpy as np

from r1jax.rewards.registry import Reward, register
from r1jax.text import toy_language
from r1jax.text.parsing import reasoning_text


@register("language_consistency")
def language_consistency(lang: str = "en") -> Reward:
    # range: [0, 1]
    if lang not in toy_language.LANGS:
        raise ValueError(
            f"language_consistency(lang={lang!r}): known languages {sorted(toy_language.LANGS)}"
        )

    def host(completions, examples):
        del examples
        out = []
        for c in completions:
            share = toy_language.language_share(reasoning_text(c), lang)
            out.append(0.0 if share is None else share)
        return np.array(out, np.float32)

    return Reward(f"language_consistency_{lang}", host, 0.0, 1.0)
