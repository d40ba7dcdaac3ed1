"""Thread-safe bookkeeping shared by the pipeline's stages: graph-run counters and bounded caches."""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np


class Counters:
    """Graph runs and images per graph, safe to update from many threads."""

    def __init__(self):
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._runs: dict[str, int] = {}
            self._images: dict[str, int] = {}

    def add(self, graph: str, images: int) -> None:
        with self._lock:
            self._runs[graph] = self._runs.get(graph, 0) + 1
            self._images[graph] = self._images.get(graph, 0) + images

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {"runs": dict(self._runs), "images": dict(self._images)}

    def images(self, graph: str) -> int:
        with self._lock:
            return self._images.get(graph, 0)

    def runs(self, graph: str) -> int:
        with self._lock:
            return self._runs.get(graph, 0)


class Lru:
    """A bounded mapping of arrays with least-recently-used eviction, under a lock; counts hits and misses.

    ``put`` stores a read-only copy: a row of a batch output would keep the whole batch alive
    (eviction would free nothing while a sibling row is cached), and a caller editing a returned
    array in place would change every later result. So the bound is the real memory bound, and
    what comes out of the cache cannot be edited.
    """

    def __init__(self, size: int):
        self.size = size
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key):
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
                self._data.move_to_end(key)
            return value

    def stats(self) -> dict[str, int]:
        """Lookups that hit and missed, entries held and the bound (a server's metrics report them)."""
        with self._lock:
            return {"hits": self.hits, "misses": self.misses, "entries": len(self._data), "size": self.size}

    def put(self, key, value: np.ndarray) -> np.ndarray:
        """Store a read-only copy of ``value``; return that copy."""
        stored = frozen_copy(value)
        with self._lock:
            self._data[key] = stored
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)
        return stored

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


def frozen_copy(array: np.ndarray) -> np.ndarray:
    """A read-only array that owns its memory (no view of a larger buffer)."""
    out = np.array(array, copy=True, order="C")
    out.flags.writeable = False
    return out


def read_only(array: np.ndarray) -> np.ndarray:
    """A read-only view of ``array`` (no copy)."""
    view = array.view()
    view.flags.writeable = False
    return view
