"""Atomic writes: write under a temporary name in the same folder, then rename.

An interrupted run therefore leaves either the previous good file or the new one, never a
half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

TMP_PREFIX = ".mnm-tmp-"


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp/mkdtemp create owner-only entries; finished ones get the usual umask-derived modes.
FILE_MODE = 0o666 & ~_current_umask()
DIR_MODE = 0o777 & ~_current_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    ``suffix`` keeps the extension for writers that choose the format from it (OpenCV, Pillow).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.stem + "-", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, FILE_MODE)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; on success it replaces ``path``.

    A previous folder at ``path`` is moved aside first and removed only after the new one
    carries the final name. A kill between those two renames leaves the previous folder under
    its aside name; the next call (or ``recover_dir``) moves it back.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_dir(path)
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX + path.name + "-", dir=path.parent))
    os.chmod(tmp, DIR_MODE)
    try:
        yield tmp
        for file in tmp.rglob("*"):
            if file.is_file():
                _fsync_file(file)
        aside = path.parent / f"{TMP_PREFIX}{path.name}-old"
        if path.exists():
            os.replace(path, aside)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        shutil.rmtree(aside, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def recover_dir(path: str | os.PathLike) -> None:
    """Restore a folder that an interrupted ``atomic_dir`` left moved aside."""
    path = Path(path)
    aside = path.parent / f"{TMP_PREFIX}{path.name}-old"
    if aside.exists():
        if path.exists():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(aside, path)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
