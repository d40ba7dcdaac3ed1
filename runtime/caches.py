"""Thread-safe bookkeeping shared by the pipeline's stages: graph-run counters and bounded caches."""

from __future__ import annotations

import threading
from collections import OrderedDict


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
    """A bounded mapping with least-recently-used eviction, under a lock; counts hits and misses."""

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

    def put(self, key, value) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
