"""Cross-request batching inside a Ray Serve replica, by Ray Serve's own ``@serve.batch``.

The replica runs the same app as ``mnm serve``; only the batcher differs: each graph gets a
``@serve.batch`` queue (``max_batch_size`` counted in images by ``batch_size_fn``,
``batch_wait_timeout_s`` from ``--max-wait-ms``) on the replica's event loop, and the pipeline's
worker threads submit their graph runs to it. Batches run one at a time on one thread and are
split back per caller by ``batching.run_calls``, exactly as in ``Batcher``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait

from mnm.runtime.server.batching import DEFAULT_WAIT_S, BatchObserver, Call, GraphRunTimeout, observe_safely, run_calls


class RayBatcher:
    """A backend wrapper whose ``run`` goes through a ``@serve.batch`` queue per graph; build it on the
    replica's event loop (in the app's lifespan)."""

    def __init__(self, backend, bundle, max_batch: int, max_wait_s: float, observe: BatchObserver,
                 wait_s: float = DEFAULT_WAIT_S):
        from ray import serve

        self.backend, self.max_batch, self._observe, self.wait_s = backend, max_batch, observe, wait_s
        self.name, self.skipped = getattr(backend, "name", "backend"), getattr(backend, "skipped", [])
        self._loop = asyncio.get_running_loop()
        self._graphs = ThreadPoolExecutor(1, thread_name_prefix="mnm-graph")
        self._waiting, self._lock = 0, threading.Lock()
        self._queues = {
            graph: serve.batch(max_batch_size=max_batch, batch_wait_timeout_s=max_wait_s,
                               batch_size_fn=lambda calls: sum(c.rows for c in calls))(self._batch_runner(graph))
            for graph in bundle.graphs
        }

    @property
    def description(self) -> str:
        return f"{self.backend.description}, Ray Serve @serve.batch batches of up to {self.max_batch}"

    def _batch_runner(self, graph: str):
        async def run_batch(calls: list[Call]) -> list:
            start = time.perf_counter()
            results = await self._loop.run_in_executor(self._graphs, run_calls, self.backend, graph, calls)
            observe_safely(self._observe, graph, sum(c.rows for c in calls), len(calls), time.perf_counter() - start)
            return results

        return run_batch

    def run(self, graph: str, feeds, outputs=None):
        call = Call(graph, feeds, None if outputs is None else list(outputs))
        with self._lock:
            self._waiting += 1
        queued = asyncio.run_coroutine_threadsafe(self._queues[graph](call), self._loop)
        try:
            if not wait([queued], self.wait_s).done:
                queued.cancel()
                raise GraphRunTimeout(f"{graph}: no graph run within {self.wait_s:g} s")
            result = queued.result()
        finally:
            with self._lock:
                self._waiting -= 1
        if isinstance(result, Exception):
            raise result
        return result

    def pending(self) -> int:
        return self._waiting

    @contextlib.contextmanager
    def job(self):
        yield

    def close(self) -> None:
        self._graphs.shutdown(wait=True)
        self.backend.close()
