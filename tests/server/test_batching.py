"""Cross-request batching: concurrent requests share graph runs and each still gets its own answer."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait

import httpx
import numpy as np
import pytest

from mnm.runtime.backends import create
from mnm.runtime.bundle import Bundle
from mnm.runtime.server.batching import Batcher, GraphRunTimeout
from tests.server.conftest import Server, metric, upload

CLIENTS = 16


def test_onnxruntime_cpu_rows_equal_alone_and_in_a_batch(demo):
    """The premise of exact batching: on ort-cpu a batch of 8 gives each image's solo outputs bit for bit."""
    bundle = Bundle.open(demo)
    backend = create(bundle, "ort-cpu")
    rng = np.random.default_rng(0)
    for name, graph in bundle.graphs.items():
        feeds = {t.name: rng.standard_normal([8 if d == "batch" else d for d in t.shape]).astype(np.float32)
                 for t in graph.inputs}
        together = backend.run(name, feeds)
        for i in range(8):
            alone = backend.run(name, {k: v[i : i + 1] for k, v in feeds.items()})
            for output, value in alone.items():
                np.testing.assert_array_equal(value[0], together[output][i], err_msg=f"{name}.{output} row {i}")
    backend.close()


def test_batcher_merges_concurrent_calls_exactly(demo):
    """Threads calling the Batcher at once: fewer runs than calls, every caller gets its own rows."""
    bundle = Bundle.open(demo)
    seen = []
    batcher = Batcher(create(bundle, "ort-cpu"), max_batch=8, max_wait_s=0.5,
                      observe=lambda graph, images, calls, s: seen.append(calls))
    rng = np.random.default_rng(1)
    inputs = [{"z": rng.standard_normal((1, 32)).astype(np.float32),
               "b": np.eye(16, dtype=np.float32)[[i]]} for i in range(8)]
    start = threading.Barrier(8)

    def call(feeds):
        with batcher.job():
            start.wait()
            return batcher.run("g_background", feeds)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, inputs))
    alone = [batcher.backend.run("g_background", feeds) for feeds in inputs]
    for got, want in zip(results, alone, strict=True):
        np.testing.assert_array_equal(got["background"], want["background"])
    assert sum(seen) == 8 and max(seen) > 1
    batcher.close()


def test_sixteen_concurrent_clients_equal_their_single_requests(demo, refs):
    """16 clients at once, each its own references and seed: each answer equals that request alone,
    and /metrics shows graph runs that merged several requests."""
    server = Server(demo, "--max-wait-ms", "50").wait_ready()
    try:
        def request(i: int) -> bytes:
            files = [("background", upload(refs[i % 8])), ("texture", upload(refs[(i + 3) % 8]))]
            data = {"pose": f"seed:{i}", "shape": f"code:{i % 4}", "seed": str(i)}
            response = httpx.post(server.url + "/v1/mix", files=files, data=data, timeout=120)
            assert response.status_code == 200, response.text
            return response.content

        with ThreadPoolExecutor(CLIENTS) as pool:
            together = list(pool.map(request, range(CLIENTS)))
        text = server.metrics()
        alone = [request(i) for i in range(CLIENTS)]  # one at a time: no batch partners
        assert together == alone
        runs = metric(text, "mnm_batch_calls_count", graph="g_child")
        single = metric(text, "mnm_batch_calls_bucket", graph="g_child", le="1.0")
        assert metric(text, "mnm_batch_calls_sum", graph="g_child") == CLIENTS
        assert runs < CLIENTS and single < runs, text  # some g_child runs served several requests
    finally:
        assert server.stop() == 0, server.output()


def test_batcher_never_waits_for_requests_that_cannot_come(demo):
    """With an endless max wait, a call still runs as soon as every running job is blocked in the
    batcher: alone, and after the only other job finishes without a graph run."""
    bundle = Bundle.open(demo)
    batcher = Batcher(create(bundle, "ort-cpu"), max_batch=16, max_wait_s=3600.0)
    feeds = {"z": np.zeros((1, 32), np.float32), "b": np.eye(16, dtype=np.float32)[[0]]}
    other_started, other_may_end = threading.Event(), threading.Event()

    def other_job():
        with batcher.job():
            other_started.set()
            other_may_end.wait(60)

    def lone_job():
        with batcher.job():
            return batcher.run("g_background", feeds)

    with ThreadPoolExecutor(2) as pool:
        assert pool.submit(lone_job).result(timeout=60)["background"].shape == (1, 3, 32, 32)
        pool.submit(other_job)
        assert other_started.wait(60)
        waiting = pool.submit(lone_job)  # the other job might still call: the batch waits for it...
        with pytest.raises(TimeoutError):
            waiting.result(timeout=1.0)
        other_may_end.set()  # ...until it ends
        assert waiting.result(timeout=60)["background"].shape == (1, 3, 32, 32)
    batcher.close()


def in_thread(fn, *args, timeout: float = 30):
    """``fn(*args)`` on a daemon thread, its result or exception, or a test failure after ``timeout``
    (a daemon, so a caller blocked forever cannot hang the test run)."""
    out = Future()
    threading.Thread(target=lambda: _settle(out, fn, args), daemon=True).start()
    if not wait([out], timeout).done:
        pytest.fail(f"no answer within {timeout} s")
    return out.result()


def _settle(out: Future, fn, args) -> None:
    try:
        out.set_result(fn(*args))
    except Exception as exc:
        out.set_exception(exc)


FEEDS = {"z": np.zeros((1, 32), np.float32), "b": np.eye(16, dtype=np.float32)[[0]]}


def test_the_runner_survives_an_observer_that_raises(demo):
    """The metrics hook raising after a run: the caller still gets its rows, and the next call runs."""
    def broken_observer(*_):
        raise ValueError("observer bug")

    batcher = Batcher(create(Bundle.open(demo), "ort-cpu"), max_batch=4, max_wait_s=0.0, observe=broken_observer)
    for _ in range(3):
        assert in_thread(batcher.run, "g_background", FEEDS)["background"].shape == (1, 3, 32, 32)
    batcher.close()


def test_a_callers_wait_is_bounded(demo):
    """The runner held up (a slow observer): a queued call gives up after its wait limit with
    GraphRunTimeout, leaves the queue, and calls after the hold-up run normally."""
    holding, release = threading.Event(), threading.Event()

    def slow_observer(*_):
        holding.set()
        release.wait(60)

    batcher = Batcher(create(Bundle.open(demo), "ort-cpu"), max_batch=1, max_wait_s=0.0, observe=slow_observer,
                      wait_s=0.5)
    first = Future()
    threading.Thread(target=lambda: _settle(first, batcher.run, ("g_background", FEEDS)), daemon=True).start()
    assert holding.wait(60)
    with pytest.raises(GraphRunTimeout, match="0.5 s"):
        in_thread(batcher.run, "g_background", FEEDS)
    assert batcher.pending() == 0
    release.set()
    assert first.result(timeout=60)["background"].shape == (1, 3, 32, 32)
    holding.clear()
    assert in_thread(batcher.run, "g_background", FEEDS)["background"].shape == (1, 3, 32, 32)
    batcher.close()
