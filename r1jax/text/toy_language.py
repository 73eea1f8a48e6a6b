"""Two toy languages for the reasoning words: English ("en") and a made-up second language ("zl").

R1-Zero's traces mixed languages; the toy corpus reproduces that by switching some traces from one
vocabulary to the other mid-trace, and the language-consistency reward (the share of reasoning words
in the target language) has something to fix. The lists are parallel: word i of "en" translates to
word i of "zl". No word appears in both languages, and none is a number or an operator, so a word's
language is unambiguous.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

EN = (
    "try",
    "yes",
    "no",
    "so",
    "answer",
    "add",
    "carry",
    "digit",
    "write",
    "then",
    "total",
    "multiply",
    "subtract",
    "borrow",
    "check",
    "works",
    "fails",
    "left",
    "right",
    "step",
    "result",
    "is",
    "and",
    "the",
    "with",
    "make",
    "use",
    "number",
    "done",
    "again",
    "wrong",
    "correct",
    "stop",
    "next",
    "first",
    "last",
    "keep",
    "give",
    "up",
    "not",
    "found",
    "value",
)
ZL = (
    "vek",
    "sa",
    "nu",
    "tam",
    "resk",
    "plom",
    "dov",
    "cif",
    "skri",
    "pos",
    "tol",
    "krat",
    "mink",
    "prun",
    "kon",
    "vala",
    "falt",
    "lin",
    "ras",
    "pas",
    "rez",
    "es",
    "ke",
    "la",
    "kun",
    "fa",
    "uzo",
    "nom",
    "fin",
    "ankor",
    "mal",
    "bon",
    "halt",
    "sek",
    "prim",
    "ulti",
    "tenu",
    "dona",
    "sur",
    "ne",
    "trov",
    "vel",
)
LANGS: dict[str, tuple[str, ...]] = {"en": EN, "zl": ZL}
assert len(EN) == len(ZL) == len(set(EN) | set(ZL)) // 2, (
    "toy languages must be parallel and disjoint"
)

_TO = {(src, dst): dict(zip(LANGS[src], LANGS[dst])) for src in LANGS for dst in LANGS}
_WORD_LANG = {w: lang for lang, words in LANGS.items() for w in words}
_WORD = re.compile(r"[^\W\d_]+")


def word(w: str, lang: str) -> str:
    """The `lang` word for English word `w`."""
    return _TO[("en", lang)][w]


def language_of(w: str) -> str | None:
    """'en', 'zl', or None for a token that is not a reasoning word of either language."""
    return _WORD_LANG.get(w.lower())


def translate(text: str, src: str, dst: str) -> str:
    """Replaces every `src` reasoning word by its `dst` translation; everything else is kept."""
    table = _TO[(src, dst)]
    return _WORD.sub(lambda m: table.get(m.group(0), m.group(0)), text)


def reasoning_words(text: str) -> list[tuple[str, str]]:
    """(word, language) for every word of `text` that belongs to one of the toy languages."""
    out = []
    for m in _WORD.finditer(text):
        lang = language_of(m.group(0))
        if lang is not None:
            out.append((m.group(0), lang))
    return out


def language_share(text: str, lang: str) -> float | None:
    """Share of reasoning words in `lang`; None when the text has no reasoning word at all."""
    words = reasoning_words(text)
    if not words:
        return None
    return sum(1 for _, w_lang in words if w_lang == lang) / len(words)


def is_mixed(text: str, langs: Sequence[str] = ("en", "zl")) -> bool:
    """True when the text uses reasoning words of more than one language."""
    return len({w_lang for _, w_lang in reasoning_words(text) if w_lang in langs}) > 1
