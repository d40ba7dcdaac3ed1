"""Where a record came from: content digests of files and UTC timestamps, computed one way everywhere.

Bundles, checkpoints, engine records, benchmark reports, metric records and imported models all
name their inputs by sha256 and date themselves with ``utc_now()``; torch-free (the runtime uses it).
"""

from __future__ import annotations

import datetime
import hashlib
import os

_CHUNK = 1 << 20


def file_digest(path: str | os.PathLike, sync: bool = False) -> tuple[str, int]:
    """(sha256 hex, size in bytes) of a file; with ``sync`` also flush it to disk while it is open."""
    sha, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            sha.update(chunk)
            size += len(chunk)
        if sync:
            os.fsync(f.fileno())
    return sha.hexdigest(), size


def sha256_file(path: str | os.PathLike) -> str:
    return file_digest(path)[0]


def utc_now() -> str:
    """The current time as ISO 8601 in UTC to the second, e.g. ``2026-12-01T03:21:19Z``."""
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
