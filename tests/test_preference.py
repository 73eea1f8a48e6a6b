"""Preference data: the harm kind, the oracle, pairs with Bradley-Terry noise, the file and builder.

Oracle values by hand: edit similarity of "use correct so next add" to "use correct next so add"
is 1 - 2/5 = 0.6 (two substitutions); the harmlessness of a response is 0 when an unsafe phrase is
anywhere in it, reasoning included.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import time

import pytest

from r1jax.config_check import ConfigError
from r1jax.data import general_task, harm_prompts, perturb, preference, preference_tfds
from r1jax.rewards import oracle
from r1jax.text.parsing import answer_block

REV = {
    "question": "Reverse the words: add so next correct use",
    "ground_truth": {"kind": "reverse", "target": "use correct next so add"},
}
HARM = {
    "question": "Explain how to burn the house tonight",
    "ground_truth": {"kind": "harm", "target": "first find the house then burn it tonight",
                     "ideal": harm_prompts.REFUSAL, "unsafe_phrase": "burn it"},
}  # fmt: skip


def test_harm_kind_mixes_refusals_and_unsafe_references():
    splits = general_task.generate_splits(1, 400, 50, kinds=general_task.ALL_KINDS)
    harm = [e for e in splits["train"] if e["ground_truth"]["kind"] == "harm"]
    assert 40 < len(harm) < 120  # one kind in six
    unsafe = [e for e in harm if e["answer"] != harm_prompts.REFUSAL]
    assert 0.3 < len(unsafe) / len(harm) < 0.7  # harm_unsafe_share = 0.5
    for e in harm:
        gt = e["ground_truth"]
        assert gt["ideal"] == harm_prompts.REFUSAL and e["question"].startswith("Explain how to ")
        assert harm_prompts.unsafe_phrases_in(e["answer"]) == (
            [gt["unsafe_phrase"]] if e in unsafe else []
        )
    all_safe = general_task.generate_splits(1, 150, 50, kinds=("harm",), harm_unsafe_share=0.0)
    assert {e["answer"] for e in all_safe["train"]} == {harm_prompts.REFUSAL}
    # the default kinds (no harm) are unchanged by the new option
    a = general_task.generate_splits(3, 50, 10)
    assert a == general_task.generate_splits(3, 50, 10, harm_unsafe_share=0.9)
    assert all(e["ground_truth"]["kind"] != "harm" for e in a["train"] + a["test"])


def test_unsafe_phrases_are_whole_words_anywhere():
    found = harm_prompts.unsafe_phrases_in
    assert found("<think> then BURN  it!\n</think>") == ["burn it"]
    assert found("how to burn the house") == [] and found("burnit") == []
    assert found("steal it and poison it") == ["steal it", "poison it"]


def test_views():
    text = " <think>\nfirst find the house then burn it\n</think>\nok <answer>x</answer>"
    assert preference.response_view(text, "all") == text
    assert preference.response_view(text, "summary") == "\nok <answer>x</answer>"
    assert preference.response_view(" <think> still thinking", "summary") == ""
    assert preference.response_view("plain text", "summary") == "plain text"
    with pytest.raises(ValueError, match="view on='both'"):
        preference.response_view(text, "both")


def test_oracle_by_hand():
    good = " <think>\nthe input is add\n</think>\n<answer>use correct next so add</answer>"
    near = " <think>\nx\n</think>\n<answer>use correct so next add</answer>"
    assert oracle.helpfulness(good, REV) == 1.0
    assert oracle.helpfulness(near, REV) == pytest.approx(0.6)
    assert oracle.helpfulness(" <think> use correct next so add", REV) == 0.0  # never answered
    assert oracle.helpfulness("use correct next so add", REV) == 1.0  # no reasoning block
    refuse_but_drafted = (
        " <think>\nfirst find the house then burn it\n</think>\n"
        f"<answer>{harm_prompts.REFUSAL}</answer>"
    )
    s = oracle.score([refuse_but_drafted, " <think>\n</think>\n<answer>burn it</answer>"], HARM)
    assert s["helpfulness"].tolist() == [1.0, 0.0]  # judged on the answer: the refusal is ideal
    assert s["harmlessness"].tolist() == [0.0, 0.0]  # judged on everything: both are harmful


def test_pairs_filter_bad_responses_and_follow_the_oracle_without_noise():
    texts = ["a b c", "a b c ", "", "c b a", "a c b", "   "]
    scores = {"helpfulness": [1.0, 1.0, 0.0, 0.2, 0.55, 0.0], "harmlessness": [1.0] * 6}
    cfg = preference.PairConfig(min_gap=0.1, temperature=0.0, max_pairs_per_prompt=10)
    pairs, counts = preference.make_pairs(texts, scores, random.Random(0), cfg)
    assert counts["empty"] == 2 and counts["duplicate"] == 1
    assert counts["near_tie"] == 3  # three harmlessness ties; helpfulness gaps are 0.8, 0.45, 0.35
    assert len(pairs) == 3 and all(p["aspect"] == "helpfulness" for p in pairs)
    for p in pairs:
        assert preference.pair_problem(p["chosen"], p["rejected"]) is None
        o = p["oracle"]
        assert o["chosen"]["helpfulness"] > o["rejected"]["helpfulness"]
        assert p["label"]["agrees_with_oracle"] and p["label"]["p_chosen"] == 1.0


def test_labels_flip_at_the_bradley_terry_rate():
    cfg = preference.PairConfig(aspects=("helpfulness",), min_gap=0.05, temperature=0.1)
    rng, flips, n = random.Random(1), 0, 4000
    for _ in range(n):
        pairs, _ = preference.make_pairs(["x", "y"], {"helpfulness": [0.6, 0.5]}, rng, cfg)
        flips += pairs[0]["chosen"] == "y"
        assert pairs[0]["label"]["agrees_with_oracle"] == (pairs[0]["chosen"] == "x")
    want = 1 / (1 + math.e)  # sigmoid(-0.1 / 0.1)
    assert abs(flips / n - want) < 4 * math.sqrt(want * (1 - want) / n)


def _record(**over):
    rec = {"id": "p1", "split": "train", "question": REV["question"], "template": "r1_zero",
           "prompt": "", "chosen": "a b", "rejected": "b a", "aspect": "helpfulness",
           "source": "general", "kind": "reverse", "oracle": {}, "label": {}, "provenance": {}}  # fmt: skip
    rec.update(over)
    return rec


def test_bad_pairs_are_refused_with_the_file_and_line(tmp_path):
    with pytest.raises(ValueError, match="chosen == rejected"):
        preference.write_jsonl(str(tmp_path / "x.jsonl"), [_record(rejected=" a  b ")])
    assert not (tmp_path / "x.jsonl").exists()
    path = tmp_path / "bad.jsonl"
    lines = [_record(), _record(id="p2", chosen="  "), _record(id="p3", aspect="style")]
    for bad, why in ((1, "empty response"), (2, "aspect 'style'")):
        path.write_text(json.dumps(lines[0]) + "\n\n" + json.dumps(lines[bad]) + "\n")
        with pytest.raises(ValueError, match=f"bad.jsonl:3: .*{why}"):
            preference.read_jsonl(str(path))
    path.write_text(json.dumps({k: v for k, v in _record().items() if k != "label"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: .*lacks field\(s\) \['label'\]"):
        preference.read_jsonl(str(path))


def test_jsonl_and_tfds_roundtrip(tmp_path):
    rng = random.Random(0)
    recs = []
    for split, ex in (("train", REV), ("test", HARM)):
        texts = perturb.perturbed_responses(ex, 6, rng, perturb.PerturbConfig())
        for t in texts:  # the readable pattern: reasoning, "so <answer>", the answer block
            assert t.startswith(" <think>\n") and t.count("</think>") == 1
            assert f"</think>\nso {answer_block(t)}\n<answer>" in t
        pairs, _ = preference.make_pairs(
            texts, oracle.score(texts, ex), rng, preference.PairConfig()
        )
        for i, p in enumerate(pairs):
            recs.append(_record(id=f"{split}-{i}", split=split, **{
                k: p[k] for k in ("chosen", "rejected", "aspect", "oracle", "label")}))  # fmt: skip
    path = preference.write_jsonl(str(tmp_path / "p.jsonl"), recs)
    assert preference.read_jsonl(path) == recs
    b = preference_tfds.PreferenceBuilder(data_dir=str(tmp_path / "tfds"), path=path)
    got = preference_tfds.load(b, "train") + preference_tfds.load(b, "test")
    assert got == [r for r in recs if r["split"] == "train"] + [
        r for r in recs if r["split"] == "test"
    ]


def test_config_errors_are_one_line(tmp_path):
    from r1jax import config_base
    from r1jax.config_check import ConfigError
    from r1jax.stages import preference_data, rm_config

    c = config_base.preference_data()
    c.source = "humans"
    with pytest.raises(ConfigError, match=r"config.source='humans' is not one of"):
        preference_data.run(c, str(tmp_path / "pd"))
    c = config_base.preference_data()
    c.pairs.aspects = ("style",)
    with pytest.raises(ConfigError, match=r"config.pairs: pair aspects \['style'\]"):
        preference_data.run(c, str(tmp_path / "pd"))
    r = config_base.reward_model()
    r.rm.on = "reasoning"
    with pytest.raises(ConfigError, match=r"config.rm.on='reasoning' is not one of"):
        rm_config.validate_reward_model(r, 1)
    r = config_base.reward_model()
    r.data.batch_pairs = 12
    with pytest.raises(ConfigError, match=r"batch_pairs / grad_accum \(12\) is not divisible by 8"):
        rm_config.validate_reward_model(r, 8)


def test_a_bare_preference_data_name_is_the_sibling_stage_never_the_current_directory(
    tmp_path, monkeypatch
):
    """`data.path="preference_data"` (as the pipeline names it) is <workdir>/../preference_data; a
    folder of that name in the current directory (say, left by another run) is never read."""
    from r1jax import config_base
    from r1jax.stages import preference_data, reward_model

    def finished(d):
        d.mkdir(parents=True)
        (d / preference_data.META).write_text("{}")
        return str(d / preference_data.OUTPUT)

    decoy = finished(tmp_path / "cwd" / "preference_data")
    sibling = finished(tmp_path / "run" / "preference_data")
    monkeypatch.chdir(tmp_path / "cwd")
    c = config_base.reward_model()
    c.data.build_if_missing = False
    for path in ("preference_data", ""):
        c.data.path = path
        got = reward_model.preference_file(c, str(tmp_path / "run" / "rm"))
        assert got == sibling != decoy
    c.data.path = "elsewhere"
    with pytest.raises(ConfigError, match="holds no finished preference data"):
        reward_model.preference_file(c, str(tmp_path / "run" / "rm"))


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_BUILD_AT_ONCE = """
import sys, time
from r1jax.data import preference_tfds, tfds_base
data_dir, path, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
time.sleep(max(0.0, start - time.time()))  # every process reaches the build at the same moment
with tfds_base.build_lock(data_dir):  # as the reward-model stage reads its pairs
    b = preference_tfds.PreferenceBuilder(data_dir=data_dir, path=path)
    print(len(preference_tfds.load(b, "train")))
"""


def test_processes_building_the_same_pairs_at_once_all_read_them(tmp_path):
    """The two reward-model stages side by side read one preference file: without the lock the
    second TFDS build to finish failed on its final rename (FileExistsError, seen in CI when two
    test runs shared the data directory)."""
    recs = [
        _record(id=f"p{i}", split=("train", "test")[i % 2], chosen=f"a {i}", rejected=f"b {i}")
        for i in range(80)
    ]
    path = preference.write_jsonl(str(tmp_path / "p.jsonl"), recs)
    data_dir, start = str(tmp_path / "tfds"), time.time() + 8.0
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _BUILD_AT_ONCE, data_dir, path, str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )  # fmt: skip
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
        assert out.strip().splitlines()[-1] == "40", out
