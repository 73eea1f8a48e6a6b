"""Tokenizers behind one small interface: a sentencepiece wrapper and its deterministic trainer.

The R1 tags (`<think>`, `</think>`, `<answer>`, `</answer>`) are single pieces so that rewards and
the fused GRPO step can check the format on token ids. The toy tokenizer normalises nothing (identity
rule, no whitespace collapsing, byte fallback for unseen characters) so that decode(encode(s)) == s for
every string, and splits digits so that numbers are written digit by digit.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence
from typing import Protocol

import sentencepiece as spm

R1_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


class Tokenizer(Protocol):
    """What the rest of r1jax needs from a tokenizer (toy sentencepiece or a real model's own)."""

    pad_id: int
    bos_id: int
    eos_id: int
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def tag_id(self, tag: str) -> int | None: ...


class SentencePieceTokenizer:
    """A sentencepiece model plus the ids r1jax needs; `decode` stops at nothing and drops specials."""

    def __init__(self, model_proto: bytes):
        self.proto = model_proto
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
        self.vocab_size = self.sp.get_piece_size()
        self.pad_id = self.sp.pad_id() if self.sp.pad_id() >= 0 else PAD_ID
        self.bos_id = self.sp.bos_id()
        self.eos_id = self.sp.eos_id()
        self._specials = {self.pad_id, self.bos_id, self.eos_id}

    @classmethod
    def load(cls, path: str) -> SentencePieceTokenizer:
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"tokenizer model {path!r} does not exist; train one with r1jax.tokenizers.sentencepiece.train "
                "or point config.tokenizer.path at an existing .model file."
            )
        with open(path, "rb") as f:
            return cls(f.read())

    def save(self, path: str) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(self.proto)
        os.replace(tmp, path)

    def encode(self, text: str) -> list[int]:
        return list(self.sp.encode(text))

    def decode(self, ids: Sequence[int]) -> str:
        """Text of the ids; specials are dropped and ids beyond the vocabulary (a model's padded
        rows, which a policy can still sample) decode to U+FFFD instead of raising."""
        out, run = [], []
        for i in map(int, ids):
            if i in self._specials:
                continue
            if 0 <= i < self.vocab_size:
                run.append(i)
                continue
            out.append(self.sp.decode(run))
            out.append("\ufffd")
            run = []
        out.append(self.sp.decode(run))
        return "".join(out)

    def tag_id(self, tag: str) -> int | None:
        i = self.sp.piece_to_id(tag)
        return None if i == self.sp.unk_id() else int(i)

    def id_to_piece(self, i: int) -> str:
        return self.sp.id_to_piece(int(i))


def train(
    texts: Iterable[str],
    vocab_size: int,
    extra_symbols: Sequence[str] = (),
    model_type: str = "bpe",
) -> SentencePieceTokenizer:
    """Trains a sentencepiece model deterministically (one thread, fixed order, no sampling).

    `vocab_size` is an upper bound (byte fallback reserves 256 pieces; a small corpus may use fewer).
    """
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(texts)),
        model_writer=buf,
        vocab_size=vocab_size,
        model_type=model_type,
        user_defined_symbols=list(R1_TAGS) + ["\n"] + list(extra_symbols),
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=False,
        split_digits=True,
        byte_fallback=True,
        allow_whitespace_only_pieces=True,
        hard_vocab_limit=False,
        pad_id=PAD_ID,
        unk_id=UNK_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        num_threads=1,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        max_sentence_length=1 << 16,
        minloglevel=2,
    )
    return SentencePieceTokenizer(buf.getvalue())
