"""The server's Prometheus metrics: requests, errors, latency, batch sizes, cache hits, queue depth.

Written with ``prometheus_client`` (the reference implementation of the text format: escaping,
cumulative histogram buckets, HELP/TYPE lines) into a registry of this server's own, so two apps in
one process (tests, Ray replicas) never share counters. Numbers that already live elsewhere (the
pipeline's graph counters, its cache hits, the queue) are read at scrape time by a collector.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
ENDPOINTS = ("/v1/mix", "/v1/grid", "/v1/encode", "/v1/generate", "/v1/info", "/healthz", "/metrics")


class Metrics:
    """The metric objects and the scrape; ``snapshot`` returns the live numbers the collector reports."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, snapshot: Callable[[], dict]):
        disable_created_metrics()  # no *_created series: they double the output and nobody graphs them
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("mnm_http_requests", "HTTP requests answered, by endpoint and status",
                                ["endpoint", "status"], registry=registry)
        self.errors = Counter("mnm_http_errors", "HTTP requests answered with an error status (4xx, 5xx)",
                              ["endpoint", "status"], registry=registry)
        self.latency = Histogram("mnm_http_request_duration_seconds", "Time from request to the end of the "
                                 "response", ["endpoint"], buckets=LATENCY_BUCKETS, registry=registry)
        self.batch_images = Histogram("mnm_batch_images", "Images per graph run (cross-request batches)",
                                      ["graph"], buckets=BATCH_BUCKETS, registry=registry)
        self.batch_calls = Histogram("mnm_batch_calls", "Request stages merged into one graph run", ["graph"],
                                     buckets=BATCH_BUCKETS, registry=registry)
        self.graph_seconds = Histogram("mnm_graph_run_seconds", "Time of one graph run", ["graph"],
                                       buckets=LATENCY_BUCKETS, registry=registry)
        self.frames = Counter("mnm_animate_frames", "WebSocket animation frames by outcome "
                              "(answered, dropped, failed)", ["outcome"], registry=registry)
        self.frame_latency = Histogram("mnm_animate_frame_seconds", "Time from a frame's arrival to its answer",
                                       buckets=LATENCY_BUCKETS, registry=registry)
        registry.register(_Live(snapshot))

    def observe_batch(self, graph: str, images: int, calls: int, seconds: float) -> None:
        self.batch_images.labels(graph).observe(images)
        self.batch_calls.labels(graph).observe(calls)
        self.graph_seconds.labels(graph).observe(seconds)

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        if status >= 400:
            self.errors.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def scrape(self) -> bytes:
        return generate_latest(self.registry)


class _Live:
    """Reads the queue, the caches and the graph counters when Prometheus scrapes."""

    def __init__(self, snapshot: Callable[[], dict]):
        self.snapshot = snapshot

    def describe(self):
        return []

    def collect(self):
        s = self.snapshot()
        yield _gauge("mnm_requests_uploading", "Work requests whose body is arriving", s["uploading"])
        yield _gauge("mnm_requests_in_flight", "Work requests whose body has arrived (queued or running)",
                     s["in_flight"])
        yield _gauge("mnm_jobs_running", "Requests running on a worker thread", s["jobs"])
        yield _gauge("mnm_batch_queue_depth", "Graph runs waiting to join a batch", s["pending"])
        yield _gauge("mnm_animate_streams", "Open WebSocket animation streams", s["streams"])
        hits = CounterMetricFamily("mnm_cache_hits", "Cache lookups that found the entry", labels=["cache"])
        misses = CounterMetricFamily("mnm_cache_misses", "Cache lookups that missed", labels=["cache"])
        entries = GaugeMetricFamily("mnm_cache_entries", "Entries held per cache", labels=["cache"])
        for cache, stats in s["caches"].items():
            hits.add_metric([cache], stats["hits"])
            misses.add_metric([cache], stats["misses"])
            entries.add_metric([cache], stats["entries"])
        yield from (hits, misses, entries)
        runs = CounterMetricFamily("mnm_graph_runs", "Graph runs of the pipeline's chunks", labels=["graph"])
        images = CounterMetricFamily("mnm_graph_images", "Images through each graph", labels=["graph"])
        for graph, n in s["counters"]["runs"].items():
            runs.add_metric([graph], n)
            images.add_metric([graph], s["counters"]["images"].get(graph, 0))
        yield from (runs, images)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


class Observe:
    """ASGI middleware: one request count and latency sample per HTTP request, by route."""

    def __init__(self, app, metrics: Callable[[], Metrics | None]):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def record_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            metrics = self.metrics()
            if metrics is not None:
                path = scope["path"]
                endpoint = path if path in ENDPOINTS else "other"
                metrics.observe_request(endpoint, status, time.perf_counter() - start)
