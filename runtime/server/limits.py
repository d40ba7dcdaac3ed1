"""Backpressure and body limits, as ASGI middleware in front of every route.

A work request (the POST endpoints) passes two gates:

- **uploading**: at most ``max_uploads`` bodies are being received at once, and each must arrive
  whole within ``body_timeout_s`` of the request's start (else 408), so a client trickling bytes
  holds an upload place for a bounded time and never a queue place;
- **queue**: once its body has arrived, at most ``max_in_flight`` requests are in the server
  (waiting for a worker or running, until their last response byte).

Past either gate the answer is 503 with ``Retry-After`` at once: at the upload gate before the
body is read, at the queue gate as soon as it has arrived. Memory for bodies is bounded by
``(max_uploads + max_in_flight) x max_body_bytes`` however many clients push. GET endpoints
(health, metrics, info) are never refused: they are how an operator sees the overload. A body
over ``max_body_bytes`` is refused with 413: from its Content-Length before reading, or as soon
as the streamed bytes pass the limit.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

from starlette.exceptions import HTTPException

from mnm.runtime.server.errors import error_body

WORK_PATHS = ("/v1/mix", "/v1/grid", "/v1/encode", "/v1/generate")


@dataclass
class Gate:
    """The limits, and the counts of work requests uploading and admitted (read by the metrics)."""

    max_in_flight: int | None  # None: admission is someone else's (Ray Serve's max_queued_requests)
    max_body_bytes: int
    max_uploads: int | None = None  # None: no upload gate (under Ray Serve, its proxy reads the bodies)
    retry_after_s: int = 1
    body_timeout_s: float = 60.0
    uploading: int = 0
    in_flight: int = 0

    def busy(self, what: str, count: int, limit: int) -> HTTPException:
        return HTTPException(503, f"server busy: {count} requests {what} (limit {limit}); retry after "
                                  f"{self.retry_after_s} s", headers={"retry-after": str(self.retry_after_s)})


class Admission:
    """The ASGI middleware of the module docstring, enforcing ``gate``."""

    def __init__(self, app, gate: Gate):
        self.app, self.gate = app, gate

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gate = self.gate
        length = _content_length(scope)
        if length is not None and length > gate.max_body_bytes:
            await _reply(send, 413, f"request body of {length:,} bytes is over the limit of "
                                    f"{gate.max_body_bytes:,} bytes")
            return
        work = scope["method"] == "POST" and scope["path"] in WORK_PATHS
        if work and gate.max_uploads is not None and gate.uploading >= gate.max_uploads:
            refusal = gate.busy("uploading", gate.uploading, gate.max_uploads)
            await _reply(send, 503, refusal.detail, refusal.headers)
            return
        body = _Body(gate, receive, work)
        try:
            await self.app(scope, body.receive, send)
        finally:
            body.release()


class _Body:
    """One request's ``receive``: counts its bytes (413), bounds its time (408), and at its last byte
    moves a work request from the upload gate to the queue (503 when the queue is full)."""

    def __init__(self, gate: Gate, receive, work: bool):
        self.gate, self._receive, self.work = gate, receive, work
        self.deadline = time.monotonic() + gate.body_timeout_s
        self.seen, self.done, self.admitted = 0, False, False
        gate.uploading += work

    async def receive(self):
        if self.done:
            return await self._receive()
        gate = self.gate
        try:
            message = await asyncio.wait_for(self._receive(), max(0.0, self.deadline - time.monotonic()))
        except TimeoutError:
            raise HTTPException(408, f"request body not complete within {gate.body_timeout_s:g} s") from None
        if message["type"] == "http.request":
            self.seen += len(message.get("body", b""))
            if self.seen > gate.max_body_bytes:
                raise HTTPException(413, f"request body is over the limit of {gate.max_body_bytes:,} bytes")
            if not message.get("more_body", False):
                self.done = True
                self._admit()
        return message

    def _admit(self) -> None:
        """The body has arrived: leave the upload gate, take a queue place (or 503)."""
        if not self.work:
            return
        gate = self.gate
        gate.uploading -= 1
        self.work = False
        if gate.max_in_flight is not None and gate.in_flight >= gate.max_in_flight:
            raise gate.busy("in progress", gate.in_flight, gate.max_in_flight)
        gate.in_flight += 1
        self.admitted = True

    def release(self) -> None:
        gate = self.gate
        gate.uploading -= self.work
        gate.in_flight -= self.admitted
        self.work = self.admitted = False


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _reply(send, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps(error_body(status, message)).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
