"""Overload and bad input: 503 + Retry-After when the queue is full, a JSON 4xx for every client
mistake, never a 500, and the server keeps serving."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.hardening.conftest import write_bomb_png
from tests.server.conftest import RANDOM, Server, metric, upload

MAX_UPLOADS = 2
MAX_BODY = 1024 * 1024
BODY_TIMEOUT_S = 2
ALL_FACTORS = {"background": "code:1", "pose": "seed:1", "shape": "code:2", "texture": "code:3"}


@pytest.fixture(scope="module")
def strict(demo):
    """A server with 2 upload places, 1 MiB bodies and 1-megapixel images."""
    running = Server(demo, "--max-uploads", str(MAX_UPLOADS), "--max-body-mb", "1", "--max-pixels",
                     "1000000").wait_ready()
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


def wait_uploading(server: Server, n: int, timeout: float = 30) -> None:
    """Until ``n`` request bodies are arriving (the stalled uploads hold their upload places)."""
    deadline = time.monotonic() + timeout
    while metric(server.metrics(), "mnm_requests_uploading") < n:
        assert time.monotonic() < deadline, "the stalled uploads never counted as uploading"
        time.sleep(0.05)


def test_uploads_over_the_limit_get_503_then_serve_again(strict):
    """Stalled uploads fill the upload places: one more gets 503 before its body is read; once they
    complete, they are answered and new requests are served."""
    body = form_body(ALL_FACTORS)
    stalled = [start_stalled_upload(strict.url, body) for _ in range(MAX_UPLOADS)]
    wait_uploading(strict, MAX_UPLOADS)
    response = httpx.post(strict.url + "/v1/mix", data=ALL_FACTORS, timeout=30)
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["type"] == "overloaded" and "uploading" in response.json()["error"]
    assert httpx.get(strict.url + "/healthz", timeout=10).status_code == 200  # GETs are never refused
    for sock in stalled:  # the requests that held the upload places complete normally
        status, content = finish_upload(sock, body)
        assert status == 200 and content.startswith(b"\x89PNG")
    response = httpx.post(strict.url + "/v1/mix", data=ALL_FACTORS, timeout=30)
    assert response.status_code == 200
    assert metric(strict.metrics(), "mnm_http_errors_total", endpoint="/v1/mix", status="503") >= 1


def test_a_full_queue_gives_503_once_the_body_has_arrived(demo):
    """With one queue place and one worker, concurrent grids: those that find the place taken get
    503 + Retry-After, the others their grid."""
    server = Server(demo, "--max-queue", "1", "--workers", "1").wait_ready()
    grid = {"background": [f"code:{i}" for i in range(8)], "pose": ["seed:1"], "shape": ["code:0"],
            "texture": [f"code:{i}" for i in range(8)]}
    try:
        with ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(lambda _: httpx.post(server.url + "/v1/grid", json=grid, timeout=120), range(8)))
        statuses = sorted(r.status_code for r in responses)
        assert set(statuses) == {200, 503} and statuses[0] == 200, statuses
        refused = [r for r in responses if r.status_code == 503]
        assert all("in progress" in r.json()["error"] and r.headers["retry-after"] for r in refused)
    finally:
        assert server.stop() == 0, server.output()


@pytest.fixture(scope="module")
def patient(demo):
    """One queue place, and 2 s for a whole body."""
    running = Server(demo, "--max-queue", "1", "--body-timeout-s", str(BODY_TIMEOUT_S)).wait_ready()
    yield running
    assert running.stop() == 0, running.output()


def test_a_trickling_client_gets_408_and_never_holds_the_queue(patient):
    """A byte every 0.2 s: 408 once the whole body has taken longer than --body-timeout-s, and while
    it trickles, other requests are served although the queue has one place."""
    body = form_body(ALL_FACTORS)
    host, port = patient.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall((f"POST /v1/mix HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; "
                  f"boundary=mnmtestboundary\r\nContent-Length: {len(body)}\r\n\r\n").encode())
    start, answer, served = time.monotonic(), b"", 0
    sock.setblocking(False)
    for byte in body:
        assert time.monotonic() - start < BODY_TIMEOUT_S + 30, "no 408 for the trickling body"
        with contextlib.suppress(BlockingIOError):
            answer += sock.recv(65536)
        if answer:
            break
        with contextlib.suppress(OSError):
            sock.send(bytes([byte]))
        if metric(patient.metrics(), "mnm_requests_uploading") == 1:  # meanwhile, others are served
            assert httpx.post(patient.url + "/v1/mix", data=ALL_FACTORS, timeout=30).status_code == 200
            served += 1
        time.sleep(0.2)
    sock.setblocking(True)
    while b"\r\n\r\n" not in answer and (chunk := sock.recv(65536)):
        answer += chunk
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"not complete within" in answer and served >= 1
    assert metric(patient.metrics(), "mnm_requests_uploading") == 0


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
