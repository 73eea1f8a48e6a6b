"""The package layout is the architecture: imports run one way, and no file grows past 300 lines.

The direction (each package may import only those listed; `config_check` holds the error type and
imports nothing from r1jax, so every package may raise its errors):

    lab -> stages -> rl | eval -> sampling -> rewards -> data -> train -> model
        -> tokenizers -> text, parallel
    (main, config_base: the entry point and schema, above stages)

`lab` (the research API for notebooks) is the top layer: it may import every other package, and
nothing imports it (not even main).

`rewards/sandbox` imports nothing from r1jax outside itself. Imports inside functions count too.
"""

from __future__ import annotations

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "r1jax")
MAX_LINES = 300

LOW = ("train", "model", "tokenizers", "text", "parallel")
ALLOWED = {
    "lab": {"stages", "rl", "eval", "sampling", "rewards", "data", *LOW},
    "stages": {"rl", "eval", "sampling", "rewards", "data", *LOW},
    "rl": {"sampling", "rewards", "data", *LOW},
    "eval": {"sampling", "rewards", "data", *LOW},
    "sampling": {"model", "parallel", "train"},  # train.host_memory: compile before threads run
    "rewards": {"data", *LOW},
    "data": {"tokenizers", "text"},
    "train": {"model", "parallel"},
    "model": {"parallel"},
    "tokenizers": {"text"},
    "text": set(),
    "parallel": set(),
}
TOP = {"main", "launch", "config_base", "config_check", "__init__"}


def _modules():
    for root, _, files in os.walk(PKG):
        for f in sorted(files):
            if f.endswith(".py"):
                path = os.path.join(root, f)
                yield os.path.relpath(path, ROOT), path


def _imports(path: str) -> set[str]:
    tree = ast.parse(open(path, encoding="utf-8").read())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module == "r1jax":
                out |= {f"r1jax.{a.name}" for a in node.names}
            elif node.module.startswith("r1jax."):
                out.add(node.module)
                out |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("r1jax")}
    return out


def test_every_package_documents_what_it_may_import():
    for pkg in ALLOWED:
        with open(os.path.join(PKG, pkg, "__init__.py"), encoding="utf-8") as f:
            doc = ast.get_docstring(ast.parse(f.read())) or ""
        assert "May import:" in doc, f"r1jax/{pkg}/__init__.py must say what it may import"


def test_top_level_holds_only_entry_point_and_config():
    loose = {f[:-3] for f in os.listdir(PKG) if f.endswith(".py")}
    assert loose <= TOP, f"modules outside a package: {sorted(loose - TOP)}"
    assert {
        d for d in os.listdir(PKG) if os.path.isdir(os.path.join(PKG, d)) and d != "__pycache__"
    } == set(ALLOWED)


@pytest.mark.parametrize("rel,path", list(_modules()), ids=lambda x: x if "/" in str(x) else "")
def test_imports_follow_the_layers(rel, path):
    parts = rel.split(os.sep)
    if (
        len(parts) == 2
    ):  # top level: main/config modules may import anything but config_check nothing
        if parts[1] == "config_check.py":
            assert not {m for m in _imports(path) if m.split(".")[1] != "config_check"}
        assert not {m for m in _imports(path) if m.split(".")[1] == "lab"}, f"{rel} imports lab"
        return
    pkg = parts[1]
    in_sandbox = parts[1:3] == ["rewards", "sandbox"]
    bad = []
    for mod in sorted(_imports(path)):
        target = mod.split(".")[1]
        if pkg == "stages" and target == "config_base":  # the schema every stage checks against
            continue
        if target in ("config_check", pkg) and not (in_sandbox and target == "rewards"):
            continue
        if in_sandbox:
            if not mod.startswith("r1jax.rewards.sandbox"):
                bad.append(mod)
            continue
        if target not in ALLOWED[pkg]:
            bad.append(mod)
    assert not bad, f"{rel} imports {bad} against the layer order (see this test's docstring)"


def test_no_file_over_300_lines():
    long = []
    for folder in ("r1jax", "tests", "benchmarks", "experiments"):
        for root, _, files in os.walk(os.path.join(ROOT, folder)):
            for f in files:
                if f.endswith(".py"):
                    path = os.path.join(root, f)
                    with open(path, encoding="utf-8") as fh:
                        n = sum(1 for _ in fh)
                    if n > MAX_LINES:
                        long.append(f"{os.path.relpath(path, ROOT)} ({n})")
    assert not long, f"files over {MAX_LINES} lines: {long}"
