"""Dependencies run one way (docs/architecture.md, "Layers"): every import of every module, function
bodies included, is read from the source and checked against the allowed graph."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"mnm": "mnm", "runtime": "mnm.runtime", "training": "mnm.training", "export": "mnm.export"}
"""Source folder -> the package it installs as (pyproject's package-dir)."""
LAYERS = ("core", "runtime", "training", "export", "cli")
"""Lowest first: a module may import its own layer and the layers before it, never one after."""


def layer_of(module: str) -> str:
    """The layer of an ``mnm`` module: ``mnm.cli`` and ``mnm.__main__`` (the CLI's entry point) are the
    CLI, ``mnm.runtime``, ``mnm.training`` and ``mnm.export`` their own layer, the rest of ``mnm`` core."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in ("cli", "__main__"):
        return "cli"
    if len(parts) > 1 and parts[1] in LAYERS:
        return parts[1]
    return "core"


def module_name(path: Path, root: Path, folder: str) -> str:
    parts = list(path.relative_to(root / folder).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([FOLDERS[folder], *parts])


def imported(tree: ast.Module, module: str, is_package: bool) -> list[tuple[int, str]]:
    """``(line, name)`` for every import from ``mnm`` anywhere in the file; ``from a import b`` gives
    ``a.b`` (``b`` may be a module: ``from mnm import export``), relative imports are resolved."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[: len(module.split(".")) - node.level + is_package]
                base = ".".join([*package, *([base] if base else [])])
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return sorted((line, name) for line, name in found if name == "mnm" or name.startswith("mnm."))


def violations(root: Path = ROOT) -> tuple[list[str], int]:
    """Every import against the allowed direction, as ``file:line: layer imports target (layer)``; and
    how many modules were read."""
    found, modules = [], 0
    for folder in FOLDERS:
        for path in sorted((root / folder).rglob("*.py")):
            module = module_name(path, root, folder)
            source = layer_of(module)
            modules += 1
            tree = ast.parse(path.read_text(), str(path))
            for line, target in imported(tree, module, path.name == "__init__.py"):
                if LAYERS.index(layer_of(target)) > LAYERS.index(source):
                    found.append(f"{path.relative_to(root)}:{line}: {source} imports {target} ({layer_of(target)})")
    return found, modules


def test_every_import_runs_toward_the_core():
    found, modules = violations()
    assert modules > 100  # the four folders were read
    assert found == [], "imports against docs/architecture.md's layers:\n" + "\n".join(found)


def test_an_import_against_the_layers_is_caught_even_inside_a_function(tmp_path):
    for folder in FOLDERS:
        (tmp_path / folder).mkdir()
    (tmp_path / "runtime" / "__init__.py").write_text("")
    (tmp_path / "runtime" / "engines.py").write_text(
        "from mnm.errors import MnmError\n\n\ndef check():\n    from mnm.export import engine_record\n")
    (tmp_path / "mnm" / "summary.py").write_text("def counts():\n    from mnm import export\n")
    (tmp_path / "training" / "launcher.py").write_text("import mnm.cli\nfrom mnm.runtime import bundle\n")
    (tmp_path / "export" / "specs.py").write_text("from . import rewrites\nfrom ..training import loop\n")
    found, modules = violations(tmp_path)
    assert modules == 5
    assert found == [
        "mnm/summary.py:2: core imports mnm.export (export)",
        "runtime/engines.py:5: runtime imports mnm.export.engine_record (export)",
        "training/launcher.py:1: training imports mnm.cli (cli)",
    ]


def test_layers_of_modules():
    assert [layer_of(m) for m in ("mnm", "mnm.demo", "mnm.cli.demo_files", "mnm.__main__", "mnm.runtime.bundle",
                                  "mnm.training.loop", "mnm.export.rewrites.phase")] == [
        "core", "core", "cli", "cli", "runtime", "training", "export"]
