"""Finds the final answer in a completion: the last `<answer>` block, else the last `\\boxed{}`.

Completions are hostile input (a policy under RL will emit anything), so every function here is a
linear scan of a bounded-length string: no regular expression that can backtrack, no recursion.
A completion longer than MAX_CHARS is cut to its last MAX_CHARS characters, since the final
answer is at the end.
"""

from __future__ import annotations

from r1jax.text import toy_language

MAX_CHARS = 100_000
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
OPEN, CLOSE = ANSWER_OPEN, ANSWER_CLOSE
_TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)
_BOX_COMMANDS = ("\\boxed", "\\fbox")


def _tail(text: str) -> str:
    return text[-MAX_CHARS:] if len(text) > MAX_CHARS else text


def answer_block(text: str) -> str | None:
    """Content of the last complete `<answer>...</answer>` block (stripped), or None.

    "Complete" means an opening tag before the last closing tag; the opening tag used is the last
    one before that closing tag, so `<answer>a<answer>b</answer>` gives "b".
    """
    if not isinstance(text, str):
        return None
    text = _tail(text)
    end = text.rfind(CLOSE)
    if end < 0:
        return None
    start = text.rfind(OPEN, 0, end)
    if start < 0:
        return None
    return text[start + len(OPEN) : end].strip()


def _box_at(text: str, i: int) -> int:
    """Length of the box command at text[i] followed by optional spaces and '{', else 0."""
    for cmd in _BOX_COMMANDS:
        if text.startswith(cmd, i):
            j = i + len(cmd)
            while j < len(text) and text[j] == " ":
                j += 1
            if j < len(text) and text[j] == "{":
                return j + 1 - i
    return 0


def last_boxed(text: str) -> str | None:
    """Content of the last complete `\\boxed{...}` (or `\\fbox{...}`), nested braces handled.

    One pass with a stack of open braces. `\\{` and `\\}` are literal braces in LaTeX and do not
    open or close groups. Of several complete boxes the one that closes last wins, so for nested
    `\\boxed{\\boxed{1}+1}` the outer content is returned. An unclosed box is ignored.
    """
    if not isinstance(text, str):
        return None
    text = _tail(text)
    if "\\boxed" not in text and "\\fbox" not in text:
        return None
    stack: list[int] = []  # content start for a box, -1 for a plain brace group
    best: tuple[int, int] | None = None
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            width = _box_at(text, i)
            if width:
                stack.append(i + width)
                i += width
                continue
            i += 2  # skip the escaped character (covers \{ and \})
            continue
        if ch == "{":
            stack.append(-1)
        elif ch == "}" and stack:
            start = stack.pop()
            if start >= 0:
                best = (start, i)
        i += 1
    if best is None:
        return None
    return text[best[0] : best[1]].strip()


def extract_answer(text: str) -> str | None:
    """The final answer of a completion, or None when it gives none.

    The last `<answer>` block wins; when that block itself contains a complete `\\boxed{}`, the
    boxed content is the answer ("The answer is \\boxed{5}" -> "5"). Without an answer block, the
    last `\\boxed{}` of the whole completion is used (the convention of MATH-style models).
    """
    block = answer_block(text)
    if block is not None:
        boxed = last_boxed(block)
        return boxed if boxed is not None else block
    return last_boxed(text)


def gsm8k_final(text: str) -> str | None:
    """The final answer of a GSM8K solution: what follows the last '####', stripped, or None."""
    if not isinstance(text, str):
        return None
    text = _tail(text)
    i = text.rfind("####")
    if i < 0:
        return None
    out = text[i + 4 :].strip()
    return out or None


def strict_format_ok(text: str, think_opened: bool = False) -> bool:
    """Exactly one `<think>...</think>`, then exactly one non-empty `<answer>...</answer>`.

    Only whitespace may come before `<think>`, between `</think>` and `<answer>`, and after
    `</answer>`; no tag may appear anywhere else (so several blocks, text after the answer, and
    an empty answer all fail). The reasoning may be empty. With `think_opened`, the prompt already
    ends in `<think>`, so the completion must not contain one and starts with the reasoning.
    """
    if not isinstance(text, str):
        return False
    want = {THINK_OPEN: 0 if think_opened else 1, THINK_CLOSE: 1, ANSWER_OPEN: 1, ANSWER_CLOSE: 1}
    if any(text.count(tag) != n for tag, n in want.items()):
        return False
    start = 0
    if not think_opened:
        start = text.index(THINK_OPEN)
        if text[:start].strip():
            return False
        start += len(THINK_OPEN)
    think_end = text.index(THINK_CLOSE)
    answer_start, answer_end = text.index(ANSWER_OPEN), text.index(ANSWER_CLOSE)
    if not start <= think_end < answer_start < answer_end:
        return False
    between = text[think_end + len(THINK_CLOSE) : answer_start]
    answer = text[answer_start + len(ANSWER_OPEN) : answer_end]
    after = text[answer_end + len(ANSWER_CLOSE) :]
    return not between.strip() and bool(answer.strip()) and not after.strip()


def reasoning_text(text: str) -> str:
    """The reasoning of a completion: the first `<think>` block's content; lacking a complete one,
    everything before `<answer>` (or the whole text), with tags removed."""
    start, end = text.find(THINK_OPEN), text.find(THINK_CLOSE)
    if 0 <= start < end:
        return text[start + len(THINK_OPEN) : end]
    cut = text.find(ANSWER_OPEN)
    out = text if cut < 0 else text[:cut]
    for tag in _TAGS:
        out = out.replace(tag, " ")
    return out


# The readable pattern (R1's "reasoning process, then a summary"), at toy scale and without new tags:
#
#     <think>
#     7*3=21,21+2=23 vs 23 yes        reasoning: one attempt (or one step) per line, one toy
#     </think>                        language, no attempt repeated (README: "Supervised stages")
#     so 7*3+2 = 23                   summary: one line between </think> and <answer> that restates
#     <answer>7*3+2</answer>          the solution and contains the answer verbatim
#
# The reasoning may be empty (a general-task response: `<think>\n</think>\nso TRY\n<answer>TRY...`).
# The summary is what a helpfulness judge reads (`summary_text`). `readable_violation` names the
# first rule a completion breaks (the rejection-sampling statistics count them), in this order:
READABLE_RULES = ("tags", "summary", "summary_answer", "language", "repeated")


def _squash(text: str) -> str:
    return " ".join(text.split())


def summary_text(text: str) -> str | None:
    """The summary of a readable completion: the text between `</think>` and the last `<answer>`,
    whitespace-normalised; None when there is none (also for R1-Zero-format completions)."""
    if not isinstance(text, str):
        return None
    text = _tail(text)
    end = text.rfind(ANSWER_OPEN)
    start = text.rfind(THINK_CLOSE, 0, end) if end >= 0 else -1
    if start < 0:
        return None
    return _squash(text[start + len(THINK_CLOSE) : end]) or None


_VERDICTS = frozenset(
    toy_language.word(w, lang) for w in ("yes", "no") for lang in toy_language.LANGS
)


def attempt_key(line: str) -> str | None:
    """The attempt a reasoning line checks, or None for a line that checks nothing.

    An attempt is a line with a verdict ("yes"/"no" in either toy language, as Countdown's
    `7*3=21,21+2=23 vs 23 yes`); its key is the line without toy-language words, so the same
    attempt written in another language has the same key. Scratchpad steps carry no verdict and may
    repeat (`3+4=7 write 7` twice for 33+44).
    """
    words = line.split()
    if not _VERDICTS.intersection(words):
        return None
    return " ".join(w for w in words if toy_language.language_of(w) is None)


def attempt_keys(reasoning: str) -> list[str]:
    """The `attempt_key` of every attempt line of a reasoning text, in order (repeats kept)."""
    return [k for k in map(attempt_key, reasoning.splitlines()) if k is not None]


def readable_violation(text: str, think_opened: bool = False) -> str | None:
    """The first rule of READABLE_RULES that `text` breaks, or None for a readable completion.

    tags: the strict R1 tag structure, except that one summary sits between `</think>` and
    `<answer>`; summary: that summary is one non-empty line; summary_answer: it contains the answer
    (whitespace-normalised); language: the reasoning and the summary (less the answer, which may be
    a translation) use reasoning words of one toy language only; repeated: no attempt appears twice
    in the reasoning (`attempt_key`).
    """
    if not isinstance(text, str) or len(text) > MAX_CHARS:
        return "tags"
    want = {THINK_OPEN: 0 if think_opened else 1, THINK_CLOSE: 1, ANSWER_OPEN: 1, ANSWER_CLOSE: 1}
    if any(text.count(tag) != n for tag, n in want.items()):
        return "tags"
    start = 0
    if not think_opened:
        start = text.index(THINK_OPEN)
        if text[:start].strip():
            return "tags"
        start += len(THINK_OPEN)
    think_end = text.index(THINK_CLOSE)
    answer_start, answer_end = text.index(ANSWER_OPEN), text.index(ANSWER_CLOSE)
    answer = _squash(text[answer_start + len(ANSWER_OPEN) : answer_end])
    if not start <= think_end < answer_start < answer_end or not answer:
        return "tags"
    if text[answer_end + len(ANSWER_CLOSE) :].strip():
        return "tags"
    between = text[think_end + len(THINK_CLOSE) : answer_start].strip()
    if not between or "\n" in between:
        return "summary"
    summary = _squash(between)
    if answer not in summary:
        return "summary_answer"
    lines = [ln.strip() for ln in text[start:think_end].splitlines() if ln.strip()]
    restated = summary.replace(answer, " ")
    if toy_language.is_mixed("\n".join(lines) + "\n" + restated):
        return "language"
    keys = attempt_keys("\n".join(lines))
    if len(set(keys)) != len(keys):
        return "repeated"
    return None


def readable_format_ok(text: str, think_opened: bool = False) -> bool:
    """True when `text` follows the readable pattern (see READABLE_RULES)."""
    return readable_violation(text, think_opened) is None
