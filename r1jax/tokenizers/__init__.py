"""Tokenizers: the deterministic sentencepiece trainer/wrapper of the toy path and the Hugging
Face tokenizer with its chat template. Both expose the same small interface (encode, decode,
bos/eos/pad ids, tag ids).

May import: text.
"""

from typing import Any


def stop_ids(tok: Any) -> tuple[int, ...]:
    """The tokenizer's extra end-of-turn ids (Hugging Face `stop_ids`), EOS excluded."""
    extra = getattr(tok, "stop_ids", ()) if tok is not None else ()
    return tuple(int(i) for i in extra if int(i) != tok.eos_id)
