"""Finds the final answer in a completion: the last `<answer>` block, else the last `\\boxed{}`.

Completions are hostile input (a policy under RL will emit anything), so every function here is a
linear scan of a bounded-length string: no regular expression that can backtrack, no recursion.
A completion longer than MAX_CHARS is cut to its last MAX_CHARS characters, since the final
answer is at the end.
"""

from __future__ import annotations

MAX_CHARS = 100_000
OPEN, CLOSE = "<answer>", "</answer>"
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
