"""SIGTERM: stop accepting, finish the requests in flight, exit 0."""

from __future__ import annotations

import signal
import time

import httpx
import pytest

from tests.server.conftest import RANDOM, Server, png
from tests.server.test_limits import finish_upload, form_body, start_stalled_upload, wait_uploading


def test_sigterm_finishes_requests_in_flight_then_exits_0(demo, library):
    """Three requests are half-uploaded when SIGTERM arrives: new connections are refused, the three
    finish uploading, run and get their images, then the server exits 0."""
    server = Server(demo).wait_ready()
    body = form_body({**RANDOM, "background": "code:3", "pose": "seed:3", "seed": "3"})
    stalled = [start_stalled_upload(server.url, body) for _ in range(3)]
    wait_uploading(server, 3)
    server.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    while "Shutting down" not in server.output():
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.05)
    with pytest.raises(httpx.TransportError):  # no new connections
        httpx.post(server.url + "/v1/mix", data=RANDOM, timeout=10)
    expected = png(library.mix(background="code:3", pose="seed:3", seed=3))
    for sock in stalled:
        status, content = finish_upload(sock, body)
        assert (status, content) == (200, expected)
    assert server.proc.wait(60) == 0, server.output()
    assert "stopped" in server.output()
