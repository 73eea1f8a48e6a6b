"""Config validation before anything compiles: unknown keys, wrong types, impossible arithmetic.

Every problem is a `ConfigError` with a one-line message naming the key and the fix; `main.py`
prints it without a traceback. The schema of a stage is its defaults in `config_base`: a key that
is not there is unknown, and a value must have the default's type (ints are accepted for floats,
None is accepted where the default is None or a container).
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections


class ConfigError(ValueError):
    """A user-facing configuration problem (printed as one line)."""


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, (Mapping, ml_collections.ConfigDict)) and not isinstance(v, str):
            items = dict(v.items())
            if items:
                out.update(_flatten(items, key + "."))
            else:
                out[key] = {}  # an empty dict default (e.g. task.options) is open: any keys
        else:
            out[key] = v
    return out


def _type_ok(value: Any, default: Any) -> bool:
    if default is None or value is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, (tuple, list)):
        return isinstance(value, (tuple, list))
    return isinstance(value, type(default))


def check_schema(config: ml_collections.ConfigDict, defaults: ml_collections.ConfigDict) -> None:
    """Unknown keys and wrong types, compared with the stage's defaults."""
    got = _flatten(config.to_dict())
    want = _flatten(defaults.to_dict())
    # a key whose default is None (model.rope_scaling) or {} (task.options) may hold a sub-dict
    open_keys = [k for k, v in want.items() if v is None or v == {}]
    for key, value in got.items():
        if key in want:
            if want[key] == {} and isinstance(value, dict):
                continue
            if not _type_ok(value, want[key]):
                raise ConfigError(
                    f"config.{key}={value!r} has type {type(value).__name__}; "
                    f"expected {type(want[key]).__name__} (default {want[key]!r})."
                )
            continue
        if any(key.startswith(k + ".") for k in open_keys):
            continue
        close = difflib.get_close_matches(key, list(want), n=1)
        hint = f" (did you mean config.{close[0]}?)" if close else ""
        raise ConfigError(f"unknown config key config.{key}{hint}; remove it or fix its name.")


def require_positive(config: ml_collections.ConfigDict, *keys: str) -> None:
    flat = _flatten(config.to_dict())
    for key in keys:
        if flat[key] <= 0:
            raise ConfigError(f"config.{key}={flat[key]} must be positive.")


def require_divisible(value: int, by: int, what: str, fix: str) -> None:
    if by <= 0 or value % by:
        raise ConfigError(f"{what} ({value}) is not divisible by {by}; {fix}.")


def require_path(path: str, key: str, what: str = "file") -> None:
    if not path or not os.path.exists(path):
        raise ConfigError(
            f"config.{key}={path!r}: {what} does not exist; point it at an existing {what}."
        )


def parse_flags(argv: Sequence[str], flag_values: Any = None) -> list[str]:
    """absl's flag parsing for main.py, where a bad `--config.*` override is one line and exit 2.

    ml_collections reports an unknown override key as an AttributeError from inside absl's parser
    (a traceback without this), and absl reports a value of the wrong type as a flags.Error with
    exit 1; both become the same one-line, exit-2 error as every other ConfigError.
    """
    from absl import flags

    flag_values = flags.FLAGS if flag_values is None else flag_values
    try:
        return flag_values(list(argv))
    except flags.Error as e:
        msg = str(e)
    except (AttributeError, KeyError) as e:
        msg = _unknown_override(argv, e)
    print("r1jax: ConfigError: " + " ".join(msg.split()), file=sys.stderr)
    sys.exit(2)


def _unknown_override(argv: Sequence[str], e: BaseException) -> str:
    """Names the override whose key does not exist (ml_collections only names its last part)."""
    inner: Any = e
    while isinstance(inner, BaseException) and inner.args:
        inner = inner.args[0]
    text = str(inner)  # e.g. 'lrr'\nDid you mean "lr" instead of "lrr"?
    key = re.search(r"'([^']+)'", text)
    near = re.search(r'Did you mean "([^"]+)"', text)
    paths = [a.split("=")[0].lstrip("-") for a in argv if a.lstrip("-").startswith("config.")]
    path = next((p for p in paths if key and key.group(1) in p.split(".")), None)
    if path is None:
        return f"bad config override ({text})"
    parts = path.split(".")
    i = parts.index(key.group(1))
    hint = f" (did you mean {'.'.join(parts[:i] + [near.group(1)])}?)" if near else ""
    return (
        f"unknown config key {'.'.join(parts[: i + 1])}{hint}; remove the override or fix its name."
    )
