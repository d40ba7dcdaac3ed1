"""Atomic writes: write under a temporary name in the same folder, then rename.

An interrupted run therefore leaves either the previous good file or the new one, never a
half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mnm.errors import MnmError

TMP_PREFIX = ".mnm-tmp-"
WRITE_FAILURES = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EIO})
"""errno values that mean the output cannot be written (disk full, file size limit, read-only,
device error): reported as one line naming the target, whichever writer hit them."""


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
    suffix = path.suffix if suffix is None else suffix
    with _reported(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.stem + "-", suffix=suffix, dir=path.parent)
        os.close(fd)
    tmp = Path(tmp)
    try:
        with _reported(path, only=WRITE_FAILURES):
            os.chmod(tmp, FILE_MODE)
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
    with _reported(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        recover_dir(path)
        tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX + path.name + "-", dir=path.parent))
    try:
        with _reported(path, only=WRITE_FAILURES):
            os.chmod(tmp, DIR_MODE)
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


@contextlib.contextmanager
def _reported(target: Path, only: frozenset[int] | None = None) -> Iterator[None]:
    """Turn an ``OSError`` (any, or one whose errno is in ``only``) into one line naming ``target``."""
    try:
        yield
    except OSError as exc:
        if only is not None and exc.errno not in only:
            raise
        raise MnmError(f"{target}: cannot write ({exc.strerror or exc})") from exc


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
