"""Cross-request batching: concurrent graph runs of different requests become one run of the backend.

``Batcher`` stands in front of a backend and has the backend's ``run(graph, feeds, outputs)``, so a
``Pipeline`` built on it batches every stage of every request (encoders, ``g_background``,
``g_parent``, ``extractor``, ``g_child``, the animator's frames) without the planner knowing. Calls
for the same graph, outputs and per-image input shapes are gathered, oldest first, until they hold
``max_batch`` images or the oldest has waited ``max_wait_s``; one runner thread runs each batch and
hands every caller its own rows. It does not wait when no other call can come: when every job the
server is running is already blocked in the batcher (``job()`` counts them).

Exactness: a caller gets the rows of a batch run. onnxruntime on the CPU gives bit-identical rows
for a batch and for each image alone on the bundle graphs (measured: docs/server.md), so a response
equals the one its request would get alone. GPU backends choose kernels by batch size and may
differ in the last bits; ``mnm serve --no-batching`` gives exact single-request results there.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

BatchObserver = Callable[[str, int, int, float], None]
"""Called after each run with (graph, images, calls, seconds): the metrics' hook."""
DEFAULT_WAIT_S = 120.0
"""Longest a caller waits for its graph run, queue included, before giving up (``GraphRunTimeout``)."""

log = logging.getLogger("mnm.server")


class GraphRunTimeout(TimeoutError):
    """A graph run not done within the caller's wait limit (the server answers 503)."""


def observe_safely(observe: BatchObserver, *args) -> None:
    """Report a run; a failing observer (metrics) is logged, never passed on to the run's callers."""
    try:
        observe(*args)
    except Exception:
        log.exception("the batch observer failed (the run's results are delivered)")


@dataclass
class Call:
    """One caller's graph run, waiting to join a batch."""

    graph: str
    feeds: dict[str, np.ndarray]
    outputs: list[str] | None
    rows: int = 0
    arrived: float = field(default_factory=time.monotonic)
    result: Future = field(default_factory=Future)

    def __post_init__(self):
        self.rows = len(next(iter(self.feeds.values())))

    @cached_property
    def key(self) -> tuple:
        """Calls with equal keys can share a run: same graph, outputs and per-image shapes."""
        shapes = tuple(sorted((name, array.shape[1:]) for name, array in self.feeds.items()))
        return self.graph, None if self.outputs is None else tuple(self.outputs), shapes


def run_together(backend, graph: str, calls: list[Call]) -> list[dict[str, np.ndarray]]:
    """Run ``calls`` (same graph) as one batch of ``backend`` and split the outputs back per call.

    Callers asking for different output sets get the union; each gets only what it asked for.
    Each result is a copy, so a cached row does not keep the whole batch alive.
    """
    if len(calls) == 1:
        return [backend.run(graph, calls[0].feeds, calls[0].outputs)]
    wanted = {None if c.outputs is None else tuple(c.outputs) for c in calls}
    outputs = list(next(iter(wanted))) if len(wanted) == 1 and None not in wanted else None
    feeds = {name: np.concatenate([c.feeds[name] for c in calls]) for name in calls[0].feeds}
    out = backend.run(graph, feeds, outputs)
    results, start = [], 0
    for call in calls:
        names = call.outputs if call.outputs is not None else list(out)
        results.append({k: out[k][start : start + call.rows].copy() for k in names})
        start += call.rows
    return results


def run_calls(backend, graph: str, calls: list[Call]) -> list[dict[str, np.ndarray] | Exception]:
    """``run_together``, and if the batch fails, each call alone: one bad call must not fail the others.
    A call that fails alone gets its exception in place of its outputs."""
    try:
        return run_together(backend, graph, calls)
    except Exception as exc:
        if len(calls) == 1:
            return [exc]
    return [run_calls(backend, graph, [call])[0] for call in calls]


class Batcher:
    """A backend wrapper that batches concurrent ``run`` calls (module docstring)."""

    def __init__(self, backend, max_batch: int, max_wait_s: float, observe: BatchObserver | None = None,
                 wait_s: float = DEFAULT_WAIT_S):
        self.backend, self.max_batch, self.max_wait_s, self.wait_s = backend, max_batch, max_wait_s, wait_s
        self.name = getattr(backend, "name", "backend")
        self._observe = observe or (lambda *_: None)
        self._pending: deque[Call] = deque()
        self._cond = threading.Condition()
        self._jobs = 0  # jobs running in the server's workers
        self._blocked = 0  # calls queued or running: each blocks one job
        self._closed = False
        self._runner = threading.Thread(target=self._loop, name="mnm-batcher", daemon=True)
        self._runner.start()

    @property
    def description(self) -> str:
        return f"{self.backend.description}, cross-request batches of up to {self.max_batch}"

    @property
    def skipped(self) -> list[str]:
        return getattr(self.backend, "skipped", [])

    def pending(self) -> int:
        """Calls waiting for a batch (a queue-depth metric)."""
        with self._cond:
            return len(self._pending)

    @contextlib.contextmanager
    def job(self):
        """Count a server job while it runs, so the runner knows when nobody else can join a batch."""
        with self._cond:
            self._jobs += 1
        try:
            yield
        finally:
            with self._cond:
                self._jobs -= 1
                self._cond.notify_all()

    def run(self, graph: str, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        call = Call(graph, feeds, None if outputs is None else list(outputs))
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            self._pending.append(call)
            self._blocked += 1
            self._cond.notify_all()
        if not wait([call.result], self.wait_s).done:
            with self._cond:
                if call in self._pending:  # still queued: leave the queue (a running one finishes unread)
                    self._pending.remove(call)
                    self._blocked -= 1
                    self._cond.notify_all()
            raise GraphRunTimeout(f"{graph}: no graph run within {self.wait_s:g} s")
        return call.result.result()

    def close(self) -> None:
        """Finish what is queued, stop the runner, close the backend."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._runner.join()
        self.backend.close()

    def _loop(self) -> None:
        """Run batches until closed. Nothing a batch raises ends the loop: its callers get the error."""
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                self._run(batch)
            except BaseException as exc:  # the runner must outlive anything a batch raises
                log.exception("batch runner: a batch failed outside its graph run")
                for call in batch:
                    if not call.result.done():
                        call.result.set_exception(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))

    def _next_batch(self) -> list[Call] | None:
        """The oldest call and the calls that can join it, once full, timed out, or nobody else can come."""
        with self._cond:
            while not self._pending:
                if self._closed:
                    return None
                self._cond.wait()
            first = self._pending[0]
            deadline = first.arrived + self.max_wait_s
            while True:
                batch = self._joinable(first)
                rows = sum(c.rows for c in batch)
                remaining = deadline - time.monotonic()
                if rows >= self.max_batch or remaining <= 0 or self._closed or self._blocked >= self._jobs:
                    break
                self._cond.wait(remaining)
            for call in batch:
                self._pending.remove(call)
            return batch

    def _joinable(self, first: Call) -> list[Call]:
        key, batch, rows = first.key, [first], first.rows
        for call in self._pending:
            if call is not first and call.key == key and rows + call.rows <= self.max_batch:
                batch.append(call)
                rows += call.rows
        return batch

    def _run(self, batch: list[Call]) -> None:
        start = time.perf_counter()
        try:
            results = run_calls(self.backend, batch[0].graph, batch)
        finally:
            with self._cond:
                self._blocked -= len(batch)
        seconds = time.perf_counter() - start
        for call, result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                call.result.set_exception(result)
            else:
                call.result.set_result(result)
        observe_safely(self._observe, batch[0].graph, sum(c.rows for c in batch), len(batch), seconds)
