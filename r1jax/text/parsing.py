"""Finds the final answer in a completion: the last `<answer>` block, else the last `\\boxed{}`.

Completions are hostile input (a policy under RL will emit anything), so every function here is a
linear scan of a bounded-length string: no regular expression that can backtrack, no recursion.
A completion longer than MAX_CHARS is cut to its last MAX_CHARS characters, since the final
answer is at the end.
"""

from __future__ import annotations

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
