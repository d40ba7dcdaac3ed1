"""Atomic writes: write under a temporary name in the same folder, then rename.

An interrupted run therefore leaves either the previous good file or the new one, never a
half-written file under the final name. A killed process leaves its temporary entry behind; the
name carries the writer's process id and host (``.mnm-tmp-<pid>.<host>-...``), so the next write
into that folder removes the entries of writers that are gone.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from mnm.errors import MnmError

TMP_PREFIX = ".mnm-tmp-"
WRITE_FAILURES = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EIO})
"""errno values that mean the output cannot be written (disk full, file size limit, read-only,
device error): reported as one line naming the target, whichever writer hit them."""


HOST_TAG = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
"""This machine in temporary names: a folder shared between machines keeps the others' entries."""
_OWNED = re.compile(rf"^{re.escape(TMP_PREFIX)}(\d+)\.([0-9a-f]{{8}})-")
_swept: set[Path] = set()
_swept_lock = threading.Lock()


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
        remove_stale(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path.stem), suffix=suffix, dir=path.parent)
        os.close(fd)
    tmp = Path(tmp)
    try:
        with _reported(path, only=WRITE_FAILURES):
            os.chmod(tmp, FILE_MODE)
            yield tmp
            _fsync_file(tmp)
            os.replace(tmp, path)
            _fsync_dir(path.parent)  # the rename itself survives a power loss
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
        remove_stale(path.parent)
        tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path.name), dir=path.parent))
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


def remove_stale(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary entries that writers on this machine which are no longer running left
    in ``folder`` (a killed export or ``mix --batch``); the removed paths. Each folder is swept once
    per process, so a long batch of writes into one folder lists it once."""
    folder = Path(folder).resolve()
    with _swept_lock:
        if folder in _swept:
            return []
        _swept.add(folder)
    removed = []
    with contextlib.suppress(OSError):
        for entry in folder.iterdir():
            match = _OWNED.match(entry.name)
            if match and match.group(2) == HOST_TAG and not _running(int(match.group(1))):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed.append(entry)
    return removed


def _temp_prefix(name: str) -> str:
    return f"{TMP_PREFIX}{os.getpid()}.{HOST_TAG}-{name}-"


def _running(pid: int) -> bool:
    """Whether a process with this id exists here (one of another user counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, OverflowError):  # not a valid process id: not a writer that is still running
        return False
    return True


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
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):  # file systems that cannot sync a folder
            raise
    finally:
        os.close(fd)
