"""A small LaTeX-to-sympy-syntax converter whose output is safe to hand to parse_expr.

The output language is tiny: ASCII digits, names of letters and digits, + - * / ** ( ) and commas.
Every name is a symbol, a whitelisted function or constant (sympy_worker.FUNCTIONS/CONSTANTS),
never a Python keyword and never one of the sympy constructors in the worker's global dict; there
are no dots except decimal points, no quotes, brackets, attribute access or subscripts. So even
though parse_expr evaluates its input with eval, the only thing it can do is build a sympy
expression (whose size is bounded by MAX_SYMPY_CHARS; its evaluation time by the worker's limit).
Anything outside this language (unknown commands, intervals, inequalities, `!`, `|x|`) is
unparseable and returns None.
"""

from __future__ import annotations

import keyword
import re

from r1jax.rewards import sympy_worker

MAX_SYMPY_CHARS = 600
MAX_PARTS = 8  # comma-separated answers compared as a set
MAX_DEPTH = 40

# LaTeX command -> sympy syntax; any other command makes the text unparseable.
_COMMANDS = {"cdot": "*", "times": "*", "div": "/", "pi": "pi", "infty": "oo", "ln": "log"}
_COMMANDS.update({f: f for f in sympy_worker.FUNCTIONS if f != "sqrt"})
_COMMANDS.update({"arcsin": "asin", "arccos": "acos", "arctan": "atan"})
_FUNCTION_NAMES = frozenset(sympy_worker.FUNCTIONS)
_ALLOWED = re.compile(r"[0-9A-Za-z+\-*/().,]*")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_RESERVED = frozenset(sympy_worker.GLOBAL_NAMES)


class _Unparseable(ValueError):
    pass


def _group(s: str, i: int, depth: int) -> tuple[str, int]:
    """Converts the argument at s[i] (a `{...}` group or one character) -> (sympy text, next i)."""
    if i < len(s) and s[i] == "{":
        inner, j = _convert(s, i + 1, depth + 1, closing="}")
        return f"({inner})", j
    if i < len(s) and s[i].isascii() and s[i].isalnum():
        return s[i], i + 1
    raise _Unparseable("missing argument")


def _after_operand(out: list[str]) -> bool:
    """True when the text so far ends in an operand, so a following name is a product."""
    return bool(out) and bool(out[-1]) and (out[-1][-1].isalnum() or out[-1][-1] == ")")


def _convert(s: str, i: int, depth: int, closing: str = "") -> tuple[str, int]:
    if depth > MAX_DEPTH:
        raise _Unparseable("too deep")
    out = []
    while i < len(s):
        ch = s[i]
        if ch == closing:
            return "".join(out), i + 1
        if ch == "\\":
            m = _NAME.match(s, i + 1)
            if not m:
                raise _Unparseable(f"command {s[i : i + 2]!r}")
            name, i = m.group(0), m.end()
            if i < len(s) and s[i] == " ":
                i += 1
            if name == "frac":
                num, i = _group(s, i, depth)
                den, i = _group(s, i, depth)
                out.append(f"(({num})/({den}))")
            elif name == "sqrt" and i < len(s) and s[i] == "[":
                end = s.find("]", i)
                if end < 0:
                    raise _Unparseable("sqrt index")
                index, _ = _convert(s[i + 1 : end], 0, depth + 1)
                arg, i = _group(s, end + 1, depth)
                out.append(f"(({arg})**(1/({index})))")
            elif name == "sqrt":
                if _after_operand(out):
                    out.append("*")
                arg, i = _group(s, i, depth)
                out.append(f"sqrt({arg})")
            elif name in _COMMANDS:
                if _COMMANDS[name][0].isalpha() and _after_operand(out):
                    out.append("*")  # "2\pi", "i\pi": implicit product, not one long name
                out.append(_COMMANDS[name])
                if out[-1] in _FUNCTION_NAMES and i < len(s) and s[i] not in "({":
                    arg, i = _group(s, i, depth)
                    out.append(f"({arg})")
                elif out[-1] not in "*/" and i < len(s) and s[i].isalnum():
                    out.append("*")
            else:
                raise _Unparseable(f"command \\{name}")
        elif ch == "{":
            inner, i = _convert(s, i + 1, depth + 1, closing="}")
            out.append(f"({inner})")
        elif ch == "^":
            if i + 1 < len(s) and s[i + 1] in "-(":
                out.append("**")  # x^-1, x^(2): Python reading
                i += 1
            else:
                arg, i = _group(s, i + 1, depth)
                out.append(f"**{arg}")
        elif ch in "+-*/().," or (ch.isascii() and ch.isalnum()):
            out.append(ch)
            i += 1
        else:
            raise _Unparseable(f"character {ch!r}")
    if closing:
        raise _Unparseable(f"missing {closing!r}")
    return "".join(out), i


def _check_names(text: str) -> str:
    """Validates the converted text and makes implicit products explicit ("2x", "x(", ")(").

    Raises _Unparseable for characters outside the language, dots that are not decimal points,
    `***` or `//`, Python keywords, the worker's constructor names and over-long names.
    """
    if len(text) > MAX_SYMPY_CHARS or not _ALLOWED.fullmatch(text):
        raise _Unparseable("characters")
    if re.search(r"(?<!\d)\.|\.(?!\d)|\*\*\*|//", text):
        raise _Unparseable("operator")
    # a number literal followed by a letter is a product: "2x" -> "2*x"; this also keeps Python
    # from reading "1e999", "0x1f" or "2j" as one (float, hex, complex) literal
    text = re.sub(r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)(?=[A-Za-z])", r"\1*", text)
    for m in _NAME.finditer(text):
        word = m.group(0)
        if keyword.iskeyword(word) or word in _RESERVED or len(word) > 24:
            raise _Unparseable(f"name {word!r}")
    return re.sub(
        r"([A-Za-z][A-Za-z0-9]*|\d|\))\(",
        lambda m: m.group(0) if m.group(1) in _FUNCTION_NAMES else m.group(1) + "*(",
        text,
    )


def _split_top(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def to_sympy_syntax(normalized: str) -> list[str] | None:
    """Sympy-syntax strings of the comma-separated parts of a normalised answer, or None."""
    try:
        text, _ = _convert(normalized, 0, 0)
        parts = _split_top(_check_names(text))
    except (_Unparseable, RecursionError):
        return None
    if not 0 < len(parts) <= MAX_PARTS or any(not p for p in parts):
        return None
    return parts
