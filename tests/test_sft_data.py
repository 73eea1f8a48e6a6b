"""The SFT data format (JSONL + TFDS), epoch plans, and how data stages own their workdir.

Bad input is one line naming the file, the line and the fix; the TFDS builder returns exactly the
JSONL records; an epoch plan is a pure function of (seed, epoch, lengths) that uses every example
that fits exactly once and never cuts one; a data-set workdir refuses another run's output.
"""

from __future__ import annotations

import json
import os

import ml_collections
import numpy as np
import pytest

from r1jax.config_check import ConfigError
from r1jax.data import sft_batches, sft_format, sft_tfds
from r1jax.stages import dataset_io

REC = {"prompt": "What is 2 + 3?", "completion": " <think>\n</think>\nso 5\n<answer>5</answer>"}
REC = dict(REC, source="hand_designed", task="arithmetic")


def _write_lines(path, lines):
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize(
    "lines,message",
    [
        ([], "holds no records; regenerate it or remove it."),
        (["", "  "], "holds no records"),
        ([json.dumps(REC), "{not json"], ":2: not valid JSON"),
        (
            [json.dumps({k: v for k, v in REC.items() if k != "completion"})],
            ":1: missing field 'completion'",
        ),
        ([json.dumps(dict(REC, task=3))], ":1: field 'task' must be a string"),
        ([json.dumps(dict(REC, completion=" "))], ":1: field 'completion' is empty"),
        ([json.dumps(dict(REC, provenance=[1]))], ":1: field 'provenance' must be a JSON object"),
    ],
)
def test_bad_files_are_one_line_errors_naming_the_place(tmp_path, lines, message):
    path = _write_lines(tmp_path / "d.jsonl", lines)
    with pytest.raises(ConfigError) as e:
        sft_format.read(path)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert str(path) in str(e.value)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(ConfigError, match="does not exist; run the stage"):
        sft_format.read(str(tmp_path / "nope"))


def test_write_is_atomic_and_round_trips(tmp_path):
    records = [dict(REC, ground_truth={"answer": 5}), dict(REC, prompt="What is 1 + 1?")]
    path = str(tmp_path / "wd" / sft_format.FILENAME)
    assert sft_format.write(path, records) == 2
    assert os.listdir(tmp_path / "wd") == [sft_format.FILENAME]  # no temporary file left
    got = sft_format.read(str(tmp_path / "wd"))  # a stage workdir resolves to its data file
    assert got[0]["ground_truth"] == {"answer": 5} and got[1]["provenance"] == {}
    assert [r["prompt"] for r in got] == ["What is 2 + 3?", "What is 1 + 1?"]


def test_tfds_builder_returns_the_jsonl_records(tmp_path):
    records = [dict(REC, prompt=f"What is {i} + 1?", provenance={"seed": i}) for i in range(5)]
    records[2]["ground_truth"] = {"a": 2, "op": "+", "b": 1, "answer": 3}
    path = str(tmp_path / "d.jsonl")
    sft_format.write(path, records)
    got = sft_tfds.load(sft_tfds.SftBuilder(data_dir=str(tmp_path / "tfds"), path=path))
    assert got == sft_format.read(path)


@pytest.mark.parametrize("packing", [True, False])
def test_epoch_plan_uses_every_fitting_example_once(packing):
    rng = np.random.default_rng(0)
    lengths = [int(x) for x in rng.integers(10, 90, size=200)] + [300, 500]  # two too long
    cfg = sft_batches.BatchConfig(seq_len=127, batch_size=8, packing=packing, bucket=16, seed=3)
    plan = sft_batches.epoch_plan(lengths, 0, cfg)
    assert plan == sft_batches.epoch_plan(lengths, 0, cfg)  # pure
    assert plan != sft_batches.epoch_plan(lengths, 1, cfg)  # a new order each epoch
    assert all(len(batch) == 8 for batch in plan)
    used = sorted(i for batch in plan for row in batch for i in row)
    assert used == list(range(200))
    for batch in plan:
        length = sft_batches.row_length(batch, lengths, cfg)
        assert all(sum(lengths[i] for i in row) <= length for row in batch)  # nothing cut
        if not packing:
            assert (length - 1) % 16 == 0 and all(len(row) <= 1 for row in batch)
    share = np.mean([sft_batches.padding_share(b, lengths, cfg) for b in plan[:-1]])
    assert share < (0.1 if packing else 0.3), share


def test_data_stage_workdir_is_claimed_and_not_clobbered(tmp_path):
    wd = str(tmp_path / "data")
    cfg = ml_collections.ConfigDict({"stage": "cold_start_data", "seed": 0, "n": 1})
    assert dataset_io.claim(wd, cfg) is None  # claimed
    assert dataset_io.claim(wd, cfg) is None  # same run, not finished: redo
    dataset_io.finish(wd, [REC], {"records": 1})
    assert dataset_io.claim(wd, cfg) == {"records": 1}  # finished: nothing to do
    other = ml_collections.ConfigDict({"stage": "cold_start_data", "seed": 1, "n": 1})
    with pytest.raises(ConfigError, match=r"different run \(config.seed: 0 there, 1 here\)"):
        dataset_io.claim(wd, other)
    foreign = str(tmp_path / "foreign")
    sft_format.write(os.path.join(foreign, sft_format.FILENAME), [REC])
    with pytest.raises(ConfigError, match="was not written by this stage"):
        dataset_io.claim(foreign, cfg)
