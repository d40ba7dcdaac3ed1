"""Running the bundle's graphs for planned mixes: batching, the cached stages, and counting.

``g_background`` runs once per distinct (z_bg, b), ``g_parent`` once per distinct (z_pose, p)
(code mode) and ``extractor`` once per distinct shape/pose reference (feature mode): their results
are cached on the bytes of their inputs, and each (encoder, reference) code likewise. Only
``g_child`` runs per combination. Every graph runs in batches of at most ``max_batch`` images.

With ``concurrent=True`` independent graph runs of one request go side by side: the encoders of
different references, and ``g_background`` beside ``g_parent`` or ``extractor``, each with its
backend's intra-op threads. It is off by default: on this project's 2-core CPU at batch 1 it
gains nothing over one run after the other with both cores in each (0.85-1.06x in the idle run
of benchmarks/RESULTS.md, "Levers", where the workers spin briefly between operators and every
extra thread competes for the two cores). A machine with more cores than one graph keeps busy
may gain from it: ``benchmarks/compare_reference.py`` measures it.

Thread safety: backends' ``run`` is thread-safe, the caches and the counters take a lock for each
access, and graphs run outside those locks. Two threads that miss the same cache entry at once
both compute it (same result; the counters show both runs).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from mnm.errors import MnmError
from mnm.runtime.bundle import Bundle
from mnm.runtime.caches import Counters, Lru
from mnm.runtime.planner import EncodeJobs, Plan

DEFAULT_MAX_BATCH = 16
DEFAULT_CACHE_SIZE = 256
"""Entries per cache (codes, backgrounds, shape features); at paper scale a shape feature is 1 MB."""


class Executor:
    """The graph runs behind a ``Pipeline``: ``backend`` runs graphs of ``bundle`` in chunks of ``max_batch``."""

    def __init__(self, bundle: Bundle, backend, max_batch: int = DEFAULT_MAX_BATCH,
                 cache_size: int = DEFAULT_CACHE_SIZE, concurrent: bool = False):
        if max_batch < 1:
            raise MnmError(f"max_batch must be at least 1, got {max_batch}")
        self.bundle, self.backend, self.max_batch = bundle, backend, max_batch
        self.counters = Counters()
        self._codes = Lru(cache_size * 4)
        self._backgrounds = Lru(cache_size)
        self._features = Lru(cache_size)
        # At most four independent runs at once (the four encoders); the caller's thread runs one.
        self._pool = ThreadPoolExecutor(3, thread_name_prefix="mnm-graph") if concurrent else None

    @property
    def concurrent(self) -> bool:
        return self._pool is not None

    def clear_caches(self) -> None:
        for cache in (self._codes, self._backgrounds, self._features):
            cache.clear()

    def cache_stats(self) -> dict[str, dict[str, int]]:
        """Hits, misses and entries of each cache: codes, backgrounds, shape features."""
        return {"codes": self._codes.stats(), "backgrounds": self._backgrounds.stats(),
                "shape_features": self._features.stats()}

    def close(self) -> None:
        self.clear_caches()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def together(self, *calls: Callable[[], object]) -> list:
        """Results of independent ``calls``, side by side when concurrent (the first in this thread)."""
        if self._pool is None or len(calls) < 2:
            return [call() for call in calls]
        futures = [self._pool.submit(call) for call in calls[1:]]
        first = calls[0]()
        return [first, *(future.result() for future in futures)]

    def run(self, graph: str, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        """Run ``graph`` over the batch in chunks of ``max_batch``, counting runs and images."""
        n = len(next(iter(feeds.values())))
        parts = []
        for start in range(0, n, self.max_batch):
            chunk = {k: np.ascontiguousarray(v[start : start + self.max_batch], np.float32) for k, v in feeds.items()}
            parts.append(self.backend.run(graph, chunk, outputs))
            self.counters.add(graph, len(next(iter(chunk.values()))))
        return parts[0] if len(parts) == 1 else {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def encode(self, jobs: EncodeJobs) -> dict[tuple[str, str], np.ndarray]:
        """(encoder graph, digest) → code vector; each pair computed once and cached."""
        found, missing = {}, {}
        for key, ref in jobs.items():
            value = self._codes.get(key)
            if value is None:
                missing.setdefault(key[0], []).append((key, ref))
            else:
                found[key] = value
        for graph in missing:
            if graph not in self.bundle.graphs:
                raise MnmError(f"{self.bundle.path}: the bundle has no {graph} graph")

        def encoder(graph: str, items: list) -> Callable[[], np.ndarray]:
            images = np.stack([ref.array for _, ref in items])
            return lambda: self.run(graph, {"image": images})[graph.removeprefix("enc_")]

        outputs = self.together(*(encoder(graph, items) for graph, items in missing.items()))
        for items, values in zip(missing.values(), outputs, strict=True):
            for (key, _), value in zip(items, values, strict=True):
                found[key] = self._codes.put(key, value)
        return found

    def backgrounds(self, plans: list[Plan]) -> list[np.ndarray]:
        """The background image per plan, from the cache or ``g_background``."""
        keys = [(p.z_bg.tobytes(), p.b.tobytes()) for p in plans]
        return self._cached_stage(
            self._backgrounds, keys, "g_background",
            lambda idx: {"z": np.stack([plans[i].z_bg for i in idx]), "b": np.stack([plans[i].b for i in idx])},
            "background",
        )

    def shape_features(self, plans: list[Plan]) -> list[np.ndarray]:
        """φ per plan: given, S(reference) (feature mode) or g_parent(z_pose, p) (code mode)."""
        result: list[np.ndarray | None] = [p.shape_feature for p in plans]
        extract = [i for i, p in enumerate(plans) if p.shape_feature is None and p.feature_ref is not None]
        parent = [i for i, p in enumerate(plans) if p.shape_feature is None and p.feature_ref is None]
        if extract:
            sub = [plans[i] for i in extract]
            values = self._cached_stage(
                self._features, [("S", p.feature_ref.digest) for p in sub], "extractor",
                lambda idx: {"image": np.stack([sub[i].feature_ref.array for i in idx])}, "shape_feature",
            )
            for i, v in zip(extract, values, strict=True):
                result[i] = v
        if parent:
            sub = [plans[i] for i in parent]
            values = self._cached_stage(
                self._features, [("P", p.z_pose.tobytes(), p.p.tobytes()) for p in sub], "g_parent",
                lambda idx: {"z": np.stack([sub[i].z_pose for i in idx]), "p": np.stack([sub[i].p for i in idx])},
                "shape_feature",
            )
            for i, v in zip(parent, values, strict=True):
                result[i] = v
        return result

    def compose(self, plans: list[Plan]) -> list[dict[str, np.ndarray]]:
        """Cached background and shape stages, then g_child per plan in batches."""
        backgrounds, features = self.together(lambda: self.backgrounds(plans), lambda: self.shape_features(plans))
        out = self.run("g_child", {
            "shape_feature": np.stack(features),
            "c": np.stack([p.c for p in plans]),
            "background": np.stack(backgrounds),
        })
        return [
            {**{k: out[k][i] for k in out}, "background": backgrounds[i], "shape_feature": features[i]}
            for i in range(len(plans))
        ]

    def _cached_stage(self, cache: Lru, keys: list, graph: str, feeds_of, output: str) -> list[np.ndarray]:
        """Look each key up in ``cache``; run ``graph`` once over the distinct misses."""
        values, misses = {}, {}
        for i, key in enumerate(keys):
            if key in values or key in misses:
                continue
            value = cache.get(key)
            if value is None:
                misses[key] = i
            else:
                values[key] = value
        if misses:
            firsts = list(misses.values())
            out = self.run(graph, feeds_of(firsts))[output]
            for key, value in zip(misses, out, strict=True):
                values[key] = cache.put(key, value)
        return [values[key] for key in keys]
