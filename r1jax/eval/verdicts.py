"""How Countdown answers fail, and whether the model's `yes` checks the whole number.

The readable rate says how answers are written; this says why the unsolved ones are wrong, from
an evaluation's own samples (each record's `samples` and `correct`):

    python -m r1jax.eval.verdicts --evals=<run>/report/records/reasoning_rl.json

prints one JSON object per file: `outcomes`, the share of samples that are correct, gave up
(`give up` in the reasoning), stopped at a false `yes` (their last `yes` line's value is not its
target), ran out of tokens (no closed answer) or failed otherwise; and `verdict_lines`, over every
attempt line whose value is not its target: how many say `yes`, the share of those whose value
ends in the target's last digit, and the share of `yes` among the lines whose value does
(`yes_given_same_last_digit`) and among those whose value does not (`yes_given_other_last_digit`).
A model that compares whole numbers says `no` to both; one that compares the last digit says `yes`
to the first kind (README, "False yes").
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

from absl import app, flags

from r1jax.data import cold_start
from r1jax.text import toy_language
from r1jax.text.parsing import ANSWER_CLOSE, reasoning_text

_YES = {toy_language.word("yes", lang) for lang in toy_language.LANGS}
OUTCOMES = ("correct", "gave_up", "false_yes", "truncated", "other")


def outcome(sample: str, correct: bool, target: int | None = None) -> str:
    """The first of OUTCOMES that describes one sample (see the module docstring); a line's value
    is compared with `target` where given, else with the target the line writes."""
    if correct:
        return "correct"
    if ANSWER_CLOSE not in sample:
        return "truncated"
    if cold_start.gives_up(sample):
        return "gave_up"
    said_yes = [c for c in map(cold_start.checked, reasoning_text(sample).splitlines()) if c]
    said_yes = [c for c in said_yes if c[2] in _YES]
    if said_yes and said_yes[-1][0] != (str(target) if target is not None else said_yes[-1][1]):
        return "false_yes"
    return "other"


def breakdown(
    samples: Sequence[str], correct: Sequence[bool], targets: Sequence[int] | None = None
) -> dict:
    """Outcome shares and verdict-line counts of a set of Countdown samples; with `targets` (one
    per sample) lines are compared with them, else with the target each line writes (a prefix
    check, `=88 vs no`, writes only the digits that match: pass the targets)."""
    if not samples or len(samples) != len(correct):
        raise ValueError(f"{len(samples)} samples against {len(correct)} correctness flags")
    if targets is not None and len(targets) != len(samples):
        raise ValueError(f"{len(targets)} targets against {len(samples)} samples")
    counts = dict.fromkeys(OUTCOMES, 0)
    # (value ends in the target's last digit, said yes) -> lines whose value is not the target
    lines = {(same, yes): 0 for same in (True, False) for yes in (True, False)}
    for i, (text, ok) in enumerate(zip(samples, correct)):
        target = None if targets is None else int(targets[i])
        counts[outcome(text, bool(ok), target)] += 1
        for c in filter(None, map(cold_start.checked, reasoning_text(text).splitlines())):
            t = c[1] if target is None else str(target)
            if t and c[0] != t:
                lines[(c[0][-1] == t[-1], c[2] in _YES)] += 1
    n_yes = lines[(True, True)] + lines[(False, True)]
    share = lambda a, b: a / b if b else float("nan")  # noqa: E731
    return {
        "samples": len(samples),
        "outcomes": {k: v / len(samples) for k, v in counts.items()},
        "verdict_lines": {
            "lines_value_not_target": sum(lines.values()),
            "false_yes_lines": n_yes,
            "false_yes_same_last_digit": share(lines[(True, True)], n_yes),
            "yes_given_same_last_digit": share(
                lines[(True, True)], lines[(True, True)] + lines[(True, False)]
            ),
            "yes_given_other_last_digit": share(
                lines[(False, True)], lines[(False, True)] + lines[(False, False)]
            ),
        },
    }


def countdown_records(data: Mapping) -> list[Mapping]:
    """The Countdown records of an evaluation file (`records`: a list, or one list per task)."""
    records = data.get("records")
    if isinstance(records, Mapping):
        records = records.get("countdown")
    if not isinstance(records, list) or not all("correct" in r for r in records):
        raise ValueError("no Countdown `records` with `correct` flags: is it an evaluation's JSON?")
    return records


_TARGET = re.compile(r"equals (\d+)")


def record_target(record: Mapping) -> int | None:
    """The target of a Countdown record, read from its question (`... that equals 15. ...`)."""
    m = _TARGET.search(str(record.get("question", "")))
    return int(m[1]) if m else None


def main(argv: Sequence[str]) -> None:
    del argv
    evals = flags.FLAGS.evals
    if not evals:
        raise app.UsageError("--evals=<eval json>[,<eval json>...] is required")
    for path in evals:
        with open(path) as f:
            records = countdown_records(json.load(f))
        samples = [s for r in records for s in r["samples"]]
        correct = [c for r in records for c in r["correct"]]
        targets = [record_target(r) for r in records for _ in r["samples"]]
        whole = None if None in targets else targets
        print(json.dumps({"file": path, **breakdown(samples, correct, whole)}))


if __name__ == "__main__":
    # defined here, not at import: eval/readability.py defines a flag of the same name, and both
    # modules are imported into one process by the tests
    flags.DEFINE_list(
        "evals", [], "evaluation JSON files (report/records/<stage>.json, eval_*.json)"
    )
    app.run(main)
