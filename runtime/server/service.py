"""The long-lived part of a server: the bundle's pipeline behind the batcher, the workers, the metrics.

Requests run on a pool of ``workers`` threads (the pipeline is blocking numpy/onnxruntime code);
every graph run goes through the batcher, so concurrent requests share runs. ``batching`` picks
the batcher: ``own`` (``batching.Batcher``), ``ray`` (Ray Serve's ``@serve.batch``, inside a Ray
replica) or ``none`` (each request runs its graphs alone; the benchmark's baseline).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from mnm.errors import MnmError
from mnm.runtime.backends import create
from mnm.runtime.bundle import Bundle
from mnm.runtime.pipeline import Pipeline
from mnm.runtime.server.batching import DEFAULT_WAIT_S, Batcher, observe_safely
from mnm.runtime.server.metrics import Metrics
from mnm.runtime.server.operations import ImageLimits

DEFAULT_MAX_PIXELS = 16_000_000
"""Largest upload decoded: 16 megapixels (48 MB as RGB); phone photos fit, a bomb does not."""
DEFAULT_MAX_REQUEST_PIXELS = 64_000_000
"""Most pixels the uploads of one request decode to, together: four such photos (a few seconds of
CPU for the decoding); a grid of many large images must be downscaled by the client."""
DEFAULT_MAX_BATCH = {"ort-cpu": 4}
"""Images per merged graph run when ``--max-batch`` is not given: 4 on the CPU, where onnxruntime
already runs batch 1 near its peak and bigger batches slowed ``g_child`` (benchmarks/RESULTS.md,
"mnm serve under load"); 16 elsewhere (GPUs, where a batch of one leaves the device idle)."""


@dataclass(frozen=True)
class ServerOptions:
    """Everything a server needs to start (picklable: Ray ships it to each replica)."""

    bundle: str
    backend: str = "auto"
    threads: int | None = None
    precision: str = "auto"  # auto: INT8 graphs where the bundle has them (docs/int8.md)
    batching: Literal["own", "ray", "none"] = "own"
    max_batch: int | None = None  # None: DEFAULT_MAX_BATCH for the backend that starts
    max_wait_ms: float = 5.0
    max_queue: int = 64  # requests whose body has arrived (queued or running)
    max_uploads: int = 64  # requests whose body is arriving
    workers: int | None = None
    max_body_bytes: int = 32 * 1024 * 1024
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_request_pixels: int = DEFAULT_MAX_REQUEST_PIXELS
    max_streams: int = 16
    stream_idle_s: float = 60.0  # a stream with no message from its client for this long is closed
    allow_origins: tuple[str, ...] = ()  # browser origins that may open streams besides the server's own ("*": any)
    max_grid_images: int = 256
    retry_after_s: int = 1
    graph_wait_s: float = DEFAULT_WAIT_S  # longest a request waits for one graph run, queue included (else 503)
    body_timeout_s: float = 60.0  # a whole request body (and a stream's static image) must arrive in this time
    warmup: bool = True

    def check(self) -> ServerOptions:
        for name in ("max_batch", "max_queue", "max_uploads", "max_body_bytes", "max_pixels", "max_request_pixels",
                     "max_streams", "max_grid_images", "retry_after_s", "workers"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise MnmError(f"{name.replace('_', '-')}: must be at least 1, got {getattr(self, name)}")
        for name in ("body_timeout_s", "graph_wait_s", "stream_idle_s"):
            if getattr(self, name) <= 0:
                raise MnmError(f"{name.replace('_', '-')}: must be more than 0, got {getattr(self, name):g}")
        if self.max_wait_ms < 0:
            raise MnmError(f"max-wait-ms: must be 0 or more, got {self.max_wait_ms:g}")
        return self

    def resolved(self, backend_name: str) -> ServerOptions:
        """The options with the batch size and worker count filled in for ``backend_name``. Workers:
        enough for a full batch to gather (each request holds one while its graphs run)."""
        max_batch = self.max_batch or DEFAULT_MAX_BATCH.get(backend_name, 16)
        return replace(self, max_batch=max_batch, workers=self.workers or max(4, max_batch))


class Observed:
    """The backend itself (no cross-request batching), with each run reported to the metrics."""

    def __init__(self, backend, observe):
        self.backend, self._observe = backend, observe
        self.name, self.skipped = getattr(backend, "name", "backend"), getattr(backend, "skipped", [])

    @property
    def description(self) -> str:
        return f"{self.backend.description}, no cross-request batching"

    def run(self, graph, feeds, outputs=None):
        start = time.perf_counter()
        out = self.backend.run(graph, feeds, outputs)
        observe_safely(self._observe, graph, len(next(iter(feeds.values()))), 1, time.perf_counter() - start)
        return out

    def pending(self) -> int:
        return 0

    @contextlib.contextmanager
    def job(self):
        yield

    def close(self) -> None:
        self.backend.close()


class Service:
    """The pipeline, its batcher and workers for one bundle; ``call`` runs blocking work on a worker."""

    def __init__(self, options: ServerOptions):
        options.check()
        self.bundle = Bundle.open(options.bundle)
        backend_options = {"precision": options.precision}
        if options.threads is not None:
            backend_options["threads"] = options.threads
        backend = create(self.bundle, options.backend, **backend_options)
        self.options = options = options.resolved(backend.name)
        self.streams = 0
        self.in_flight = self.uploading = lambda: 0  # replaced by the app with its admission gate's counts
        self.metrics = Metrics(self.snapshot)
        observe = self.metrics.observe_batch
        if options.batching == "own":
            self.runner = Batcher(backend, options.max_batch, options.max_wait_ms / 1000, observe, options.graph_wait_s)
        elif options.batching == "ray":
            from mnm.runtime.server.ray_batching import RayBatcher

            self.runner = RayBatcher(backend, self.bundle, options.max_batch, options.max_wait_ms / 1000, observe,
                                     options.graph_wait_s)
        else:
            self.runner = Observed(backend, observe)
        self.pipeline = Pipeline(self.bundle, backend=self.runner, max_batch=options.max_batch)
        self.pool = ThreadPoolExecutor(options.workers, thread_name_prefix="mnm-worker")
        self._jobs, self._jobs_lock = 0, threading.Lock()
        if options.warmup:
            self._warm_up(backend)

    @property
    def image_limits(self) -> ImageLimits:
        return ImageLimits(self.options.max_pixels, self.options.max_request_pixels)

    @property
    def config(self):
        return self.bundle.config

    async def call(self, fn, *args):
        """Run ``fn(*args)`` on a worker thread and await its result."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, self._job, fn, args)

    def _job(self, fn, args):
        with self._jobs_lock:
            self._jobs += 1
        try:
            with self.runner.job():
                return fn(*args)
        finally:
            with self._jobs_lock:
                self._jobs -= 1

    def snapshot(self) -> dict:
        """The live numbers the metrics report at each scrape."""
        return {
            "in_flight": self.in_flight(),
            "uploading": self.uploading(),
            "jobs": self._jobs,
            "pending": self.runner.pending(),
            "streams": self.streams,
            "caches": self.pipeline.executor.cache_stats(),
            "counters": self.pipeline.counters.snapshot(),
        }

    def close(self) -> None:
        """Finish the running jobs, then release the batcher, sessions and caches."""
        self.pool.shutdown(wait=True)
        self.pipeline.close()

    def _warm_up(self, backend) -> None:
        """One batch-1 run per graph, so the first request does not pay for loading the sessions."""
        for name, graph in self.bundle.graphs.items():
            feeds = {t.name: np.zeros([1 if d == "batch" else d for d in t.shape], np.float32) for t in graph.inputs}
            backend.run(name, feeds)
