"""General task family and JSONL import: deterministic builds, disjoint splits, one-line errors."""

import hashlib
import json

import numpy as np
import pytest

from r1jax.data import corpus
from r1jax.data.general_task import _PROMPTS, GeneralTask, generate_splits, split_of
from r1jax.data.jsonl_task import JsonlTask, hash_fraction, read_jsonl
from r1jax.data.tfds_base import load
from r1jax.rewards import build
from r1jax.rewards.general_match import edit_similarity, token_f1
from r1jax.text import toy_language


def test_general_splits_deterministic_disjoint_and_correct():
    a = generate_splits(seed=3, train_size=300, test_size=50)
    b = generate_splits(seed=3, train_size=300, test_size=50)
    assert a == b
    assert generate_splits(seed=4, train_size=300, test_size=50) != a
    assert len(a["train"]) == 300 and len(a["test"]) == 50
    train_q = {ex["question"] for ex in a["train"]}
    assert len(train_q) == 300 and not train_q & {ex["question"] for ex in a["test"]}
    # the test split does not depend on the train size
    assert generate_splits(seed=3, train_size=10, test_size=50)["test"] == a["test"]
    for ex in a["train"] + a["test"]:
        kind, target = ex["ground_truth"]["kind"], ex["answer"]
        source = ex["question"].split(": ", 1)[1]
        want = {
            "translate_en_zl": lambda s: toy_language.translate(s, "en", "zl"),
            "translate_zl_en": lambda s: toy_language.translate(s, "zl", "en"),
            "reverse": lambda s: " ".join(reversed(s.split())),
            "uppercase": str.upper,
            "sort": lambda s: " ".join(sorted(s.split())),
        }[kind](source)
        assert target == want == ex["ground_truth"]["target"]
        assert 3 <= ex["difficulty"] == len(source.split()) <= 8
    assert {ex["ground_truth"]["kind"] for ex in a["train"]} == {
        "translate_en_zl",
        "translate_zl_en",
        "reverse",
        "uppercase",
        "sort",
    }


_KIND_PROMPTS = tuple(_PROMPTS.values())


def test_the_pretraining_corpus_holds_general_tasks_from_the_train_side_only():
    """With `general_weight`, the toy corpus answers general tasks directly, never a test question;
    without it, the corpus is the Countdown + arithmetic one it always was (same draws)."""
    splits = generate_splits(seed=0, train_size=400, test_size=200)
    assert all(split_of(ex["question"]) == "test" for ex in splits["test"])
    assert all(split_of(ex["question"]) == "train" for ex in splits["train"])
    cfg = corpus.CorpusConfig(general_weight=1.0)
    docs = [corpus.document(0, i, cfg) for i in range(3000)]
    questions = [p.rsplit("User: ", 1)[1].split(" Assistant:")[0] for p, _, _ in docs]
    general = [(q, c) for q, (_, c, _) in zip(questions, docs) if q.startswith(_KIND_PROMPTS)]
    assert 1350 < len(general) < 1650  # half the draws, at weight 1 of 2
    for question, completion in general:
        assert split_of(question) == "train"
        target = completion.split("<answer>")[1].removesuffix("</answer>")
        assert completion == f" <think>\nso {target}\n</think>\n<answer>{target}</answer>"
        assert len(question.split(": ", 1)[1].split()) == len(target.split())
    assert not {q for q, _ in general} & {ex["question"] for ex in splits["test"]}
    # the default corpus is byte for byte the one every measured base model was trained on
    # (the hash of its first 300 documents before `general_weight` existed)
    text = "\x00".join(corpus.texts(0, 0, 300, corpus.CorpusConfig()))
    assert hashlib.sha256(text.encode()).hexdigest()[:16] == "af67c098fcb81a0b"


def test_general_builder_roundtrip(tmp_path):
    options = dict(seed=1, train_size=40, test_size=10, kinds=("reverse", "translate_en_zl"))
    train = load(GeneralTask(data_dir=str(tmp_path), **options), "train")
    again = load(GeneralTask(data_dir=str(tmp_path / "other"), **options), "train")
    assert train == again and len(train) == 40
    test = load(GeneralTask(data_dir=str(tmp_path), **options), "test")
    assert not {e["question"] for e in train} & {e["question"] for e in test}
    assert isinstance(train[0]["ground_truth"], dict) and train[0]["task"] == "general"
    with pytest.raises(ValueError, match="unknown general task kind"):
        generate_splits(seed=0, train_size=1, test_size=1, kinds=("nope",))


def test_general_match_reward():
    ex = {"ground_truth": {"kind": "reverse", "target": "number the try"}}
    texts = [
        "<think>reverse it</think> <answer> number  the try </answer>",
        "<answer>try the number</answer>",
        "number the",
        "<think>x</think> number the try",
    ]
    exact, f1, edit = (
        build([f"general_match(metric='{m}')"])[0] for m in ("exact", "token_f1", "edit")
    )
    np.testing.assert_array_equal(exact(texts, [ex] * 4), [1.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(f1(texts, [ex] * 4), [1.0, 1.0, 0.8, 1.0], rtol=1e-6)
    np.testing.assert_allclose(edit(texts, [ex] * 4), [1.0, 1 / 3, 2 / 3, 1.0], rtol=1e-6)
    assert np.isnan(exact(["x"], [{"ground_truth": {}}])[0])
    assert token_f1("", "") == edit_similarity("", "") == 1.0
    assert token_f1("a b", "c") == edit_similarity("a", "") == 0.0


def _write(path, records):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n")
    return str(path)


MATH = [
    {"problem": "What is 1/2 + 1/2?", "solution": "It is $\\boxed{1}$.", "level": "Level 1"},
    {"problem": "Simplify \\frac{2}{4}.", "solution": "\\boxed{\\frac{1}{2}}", "level": "Level 2"},
]


def test_jsonl_read_formats(tmp_path):
    recs = read_jsonl(
        _write(tmp_path / "m.jsonl", MATH + [""]),
        question_field="problem",
        answer_field="solution",
        difficulty_field="level",
        name="math",
    )
    assert [r["answer"] for r in recs] == ["1", "\\frac{1}{2}"]
    assert [r["difficulty"] for r in recs] == [1, 2] and recs[0]["task"] == "math"
    assert recs[1]["ground_truth"] == {"answer": "\\frac{1}{2}"}
    gsm = [{"question": "q1", "answer": "3*4=12\n#### 12"}, {"question": "q1", "answer": "#### 5"}]
    recs = read_jsonl(_write(tmp_path / "g.jsonl", gsm), answer_format="gsm8k")
    assert [r["answer"] for r in recs] == ["12"]  # a repeated question keeps its first record
    aime = [{"question": "q", "answer": 204}]
    assert read_jsonl(_write(tmp_path / "a.jsonl", aime))[0]["answer"] == "204"


@pytest.mark.parametrize(
    "lines, kwargs, message",
    [
        (['{"question": "q", "answer": "1"}', "{bad"], {}, r"b\.jsonl:2: bad JSON"),
        (['{"question": "q"}'], {}, r"b\.jsonl:1: record has no field 'answer'"),
        (['{"q": "x", "a": "1"}'], {"question_field": "problem"}, r":1: .*no field 'problem'"),
        (["[1, 2]"], {}, r":1: expected a JSON object"),
        (['{"question": "q", "answer": "no box"}'], {"answer_format": "boxed"}, r":1: .*no final"),
        (['{"question": "", "answer": "1"}'], {}, r":1: field 'question' is not a non-empty"),
        ([""], {}, r"no records"),
    ],
)
def test_jsonl_errors(tmp_path, lines, kwargs, message):
    path = _write(tmp_path / "b.jsonl", lines)
    with pytest.raises(ValueError, match=message) as info:
        read_jsonl(path, **kwargs)
    assert "\n" not in str(info.value)


def test_jsonl_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="JSONL file not found"):
        JsonlTask(data_dir=str(tmp_path), path=str(tmp_path / "nope.jsonl"))


def test_jsonl_builder_hash_split(tmp_path):
    records = [{"question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(60)]
    path = _write(tmp_path / "d.jsonl", records)
    builder = JsonlTask(data_dir=str(tmp_path / "data"), path=path, test_fraction=0.3)
    train, test = load(builder, "train"), load(builder, "test")
    assert len(train) + len(test) == 60 and test and train
    assert not {e["question"] for e in train} & {e["question"] for e in test}
    assert all(hash_fraction(e["question"]) < 0.3 for e in test)
    # deterministic, and independent of the order of the file
    shuffled = _write(tmp_path / "s.jsonl", records[::-1])
    again = JsonlTask(data_dir=str(tmp_path / "data2"), path=shuffled, test_fraction=0.3)
    assert sorted(e["id"] for e in load(again, "test")) == sorted(e["id"] for e in test)


def test_jsonl_builder_per_split_files(tmp_path):
    train = _write(tmp_path / "tr.jsonl", [{"question": q, "answer": "1"} for q in "abc"])
    test = _write(tmp_path / "te.jsonl", [{"question": q, "answer": "1"} for q in "cd"])
    builder = JsonlTask(data_dir=str(tmp_path / "data"), paths={"train": train, "test": test})
    assert sorted(e["question"] for e in load(builder, "train")) == ["a", "b"]  # "c" is in test
    assert sorted(e["question"] for e in load(builder, "test")) == ["c", "d"]


def test_an_empty_split_is_a_one_line_error(tmp_path):
    """Countdown over numbers up to 2 and targets up to 8 has too few problems for a 10 % test
    split: TFDS's bare AssertionError becomes a ValueError that names the task and the fix."""
    from r1jax.data import tasks

    with pytest.raises(ValueError, match=r"task 'countdown' .*no examples.*test share") as e:
        tasks.load("countdown", "test", str(tmp_path), max_number=2, max_target=8)
    assert "\n" not in str(e.value)
