"""``WS /v1/animate``: live img2gif for any client, always on the newest frame.

The protocol (docs/server.md has it with an example):

1. connect to ``/v1/animate?mode=code&format=jpeg`` (optional ``box=x,y,w,h``: the pose region in
   each frame; ``static_box``: the object in the static image);
2. send the static image as one binary message (an image file); the server answers
   ``{"type": "ready", ...}`` or ``{"type": "error", ...}`` and closes;
3. send frames as binary messages (image files), as fast as they come; each answer is
   ``{"type": "frame", "seq", "image" (base64), "format", "latency_ms", "compute_ms", "dropped"
   (the seqs replaced by a newer frame since the previous answer), "received", "answered",
   "dropped_total", "failed"}``; a frame that cannot be decoded gets ``{"type": "error", "seq", ...}``;
4. send ``{"type": "stop"}``: the newest waiting frame is answered, then ``{"type": "done", "received",
   "answered", "dropped", "failed"}`` and the server closes (1000). ``received = answered + dropped +
   failed``.

Frames are numbered from 0 in the order received. One slot holds the newest frame not yet started:
a frame arriving while another waits replaces it (the replaced one is dropped), so a slow model never
builds a backlog and the answer is always to the freshest pose.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from dataclasses import dataclass

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from mnm.errors import MnmError
from mnm.imaging import decode_image_bytes, encode_image
from mnm.runtime.requests import parse_box
from mnm.runtime.server.errors import error_response
from mnm.runtime.server.models import FORMATS

router = APIRouter()

CLOSE_NORMAL, CLOSE_UNSUPPORTED, CLOSE_POLICY, CLOSE_ERROR, CLOSE_TRY_LATER = 1000, 1003, 1008, 1011, 1013
log = logging.getLogger("mnm.server")


@dataclass
class Frame:
    seq: int
    data: bytes
    arrived: float


class Gone(Exception):
    """The client has left: a send failed or the socket reported the disconnect."""


class Session:
    """One client's stream: the receiving task fills the slot, the answering task empties it.

    Every way a stream ends (the client leaves at any step, a bad message, a server error, the
    server shutting down) ends both tasks, so the handler returns and the stream's slot is given
    back at once: the receiver cancels the answerer when the client is gone (or goes idle), and
    ``_stream`` cancels the receiver whenever the answerer ends.
    """

    def __init__(self, websocket: WebSocket, service, mode="code", fmt="jpeg", box=None, static_box=None):
        self.ws, self.service = websocket, service
        self.mode, self.fmt, self.box, self.static_box = mode, fmt, box, static_box
        self.latest: Frame | None = None
        self.wake = asyncio.Event()
        self.received = self.answered = self.failed = 0
        self.dropped: list[int] = []  # since the previous answer
        self.dropped_total = 0
        self.stopping = self.gone = self.idle = False
        self._sending = asyncio.Lock()  # the two tasks both send: one message at a time

    async def send(self, message: dict) -> None:
        """Send ``message``; ``Gone`` if the client has left (whatever the ASGI server raises for it)."""
        if self.gone:
            raise Gone
        async with self._sending:
            try:
                await self.ws.send_json(message)
            except (WebSocketDisconnect, RuntimeError, OSError):
                self.gone = True
                raise Gone from None

    async def close(self, code: int, message: str | None = None) -> None:
        """Say why (when there is something to say) and close; nothing if the client has left."""
        try:
            if message is not None:
                await self.send({"type": "error", "message": message})
            async with self._sending:
                await self.ws.close(code)
        except (Gone, WebSocketDisconnect, RuntimeError, OSError):
            self.gone = True

    async def run(self) -> None:
        try:
            static = await asyncio.wait_for(self.ws.receive(), self.service.options.body_timeout_s)
        except TimeoutError:
            await self.close(CLOSE_POLICY, "no static image within the time limit")
            return
        if static["type"] == "websocket.disconnect":
            return
        if static.get("bytes") is None:
            await self.close(CLOSE_UNSUPPORTED, "send the static image as a binary message first")
            return
        try:
            animator = await self.service.call(self._open, static["bytes"])
        except MnmError as exc:
            await self.close(CLOSE_UNSUPPORTED, str(exc))
            return
        size = self.service.config.image_size
        try:
            await self.send({"type": "ready", "mode": self.mode, "format": self.fmt, "width": size, "height": size})
        except Gone:
            return
        await self._stream(animator)

    async def _stream(self, animator) -> None:
        answerer = asyncio.create_task(self._answer(animator))
        receiver = asyncio.create_task(self._receive(answerer))
        try:
            await asyncio.wait({answerer})
        finally:  # also when this handler is cancelled (the server stopping)
            for task in (receiver, answerer):
                task.cancel()
            await asyncio.gather(receiver, answerer, return_exceptions=True)
        if self.gone:
            return
        if self.idle:
            await self.close(CLOSE_POLICY, f"no message for {self.service.options.stream_idle_s:g} s: "
                                           "closing the idle stream")
            return
        if answerer.cancelled():
            return
        if answerer.exception() is not None:  # a bug or a failed service: say so and free the slot
            log.error("animation stream failed", exc_info=answerer.exception())
            await self.close(CLOSE_ERROR, "internal error (the server's log has the details)")
        elif self.stopping:
            try:
                await self.send({"type": "done", "received": self.received, "answered": self.answered,
                                 "dropped": self.dropped_total, "failed": self.failed})
            except Gone:
                return
            await self.close(CLOSE_NORMAL)

    def _open(self, data: bytes):
        image = decode_image_bytes(data, "static image", self.service.options.max_pixels)
        return self.service.pipeline.animator(image, mode=self.mode, box=self.box, static_box=self.static_box)

    async def _receive(self, answerer: asyncio.Task) -> None:
        """Fill the slot until a stop; when the client leaves (or this task fails), end the answerer."""
        try:
            await self._receive_frames()
        except Gone:
            pass
        except (WebSocketDisconnect, RuntimeError, OSError):
            self.gone = True
        except Exception:  # a bug: log it and end the stream rather than leave the answerer waiting
            log.exception("animation stream: receiving failed")
        finally:
            if self.gone or not self.stopping:
                answerer.cancel()
            self.wake.set()

    async def _receive_frames(self) -> None:
        metrics, idle_s = self.service.metrics, self.service.options.stream_idle_s
        while not self.stopping:
            try:
                message = await asyncio.wait_for(self.ws.receive(), idle_s)
            except TimeoutError:
                self.idle = True
                return
            if message["type"] == "websocket.disconnect":
                self.gone = True
                return
            if message.get("bytes") is not None:
                if self.latest is not None:
                    self.dropped.append(self.latest.seq)
                    self.dropped_total += 1
                    metrics.frames.labels("dropped").inc()
                self.latest = Frame(self.received, message["bytes"], time.perf_counter())
                self.received += 1
            elif _is_stop(message.get("text")):
                self.stopping = True
            else:
                await self.send({"type": "error", "message": 'unknown message; send frames as binary '
                                 'messages and {"type": "stop"} to finish'})
                continue
            self.wake.set()

    async def _answer(self, animator) -> None:
        """Answer the newest frame, again and again, until a stop has been received and answered."""
        metrics = self.service.metrics
        while True:
            if self.latest is None:  # look before waiting: a stop may have come while we were busy
                if self.stopping:
                    return
                await self.wake.wait()
                self.wake.clear()
                continue
            frame, self.latest = self.latest, None
            try:
                data, compute = await self.service.call(self._animate, animator, frame)
            except MnmError as exc:
                self.failed += 1
                metrics.frames.labels("failed").inc()
                await self.send({"type": "error", "seq": frame.seq, "message": str(exc)})
                continue
            self.answered += 1
            latency = time.perf_counter() - frame.arrived
            metrics.frames.labels("answered").inc()
            metrics.frame_latency.observe(latency)
            dropped, self.dropped = self.dropped, []
            await self.send({
                "type": "frame", "seq": frame.seq, "image": base64.b64encode(data).decode(), "format": self.fmt,
                "latency_ms": round(latency * 1000, 3), "compute_ms": round(compute * 1000, 3), "dropped": dropped,
                "received": self.received, "answered": self.answered, "dropped_total": self.dropped_total,
                "failed": self.failed,
            })

    def _animate(self, animator, frame: Frame) -> tuple[bytes, float]:
        start = time.perf_counter()
        image = decode_image_bytes(frame.data, f"frame {frame.seq}", self.service.options.max_pixels)
        out = animator.frame(image)
        return encode_image(out, FORMATS[self.fmt][0]), time.perf_counter() - start


def origin_allowed(origin: str, server: tuple | None, allowed: tuple[str, ...]) -> bool:
    """Whether a browser page from ``origin`` may open a stream: the server's own origin (the address
    this connection came in on, by IP, and as ``localhost`` on loopback), an origin in ``allowed``,
    or any with ``*``. Checked against the socket's address, not the Host header, so a DNS-rebound
    name cannot pass for it."""
    origin = origin.rstrip("/").lower()
    if "*" in allowed or origin in (a.rstrip("/").lower() for a in allowed):
        return True
    if not server or server[1] is None:
        return False
    host, port = server
    hosts = {f"[{host}]" if ":" in host else host}
    if host in ("127.0.0.1", "::1"):
        hosts.add("localhost")
    ports = {f":{port}", ""} if port == 80 else {f":{port}"}
    return origin in {f"http://{h}{p}" for h in hosts for p in ports}


def _is_stop(text: str | None) -> bool:
    try:
        return isinstance(text, str) and json.loads(text).get("type") == "stop"
    except (ValueError, AttributeError):
        return False


@router.websocket("/v1/animate")
async def animate(websocket: WebSocket, mode: str = "code", format: str = "jpeg", box: str | None = None,
                  static_box: str | None = None) -> None:
    """Live animation of a static image by the pose in each frame (protocol: module docstring)."""
    service = websocket.app.state.service
    origin = websocket.headers.get("origin")
    if origin is not None and not origin_allowed(origin, websocket.scope.get("server"), service.options.allow_origins):
        await websocket.send_denial_response(error_response(
            403, f"origin {origin} may not open animation streams here (mnm serve --allow-origin)"))
        return
    await websocket.accept()
    try:
        if mode not in ("code", "feature"):
            raise MnmError(f"mode: expected code or feature, got {mode!r}")
        service.pipeline.require_mode(mode)
        if format not in FORMATS:
            raise MnmError(f"format: expected one of {', '.join(FORMATS)}, got {format!r}")
        session = Session(websocket, service, mode, format, parse_box(box, "box") if box else None,
                          parse_box(static_box, "static_box") if static_box else None)
    except MnmError as exc:
        await Session(websocket, service).close(CLOSE_POLICY, str(exc))
        return
    if service.streams >= service.options.max_streams:
        await session.close(CLOSE_TRY_LATER, f"server busy: {service.streams} animation streams open "
                            f"(limit {service.options.max_streams}); try again later")
        return
    service.streams += 1
    try:
        await session.run()
    finally:
        service.streams -= 1
