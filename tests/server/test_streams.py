"""WS /v1/animate under clients that leave: every exit path of a stream gives its slot back
(``mnm_animate_streams`` back to 0 after each), the refusal at ``--max-streams``, a server error."""

from __future__ import annotations

import json
import socket
import threading
import time
from contextlib import ExitStack
from types import SimpleNamespace

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.server.conftest import Server, metric
from tests.server.test_animate import ws_url

SLOT_BACK_S = 10  # generous for a busy machine: before the fix the slot never came back
STOP = json.dumps({"type": "stop"})


@pytest.fixture(scope="module")
def streams(demo):
    """A server that allows two streams at once."""
    running = Server(demo, "--max-streams", "2").wait_ready()
    yield running
    assert running.stop() == 0, running.output()


def wait_streams(server, n: int) -> float:
    """Seconds until ``mnm_animate_streams`` reads ``n``; fails after ``SLOT_BACK_S``."""
    start = time.monotonic()
    while (now := metric(server.metrics(), "mnm_animate_streams")) != n:
        assert time.monotonic() - start < SLOT_BACK_S, f"{now:g} streams still counted, expected {n}"
        time.sleep(0.02)
    return time.monotonic() - start


def ready(ws, static: bytes) -> None:
    ws.send(static)
    assert json.loads(ws.recv(timeout=60))["type"] == "ready"


# Each step leaves the client where it hangs up; ``hang_up`` ends it cleanly (close frame) or drops TCP.
STEPS = {
    "connected": lambda ws, ref: None,
    "static sent": lambda ws, ref: ws.send(ref),
    "ready": lambda ws, ref: ready(ws, ref),
    "frames sent": lambda ws, ref: (ready(ws, ref), [ws.send(ref) for _ in range(5)]),
    "unknown text message": lambda ws, ref: (ready(ws, ref), ws.send('{"type": "dance"}')),
    "frames then unknown text": lambda ws, ref: (ready(ws, ref), ws.send(ref), ws.send("hello")),
    "bad frame": lambda ws, ref: (ready(ws, ref), ws.send(b"not an image")),
    "stop sent": lambda ws, ref: (ready(ws, ref), ws.send(ref), ws.send(STOP)),
    "text instead of the static image": lambda ws, ref: ws.send("hello"),
}


@pytest.mark.parametrize("abrupt", [False, True], ids=["close", "drop"])
@pytest.mark.parametrize("step", list(STEPS))
def test_a_client_that_leaves_gives_its_slot_back(streams, refs, step, abrupt):
    for _ in range(3):
        with connect(ws_url(streams), open_timeout=30) as ws:
            STEPS[step](ws, refs[0].read_bytes())
            if abrupt:
                ws.socket.close()  # no close frame: the TCP connection just ends
        wait_streams(streams, 0)
    with connect(ws_url(streams)) as ws:  # and the server still animates
        ready(ws, refs[1].read_bytes())
        ws.send(refs[2].read_bytes())
        assert json.loads(ws.recv(timeout=60))["type"] == "frame"
        ws.send(STOP)
        while json.loads(ws.recv(timeout=60))["type"] != "done":
            pass
    wait_streams(streams, 0)


def test_twenty_clients_that_send_an_unknown_message_and_leave(streams, refs):
    """The reported leak: static image, a text message, close; 20 times."""
    for _ in range(20):
        with connect(ws_url(streams)) as ws:
            ready(ws, refs[0].read_bytes())
            ws.send("what now?")
    wait_streams(streams, 0)


def test_the_stream_over_the_limit_is_refused_with_1013_until_a_slot_frees(streams, refs):
    with ExitStack() as held:
        first, second = (held.enter_context(connect(ws_url(streams))) for _ in range(2))
        check_refusal_at_the_limit(streams, refs, first, second)


def check_refusal_at_the_limit(streams, refs, first, second):
    for ws in (first, second):
        ready(ws, refs[0].read_bytes())
    wait_streams(streams, 2)
    with connect(ws_url(streams)) as third:
        message = json.loads(third.recv(timeout=30))
        assert message["type"] == "error" and "try again later" in message["message"]
        with pytest.raises(ConnectionClosed) as closed:
            third.recv(timeout=30)
    assert closed.value.rcvd.code == 1013
    first.close()
    wait_streams(streams, 1)
    with connect(ws_url(streams)) as again:
        ready(again, refs[1].read_bytes())
    second.close()
    wait_streams(streams, 0)


def test_sigterm_closes_open_streams_and_exits_0(demo, refs):
    """Streams open (one idle, one mid-frames) when SIGTERM comes: both are closed, the server exits 0."""
    server = Server(demo).wait_ready()
    with connect(ws_url(server)) as idle, connect(ws_url(server)) as busy:
        ready(idle, refs[0].read_bytes())
        ready(busy, refs[1].read_bytes())
        for _ in range(5):
            busy.send(refs[2].read_bytes())
        wait_streams(server, 2)
        code = server.stop(timeout=30)
        for ws in (idle, busy):
            with pytest.raises(ConnectionClosed):
                while True:
                    ws.recv(timeout=30)
    assert code == 0, server.output()


@pytest.fixture
def in_process(demo):
    """The app on uvicorn in a thread of this process, so a test can break its service."""
    import uvicorn

    from mnm.runtime.server.app import create_app
    from mnm.runtime.server.service import ServerOptions, Service

    service = Service(ServerOptions(bundle=str(demo), warmup=False))
    app = create_app(service.options, service)
    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield SimpleNamespace(url=url, service=service, metrics=lambda: httpx.get(url + "/metrics", timeout=10).text)
    server.should_exit = True
    thread.join(60)
    sock.close()


def test_a_server_error_mid_stream_closes_it_with_1011_and_frees_the_slot(in_process, refs):
    with connect(ws_url(in_process)) as ws:
        ready(ws, refs[0].read_bytes())
        in_process.service.runner.close()  # every graph run fails from now on
        ws.send(refs[1].read_bytes())
        message = json.loads(ws.recv(timeout=60))
        assert message["type"] == "error" and "internal error" in message["message"]
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
    assert closed.value.rcvd.code == 1011
    wait_streams(in_process, 0)


@pytest.fixture(scope="module")
def guarded(demo):
    """Streams idle for 1 s are closed; pages from http://app.example may open streams too."""
    running = Server(demo, "--stream-idle-s", "1", "--allow-origin", "http://app.example").wait_ready()
    yield running
    assert running.stop() == 0, running.output()


def test_an_idle_stream_is_closed_and_its_slot_freed(guarded, refs):
    with connect(ws_url(guarded)) as ws:
        ready(ws, refs[0].read_bytes())
        message = json.loads(ws.recv(timeout=30))  # then nothing more is sent
        assert message["type"] == "error" and "idle" in message["message"]
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
    assert closed.value.rcvd.code == 1008
    wait_streams(guarded, 0)


def test_a_stream_from_another_origin_is_refused(guarded, refs):
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(guarded), origin="http://evil.example")
    assert refused.value.response.status_code == 403
    assert b"http://evil.example" in refused.value.response.body
    own = guarded.url  # the page the server itself serves, as a browser names it: by IP and as localhost
    for origin in (own, own.replace("127.0.0.1", "localhost"), "http://app.example", None):
        with connect(ws_url(guarded), origin=origin) as ws:
            ready(ws, refs[1].read_bytes())
    wait_streams(guarded, 0)
