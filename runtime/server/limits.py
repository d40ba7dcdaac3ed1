"""Backpressure and body limits, as ASGI middleware in front of every route.

- At most ``max_in_flight`` work requests (the POST endpoints) are in the server at once, counted
  from their first byte to their last: being uploaded, waiting for a worker, or running. One more
  gets 503 with ``Retry-After`` at once, before its body is read, so memory stays bounded however
  many clients push. GET endpoints (health, metrics, info) are never refused: they are how an
  operator sees the overload.
- A body over ``max_body_bytes`` is refused with 413: from its Content-Length before reading, or
  as soon as the streamed bytes pass the limit. A body that stalls for ``read_timeout_s`` gets 408,
  so slow clients cannot hold their places in the queue forever.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from starlette.exceptions import HTTPException

from mnm.runtime.server.errors import error_body

WORK_PATHS = ("/v1/mix", "/v1/grid", "/v1/encode", "/v1/generate")


@dataclass
class Gate:
    """The limits, and the count of work requests in the server (read by the metrics)."""

    max_in_flight: int | None  # None: admission is someone else's (Ray Serve's max_queued_requests)
    max_body_bytes: int
    retry_after_s: int = 1
    read_timeout_s: float = 30.0
    in_flight: int = 0


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
        if work and gate.max_in_flight is not None and gate.in_flight >= gate.max_in_flight:
            await _reply(send, 503, f"server busy: {gate.in_flight} requests in progress (limit "
                                    f"{gate.max_in_flight}); retry after {gate.retry_after_s} s",
                         {"retry-after": str(gate.retry_after_s)})
            return
        gate.in_flight += work
        try:
            await self.app(scope, self._bounded(receive), send)
        finally:
            gate.in_flight -= work

    def _bounded(self, receive):
        """``receive`` that counts body bytes (413 past the limit) and times out a stalled upload (408)."""
        gate, seen, done = self.gate, 0, False

        async def bounded_receive():
            nonlocal seen, done
            if done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), gate.read_timeout_s)
            except TimeoutError:
                raise HTTPException(408, f"request body stalled for {gate.read_timeout_s:g} s") from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                done = not message.get("more_body", False)
                if seen > gate.max_body_bytes:
                    raise HTTPException(413, f"request body is over the limit of {gate.max_body_bytes:,} bytes")
            return message

        return bounded_receive


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
