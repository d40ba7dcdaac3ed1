"""What ``--out`` names: a network stream (by its URL scheme), a V4L2 device, or a file or folder.

A stream is told by ``SCHEME://`` with a known scheme (a Windows path such as ``C:\\out.mp4`` has no
``//``); a device by the name ``/dev/videoN`` or by being an existing character device; anything else
is a path for ``mnm.runtime.video.open_sink``. Every check here runs before the bundle is opened.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from mnm.errors import MnmError

MUXERS = {"udp": "mpegts", "rtp": "rtp_mpegts", "srt": "mpegts", "rtmp": "flv", "rtsp": "rtsp"}
"""FFmpeg's muxer per scheme: MPEG-TS where the receiver must find the stream by itself (over RTP
with the static payload type 33, so no SDP file is needed), FLV for RTMP, RTSP's own for RTSP."""
DEVICE_NAME = re.compile(r"/dev/video\d+")


@dataclass(frozen=True)
class Stream:
    """A network stream: ``url`` as given, its ``scheme`` and the muxer that carries it."""

    url: str
    scheme: str

    @property
    def muxer(self) -> str:
        return MUXERS[self.scheme]


@dataclass(frozen=True)
class Device:
    """A V4L2 device node (v4l2loopback makes one a webcam for every application)."""

    path: str


def classify(out: str) -> Stream | Device | Path:
    """``out`` as a ``Stream``, a ``Device`` or a ``Path``; a malformed stream URL is one line."""
    if "://" in out:
        return _stream(out)
    if DEVICE_NAME.fullmatch(out) or _is_char_device(out):
        return Device(out)
    return Path(out)


def _stream(url: str) -> Stream:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in MUXERS:
        raise MnmError(f"--out {url}: unsupported stream {scheme or 'URL'!r}; use {', '.join(MUXERS)} (or a file)")
    try:
        port = parts.port
    except ValueError:
        raise MnmError(f"--out {url}: the port is not a number from 0 to 65535") from None
    if not parts.hostname:
        raise MnmError(f"--out {url}: no host (expected {scheme}://HOST:PORT...)")
    if port is None and scheme in ("udp", "rtp", "srt"):
        raise MnmError(f"--out {url}: {scheme} needs a port ({scheme}://HOST:PORT)")
    if scheme == "rtmp" and parts.path.strip("/").count("/") < 1:
        raise MnmError(f"--out {url}: expected rtmp://HOST[:PORT]/APP/KEY (an application and a stream key)")
    return Stream(url, scheme)


def _is_char_device(path: str) -> bool:
    try:
        return stat.S_ISCHR(os.stat(path).st_mode)
    except OSError:
        return False
