"""Overload and bad input: 503 + Retry-After when the queue is full, a JSON 4xx for every client
mistake, never a 500, and the server keeps serving."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from tests.hardening.conftest import write_bomb_png
from tests.server.conftest import RANDOM, Server, metric, upload

MAX_QUEUE = 2
MAX_BODY = 1024 * 1024


@pytest.fixture(scope="module")
def strict(demo):
    """A server with a queue of 2, 1 MiB bodies and 1-megapixel images."""
    running = Server(demo, "--max-queue", str(MAX_QUEUE), "--max-body-mb", "1", "--max-pixels", "1000000").wait_ready()
    yield running
    assert running.stop() == 0, running.output()


def form_body(fields: dict[str, str], boundary: str = "mnmtestboundary") -> bytes:
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in fields.items()]
    return ("".join(parts) + f"--{boundary}--\r\n").encode()


def start_stalled_upload(url: str, body: bytes) -> socket.socket:
    """Send the headers and half the body of a /v1/mix request, then stall: the request holds its place."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    head = (f"POST /v1/mix HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary=mnmtestboundary"
            f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    sock.sendall(head + body[: len(body) // 2])
    return sock


def finish_upload(sock: socket.socket, body: bytes) -> tuple[int, bytes]:
    sock.sendall(body[len(body) // 2 :])
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


def wait_in_flight(server: Server, n: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while metric(server.metrics(), "mnm_requests_in_flight") < n:
        assert time.monotonic() < deadline, "the stalled uploads never counted as in flight"
        time.sleep(0.05)


def test_queue_full_gives_503_then_serves_again(strict):
    body = form_body({**RANDOM, "background": "code:1", "pose": "seed:1"})
    stalled = [start_stalled_upload(strict.url, body) for _ in range(MAX_QUEUE)]
    wait_in_flight(strict, MAX_QUEUE)
    response = httpx.post(strict.url + "/v1/mix", data=RANDOM, timeout=30)
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["type"] == "overloaded" and "busy" in response.json()["error"]
    assert httpx.get(strict.url + "/healthz", timeout=10).status_code == 200  # GETs are never refused
    for sock in stalled:  # the requests that held the queue complete normally
        status, content = finish_upload(sock, body)
        assert status == 200 and content.startswith(b"\x89PNG")
    response = httpx.post(strict.url + "/v1/mix", data=RANDOM, timeout=30)
    assert response.status_code == 200
    assert metric(strict.metrics(), "mnm_http_errors_total", endpoint="/v1/mix", status="503") >= 1


def named(**request) -> dict:
    """``request`` with every factor it leaves out named random: each row shows its own problem, not an
    omitted factor (its own 422, tests/server/test_factors_given.py)."""
    given = {name for name, _ in request.get("files", [])} | set(request.get("data", {})) | set(request.get("json", {}))
    rest = {k: v for k, v in RANDOM.items() if k not in given}
    key = "json" if "json" in request else "data"
    return {**request, key: {**rest, **request.get(key, {})}}


def bad_requests(tmp_path, refs):
    truncated = refs[0].read_bytes()[:300]
    text = tmp_path / "notes.png"
    text.write_text("this is not an image\n")
    bomb = write_bomb_png(tmp_path / "bomb.png", 12_000)
    huge = json.dumps({"background": "random", "pad": "x" * (MAX_BODY + 10)})
    yield "truncated upload", 422, named(files=[("background", ("cut.png", truncated, "image/png"))]), "truncated"
    yield "not an image", 422, named(files=[("background", upload(text))]), "not a recognised image"
    yield "decompression bomb", 413, named(files=[("background", upload(bomb))]), "pixels"
    yield "huge JSON body", 413, dict(content=huge, headers={"content-type": "application/json"}), "over the limit"
    yield "huge streamed body", 413, dict(content=(b"x" * 65536 for _ in range(40)),
                                          headers={"content-type": "application/json"}), "over the limit"
    yield "seed not a number", 422, named(data={"seed": "abc"}), "seed"
    yield "seed negative", 422, named(json={"seed": -3}), "seed"
    yield "factor of the wrong type", 422, named(json={"background": 5}), "background"
    yield "mode unknown", 422, named(data={"mode": "dream"}), "mode"
    yield "format unknown", 422, named(data={"format": "gif"}), "format"
    yield "unknown factor spec", 422, named(data={"texture": "banana"}), "unknown factor spec"
    yield "a server path as a spec", 422, named(data={"texture": "/etc/passwd"}), "unknown factor spec"
    yield "pose has no code", 422, named(data={"pose": "code:1"}), "pose"
    yield "code out of range", 422, named(data={"texture": "code:99"}), "out of range"
    yield "unknown form field", 422, named(data={"colour": "red"}), "unknown form field"
    yield "unknown JSON field", 422, named(json={"colour": "red"}), "colour"
    yield "bad base64", 422, named(json={"background": {"image": "!!!"}}), "base64"
    yield "not JSON", 400, dict(content=b"{nope", headers={"content-type": "application/json"}), "not valid JSON"
    yield "no content type", 415, dict(content=b"hello"), "multipart/form-data"
    yield "box outside the image", 422, named(files=[("background", upload(refs[1]))],
                                             data={"box": "60,40,30,30"}), "box"
    yield "feature mode without a pose image", 422, named(data={"mode": "feature"}), "pose"


def test_bad_inputs_get_a_json_4xx_and_the_server_stays_up(strict, tmp_path, refs):
    for name, status, request, words in bad_requests(tmp_path, refs):
        response = httpx.post(strict.url + "/v1/mix", timeout=60, **request)
        assert response.status_code == status, f"{name}: {response.status_code} {response.text}"
        body = response.json()
        assert body["status"] == status and body["type"] and "\n" not in body["error"], name
        assert words in body["error"], f"{name}: {body['error']}"
    for path, method, status in (("/v1/nothing", "GET", 404), ("/v1/mix", "GET", 405)):
        response = httpx.request(method, strict.url + path, timeout=10)
        assert response.status_code == status and response.json()["status"] == status
    grid = httpx.post(strict.url + "/v1/grid", json={"background": [f"code:{i}" for i in range(16)],
                                                      "texture": [f"code:{i}" for i in range(16)], "pose": ["seed:1"],
                                                      "shape": ["code:0", "code:1"]}, timeout=30)
    assert grid.status_code == 422 and "limit" in grid.json()["error"]
    generate = httpx.post(strict.url + "/v1/generate", json={"b": [0.5, 0.5]}, timeout=30)
    assert generate.status_code == 422 and "b" in generate.json()["error"]
    assert httpx.get(strict.url + "/healthz", timeout=10).status_code == 200
    assert httpx.post(strict.url + "/v1/mix", data={**RANDOM, "background": "code:2"}, timeout=30).status_code == 200
    assert "status=\"500\"" not in strict.metrics()
