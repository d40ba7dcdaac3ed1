"""Fixtures of the batch suite: the runtime suite's tiny bundle and photos, plans and a CLI runner."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.runtime.conftest import photo, photos, tiny_bundle  # noqa: F401  (fixtures shared with the runtime suite)
from tests.util import run_cli


def mix_cli(bundle, *args, **kwargs):
    """``mnm mix BUNDLE ARGS`` in a subprocess where importing torch fails."""
    return run_cli("mix", bundle, *map(str, args), block_torch=True, **kwargs)


def write_plan(path: Path, rows: list[tuple], header: str = "background,pose,shape,texture,out") -> Path:
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def mixed_plan(path: Path, refs: list[Path], n: int = 64) -> Path:
    """``n`` rows mixing image references, ``code:K``, ``seed:N`` and ``random`` in every factor;
    rows repeat references (so grouping matters) and a few set their own output names."""
    def cell(kind: str, i: int) -> str:
        choice = (i * 7 + len(kind)) % 4
        if choice == 0:
            return str(refs[(i // 3 + len(kind)) % len(refs)])
        if choice == 1:
            return "random"
        if kind == "pose" or (choice == 2 and kind == "background"):
            return f"seed:{i}"
        return f"code:{i % 2}"
    rows = [(cell("background", i), cell("pose", i), cell("shape", i), cell("texture", i),
             f"named-{i}.jpg" if i % 9 == 4 else "") for i in range(n)]
    return write_plan(path, rows)


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every finished image under ``folder`` (not the manifest, not a temporary file), by name."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and p.suffix in (".png", ".jpg") and not p.name.startswith(".")}


@pytest.fixture(scope="module")
def refs(photos):  # noqa: F811
    return photos
