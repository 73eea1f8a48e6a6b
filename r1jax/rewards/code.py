"""The code reward: run the completion's program against the example's hidden tests, sandboxed.

The program is taken from the completion's last complete `<answer>` block (as answer_extraction
finds it), from that block's last fenced block if it has one, else the whole block; without an
answer block, from the completion's last fenced block. Fences tagged with a language other than
python/py/python3 are skipped, so a trailing ```text block of sample output is not mistaken for
the program. Extraction is a linear scan (no backtracking regex).

Tests live in the example's ground_truth, in one of two shapes (see r1jax/data/code_task.py):

    {"type": "stdio", "tests": [{"input": str, "output": str}, ...]}   # stdin -> stdout
    {"type": "assert", "setup": str, "tests": [str, ...]}               # MBPP: one assert each

A stdio test passes when the program exits 0 and its stdout equals the expected output up to
trailing whitespace on lines and trailing blank lines. An assert test runs the program and then the
assert in one sandboxed process (harness below) and passes when the process exits 0 and its last
output line is a random nonce the harness prints after the assert: so `sys.exit(0)`,
`os._exit(0)` or printing "PASS" do not pass; only deliberate introspection of the harness's own
frame could find the nonce (a known limit of in-process asserts).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from r1jax.rewards.registry import Reward, register
from r1jax.rewards.sandbox.runner import Job, Limits, Result, Sandbox
from r1jax.text.parsing import answer_block

log = logging.getLogger(__name__)

MAX_COMPLETION_CHARS = 100_000  # only the tail is searched: the answer is at the end
MAX_CODE_CHARS = 20_000  # longer programs score 0 without running
PYTHON_TAGS = ("", "python", "py", "python3")
FENCE = "```"

_HARNESS = """\
def _r1jax_check():
    import os, sys
    with open("nonce.txt", encoding="utf-8") as f:
        nonce = f.read()
    os.unlink("nonce.txt")
    with open("solution.py", encoding="utf-8") as f:
        solution = compile(f.read(), "solution.py", "exec")
    with open("test.py", encoding="utf-8") as f:
        test = compile(f.read(), "test.py", "exec")
    scope = {"__name__": "solution", "__builtins__": __builtins__}
    exec(solution, scope)
    exec(test, scope)
    sys.stdout.flush()
    os.write(1, ("\\n" + nonce + "\\n").encode())


_r1jax_check()
"""


def _is_tag(word: str) -> bool:
    return 0 < len(word) <= 20 and all(ch.isalnum() or ch in "+-#._" for ch in word)


def _last_python_fence(text: str) -> str | None:
    """Body of the last complete ``` block with no tag or a Python tag; fences pair up in order."""
    marks, i = [], text.find(FENCE)
    while i >= 0:
        marks.append(i)
        i = text.find(FENCE, i + len(FENCE))
    best = None
    for open_, close in zip(marks[0::2], marks[1::2]):
        body = text[open_ + len(FENCE) : close]
        nl = body.find("\n")
        tag = body[:nl].strip().lower() if nl >= 0 else ""
        if nl >= 0 and tag in PYTHON_TAGS:
            best = body[nl + 1 :]
        elif nl < 0 or not _is_tag(tag):
            best = body  # one-line ```code```, or code right after the fence
    return best


def extract_code(completion: str) -> str | None:
    """The program in a completion (see the module docstring), or None if there is none."""
    if not isinstance(completion, str):
        return None
    text = completion[-MAX_COMPLETION_CHARS:]
    block = answer_block(text)
    code = _last_python_fence(block if block is not None else text)
    if code is None and block is not None:
        code = block
    if code is None or not code.strip():
        return None
    return code.strip("\n")


def normalize_output(text: str) -> str:
    """Output as compared: CRLF -> LF, trailing spaces of each line and trailing blank lines gone."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def jobs_for(code: str, truth: Mapping[str, Any]) -> list[tuple[Job, Any]]:
    """One (job, expectation) per test of `truth`; the expectation is what `passed` checks."""
    kind, tests = truth.get("type"), truth.get("tests") or []
    if kind == "stdio":
        return [
            (Job(code, stdin=str(t["input"])), normalize_output(str(t["output"]))) for t in tests
        ]
    if kind == "assert":
        out = []
        for t in tests:
            nonce = os.urandom(16).hex()
            files = (
                ("solution.py", code),
                ("test.py", f"{truth.get('setup', '')}\n{t}\n"),
                ("nonce.txt", nonce),
            )
            out.append((Job(_HARNESS, files=files), ("nonce", nonce)))
        return out
    raise ValueError(f"unknown code test type {kind!r}; want 'stdio' or 'assert'")


def passed(result: Result, expected: Any) -> bool:
    """Whether one run passed its test (exit 0 and the right output / the harness's nonce)."""
    if result.status != "ok":
        return False
    if isinstance(expected, tuple):
        lines = result.stdout.rstrip("\n").split("\n")
        return lines[-1] == expected[1]
    return normalize_output(result.stdout) == expected


def score(
    sandbox: Sandbox,
    codes: Sequence[str | None],
    truths: Sequence[Mapping[str, Any]],
    mode: str,
    budget_s: float,
) -> np.ndarray:
    """Per-candidate pass fraction (or all-pass 0/1) for `codes` against `truths`.

    No code -> 0; no tests, or malformed tests (not the candidate's doing) -> NaN; a candidate cut
    off by the batch budget -> 0 (unfinished); a sandbox set-up fault -> NaN, logged. Identical
    (code, tests) pairs, common among the G samples of one prompt, run once.
    """
    out = np.zeros(len(codes), np.float32)
    keys: dict[tuple[str, str], list[int]] = {}
    jobs_of: dict[tuple[str, str], list | None] = {}
    for i, (code, truth) in enumerate(zip(codes, truths)):
        if not (isinstance(truth, Mapping) and truth.get("tests")):
            out[i] = np.nan
        elif code is not None and len(code) <= MAX_CODE_CHARS:
            try:
                key = (code, json.dumps(truth, sort_keys=True))
                if key not in jobs_of:
                    jobs_of[key] = jobs_for(code, truth)
            except (TypeError, ValueError, KeyError, AttributeError) as e:  # malformed tests
                log.warning("code_tests: malformed tests %s; scored NaN", str(e)[:200])
                out[i] = np.nan
                continue
            keys.setdefault(key, []).append(i)
    per = [jobs_of[key] for key in keys]
    # every candidate's first test, then every second test, ...: a budget cut hits candidates evenly
    order = sorted((t, c) for c, jobs in enumerate(per) for t in range(len(jobs)))
    jobs = [per[c][t][0] for t, c in order]
    results = sandbox.run_many(
        jobs, budget_s, judge=lambda j, r: passed(r, per[order[j][1]][order[j][0]][1]),
        groups=[c for _, c in order] if mode == "binary" else None,
    )  # fmt: skip
    by_cand: list[list[Result]] = [[] for _ in per]
    for (_, c), res in zip(order, results):
        by_cand[c].append(res)
    for c, idx in enumerate(keys.values()):
        rs = by_cand[c]
        if any(r.status == "setup_error" for r in rs):
            log.error(
                "code sandbox set-up failed: %s",
                next(r.detail for r in rs if r.status == "setup_error"),
            )
            value = np.nan
        elif any(r.status == "budget" for r in rs):
            value = 0.0
        else:
            frac = sum(bool(r.passed) for r in rs) / len(rs)
            value = frac if mode == "fraction" else float(frac == 1.0)
        out[idx] = value
    return out


@register("code_tests")
def code_tests(
    mode: str = "fraction",
    workers: int = 2,
    budget_s: float = 60.0,
    wall_s: float = 4.0,
    cpu_s: int = 2,
    memory_mb: int = 512,
    isolation: str = "auto",
) -> Reward:
    """Runs the extracted program against the hidden tests; `mode` "fraction" or "binary"."""
    # range: [0, 1]  (fraction of tests passed, or 1 only if all pass; NaN if the example has no tests)
    if mode not in ("fraction", "binary"):
        raise ValueError(f"code_tests mode must be 'fraction' or 'binary', got {mode!r}")
    limits = Limits(wall_s=wall_s, cpu_s=cpu_s, memory_bytes=memory_mb << 20)
    sandbox = Sandbox(limits, workers=workers, isolation=isolation)

    def fn(completions: Sequence[str], examples: Sequence[Mapping[str, Any]]) -> np.ndarray:
        codes = [extract_code(c) for c in completions]
        truths = [ex.get("ground_truth") or {} for ex in examples]
        return score(sandbox, codes, truths, mode, budget_s)

    return Reward("code_tests", fn, 0.0, 1.0)
