"""A network stream through PyAV (FFmpeg's libraries): H.264 that holds nothing back, sent per frame.

Latency first: x264 with ``tune=zerolatency`` (no lookahead, no frame threads) and no B-frames
gives each frame's packet as soon as the frame goes in, so the encoder never holds a frame
(``most_held`` records it, the tests check it is 0); the muxer flushes every packet to the network.
A keyframe every ``KEYFRAME_INTERVAL_S`` lets a receiver that joins late start within a second.
Frames carry their time on the output's timeline in milliseconds: the capture time in real time,
else the next slot at the frame rate.

A receiver cannot hold the loop: UDP (and RTP over it) sends without waiting for anyone, and
connected streams (RTMP, RTSP, SRT) give up after ``IO_TIMEOUT_S`` without progress (``rw_timeout``),
so a refused, vanished or stalled receiver ends the run with one line instead of a hang.
"""

from __future__ import annotations

import logging
from fractions import Fraction

import numpy as np

from mnm.errors import MnmError
from mnm.runtime.live.targets import Stream

log = logging.getLogger(__name__)

CODEC = "libx264"
CRF = 20
"""x264's constant quality (lower is better): the default quality, PSNR >= 30 dB on the models' pictures."""
X264_OPTIONS = {"preset": "ultrafast", "tune": "zerolatency", "crf": str(CRF)}
KEYFRAME_INTERVAL_S = 1.0
IO_TIMEOUT_S = 5.0
"""How long a network write or the connection may make no progress before the stream is given up."""
TIME_BASE = Fraction(1, 1000)
UDP_PACKET_BYTES = 7 * 188
"""Seven MPEG-TS packets per datagram, so a lost datagram never splits a TS packet."""
RTP_PACKET_BYTES = 12 + 188
"""One TS packet per RTP datagram: FFmpeg's RTP packetizer holds TS packets back until a datagram is
full (so a frame would wait for the next, and the last ones never leave); with room for one it holds none."""


def import_av():
    """PyAV, or one line on how to install it."""
    try:
        import av
    except ImportError:
        raise MnmError("--out STREAM needs PyAV: pip install 'mnm[live]'") from None
    if CODEC not in av.codecs_available:
        raise MnmError(f"this PyAV build ({av.__version__}) has no {CODEC} encoder; install PyAV's own wheels")
    return av


class StreamSink:
    """H.264 to ``target`` (udp, rtp, srt, rtmp, rtsp), opened on the first frame, which fixes the size."""

    full = False

    def __init__(self, target: Stream, fps: float, io_timeout_s: float = IO_TIMEOUT_S):
        self.av = import_av()
        self.target, self.fps, self.io_timeout_s = target, fps, io_timeout_s
        self.count = 0  # frames encoded and handed to the network
        self.most_held = 0  # most frames the encoder held without giving their packet
        self.size: tuple[int, int] | None = None
        self._packets = 0
        self._last_pts = -1
        self._container = self._stream = None
        self._broken = False

    @property
    def summary(self) -> str:
        size = f", {self.size[0]}x{self.size[1]}" if self.size else ""
        return f"sent {self.count} frames to {self.target.url} (H.264 in {self.target.muxer}{size} at {self.fps:g} fps)"

    @property
    def kept(self) -> str:
        return f"{self.count} frames were sent to {self.target.url}" if self.count else "nothing was sent"

    def write(self, frame: np.ndarray, t: float | None = None) -> None:
        if self._container is None:
            self._open(frame)
        pts = max(round((self.count / self.fps if t is None else t) / TIME_BASE), self._last_pts + 1)
        video_frame = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        video_frame.pts, video_frame.time_base = pts, TIME_BASE
        self._send(video_frame)
        self._last_pts = pts
        self.count += 1
        self.most_held = max(self.most_held, self.count - self._packets)

    def close(self, end: float | None = None) -> None:
        """Flush the encoder and end the stream; after a failed write only release what is left."""
        if self._container is None:
            return
        container, self._container = self._container, None
        try:
            if not self._broken:
                container.mux(self._stream.encode(None))
            container.close()
        except (self.av.FFmpegError, OSError) as exc:
            if not self._broken:
                raise MnmError(self._failure(exc)) from None
            log.debug("closing the broken stream %s: %s", self.target.url, exc)

    def _open(self, frame: np.ndarray) -> None:
        height, width = frame.shape[:2]
        if width % 2 or height % 2:
            raise MnmError(f"{self.target.url}: H.264 needs even sides, the frames are {width}x{height}; give --size")
        try:
            container = self.av.open(
                self.target.url, mode="w", format=self.target.muxer, container_options=self._options()
            )
        except (self.av.FFmpegError, OSError) as exc:
            raise MnmError(self._failure(exc)) from None
        stream = container.add_stream(CODEC, rate=Fraction(self.fps).limit_denominator(1001), options=X264_OPTIONS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        context = stream.codec_context
        context.time_base = TIME_BASE
        context.max_b_frames = 0
        context.gop_size = max(1, round(self.fps * KEYFRAME_INTERVAL_S))
        context.thread_count = 1  # frame threads would hold frames back
        self._container, self._stream, self.size = container, stream, (width, height)

    def _options(self) -> dict[str, str]:
        """Protocol and muxer options: every packet flushed, network writes bounded in time."""
        options = {"flush_packets": "1", "rw_timeout": str(round(self.io_timeout_s * 1e6))}
        if self.target.muxer in ("mpegts", "rtp_mpegts"):
            # With the length in each video PES header a demuxer hands a frame on as soon as it is
            # whole; without it (FFmpeg's default) only when the next frame starts: one frame late.
            options["omit_video_pes_length"] = "0"
        if self.target.scheme == "udp":
            options["pkt_size"] = str(UDP_PACKET_BYTES)
        if self.target.scheme == "rtp":
            options["pkt_size"] = str(RTP_PACKET_BYTES)
        if self.target.scheme == "rtsp":
            options["rtsp_transport"] = "tcp"
        return options

    def _send(self, video_frame) -> None:
        try:
            packets = self._stream.encode(video_frame)
            self._container.mux(packets)
        except (self.av.FFmpegError, OSError) as exc:
            self._broken = True
            raise MnmError(self._failure(exc)) from None
        self._packets += len(packets)

    def _failure(self, exc: BaseException) -> str:
        """One line: what happened to the stream, in FFmpeg's words."""
        reason = getattr(exc, "strerror", None) or str(exc)
        if isinstance(exc, self.av.error.ProtocolNotFoundError):
            return (
                f"{self.target.url}: this PyAV build ({self.av.__version__}) cannot send {self.target.scheme} streams "
                "(its FFmpeg was built without that protocol); use udp:// or rtmp://"
            )
        if self.count == 0:
            return f"{self.target.url}: cannot send the stream ({reason})"
        return f"{self.target.url}: the stream stopped after {self.count} frames ({reason})"
