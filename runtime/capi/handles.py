"""The C API's handles: open objects by number, so a closed or made-up handle is an error, not a crash.

A C handle (``mnm_pipeline *``) carries a number, never the address of anything: numbers are not
reused, so a handle used after ``close`` finds nothing and the caller gets ``MNM_ERR_CLOSED``.
Closing while other threads are inside calls on the handle is safe: ``close`` takes the handle out
of the table at once (later calls fail), and the object's ``close`` runs when the last call using it
returns.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


class ClosedHandle(Exception):
    """A handle that is not open (closed, never opened, or of another kind)."""


@dataclass
class _Entry:
    value: object
    kind: str
    on_close: Callable[[], None]
    users: int = 0
    closing: bool = False


class Handles:
    """Numbered objects of several kinds, with the calls in flight on each counted."""

    def __init__(self):
        self._lock = threading.Lock()
        self._next = 1
        self._open: dict[int, _Entry] = {}

    def add(self, value, kind: str, on_close: Callable[[], None]) -> int:
        with self._lock:
            number = self._next
            self._next += 1
            self._open[number] = _Entry(value, kind, on_close)
            return number

    @contextmanager
    def use(self, number: int, kind: str, why: str = "") -> Iterator:
        """The open object ``number`` of ``kind`` for the duration of a call (``why``: the message if it is not)."""
        with self._lock:
            entry = self._open.get(number)
            if entry is None or entry.kind != kind:
                raise ClosedHandle(why or f"not an open {kind} (closed, or never returned by mnm_{kind}_open)")
            entry.users += 1
        try:
            yield entry.value
        finally:
            self._release(entry)

    def close(self, number: int, kind: str) -> None:
        """Take ``number`` out of the table; its ``on_close`` runs now or when its last call returns."""
        with self._lock:
            entry = self._open.get(number)
            if entry is None or entry.kind != kind:
                raise ClosedHandle(f"not an open {kind} (already closed, or never returned by mnm_{kind}_open)")
            del self._open[number]
            entry.closing = True
            idle = entry.users == 0
        if idle:
            entry.on_close()

    def _release(self, entry: _Entry) -> None:
        with self._lock:
            entry.users -= 1
            last = entry.closing and entry.users == 0
        if last:
            entry.on_close()
