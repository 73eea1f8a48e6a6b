"""The toy sentencepiece tokenizer: deterministic training, exact round trips, R1 tags, odd ids.

Training twice on the same texts gives the same model bytes (so a cached tokenizer in a workdir
and a retrained one agree). decode(encode(s)) == s for arbitrary strings (hypothesis: unicode,
runs of spaces, newlines, tabs, control characters, characters never seen in training). The R1
tags are one piece each, also inside text; special ids are dropped and ids outside the vocabulary
decode to U+FFFD instead of raising.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from r1jax.data import corpus as corpus_lib
from r1jax.tokenizers import sentencepiece as tok_lib

VOCAB = 400


def _texts() -> list[str]:
    return corpus_lib.texts(7, 0, 200, corpus_lib.CorpusConfig())


@pytest.fixture(scope="module")
def tok():
    return tok_lib.train(_texts(), VOCAB)


def test_training_is_deterministic(tok):
    again = tok_lib.train(_texts(), VOCAB)
    assert again.proto == tok.proto
    other = tok_lib.train(_texts()[:100], VOCAB)
    assert other.proto != tok.proto  # the bytes do depend on the data


def test_save_and_load_give_the_same_model(tok, tmp_path):
    path = str(tmp_path / "sub" / "tok.model")
    tok.save(path)
    loaded = tok_lib.SentencePieceTokenizer.load(path)
    assert loaded.proto == tok.proto
    text = "<think>\n12+34=46</think> <answer>46</answer>"
    assert loaded.encode(text) == tok.encode(text)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tok_lib.SentencePieceTokenizer.load(str(tmp_path / "missing.model"))


def test_special_ids_and_size(tok):
    assert (tok.pad_id, tok.bos_id, tok.eos_id) == (
        tok_lib.PAD_ID,
        tok_lib.BOS_ID,
        tok_lib.EOS_ID,
    )
    assert 256 < tok.vocab_size <= VOCAB  # byte fallback reserves 256 pieces


@given(st.text(max_size=200))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_round_trip_is_exact(tok, text):
    assert tok.decode(tok.encode(text)) == text


@pytest.mark.parametrize(
    "text",
    ["", " ", "   ", "\n", "\n\n  \n", "\t x \t", " leading", "trailing ", "a  b   c",
     "ünïcödé — 漢字 🙂", "\x00\x01", "\r\n", "é" * 50, "<think>", "</answer>\n",
     "<think><think></think>", "<thinking>", "12345678901234567890", "  <answer> 7 </answer>  "],
)  # fmt: skip
def test_round_trip_edge_cases(tok, text):
    assert tok.decode(tok.encode(text)) == text


def test_digits_are_split(tok):
    ids = tok.encode("12345")
    assert [tok.id_to_piece(i) for i in ids] == list("12345")


@pytest.mark.parametrize("tag", tok_lib.R1_TAGS)
def test_r1_tags_are_single_pieces(tok, tag):
    tid = tok.tag_id(tag)
    assert tid is not None and tok.id_to_piece(tid) == tag
    assert tok.encode(tag) == [tid]
    ids = tok.encode(f"x{tag}y 1{tag}\n")
    assert ids.count(tid) == 2
    assert tok.decode([tid]) == tag


def test_unknown_tag_is_none(tok):
    assert tok.tag_id("<nonexistent-tag>") is None


def test_specials_are_dropped_and_out_of_range_ids_decode_to_replacement(tok):
    ids = tok.encode("ab")
    specials = [tok.bos_id, *ids[:1], tok.pad_id, *ids[1:], tok.eos_id]
    assert tok.decode(specials) == "ab"
    v = tok.vocab_size
    assert tok.decode([*ids[:1], v, *ids[1:]]) == "a\ufffdb"
    assert tok.decode([v + 1000, -1]) == "\ufffd\ufffd"
    assert tok.decode([]) == ""
