"""Is a video file cut short? Read from the container's own sizes, not from a frame-count estimate.

OpenCV's ``read`` answers False both at the end of a stream and where a truncated file stops, and
``CAP_PROP_FRAME_COUNT`` is an estimate (duration x rate) for containers without an index (WebM,
Matroska, variable frame rate), so neither tells a healthy file from a damaged one. The containers
do: RIFF (AVI), EBML (Matroska, WebM) and ISO media (MP4, MOV) each declare the size of what they
hold, and a file shorter than its declared size lost its end. Other formats give no answer (None).
RIFF and ISO media also index every frame, so their frame count is exact (``counts_frames``).
"""

from __future__ import annotations

import os
from pathlib import Path

EBML_MAGIC = b"\x1a\x45\xdf\xa3"
SEGMENT_ID = b"\x18\x53\x80\x67"
ISO_TOP_LEVEL = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"uuid", b"pdin", b"moof", b"mfra",
                 b"meta", b"styp", b"sidx", b"pnot"}


def cut_short(path: str | os.PathLike) -> bool | None:
    """True when the file ends before its container says it does; False when it is whole; None when
    the format declares no size (or is not one of RIFF, EBML, ISO media)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:4] == b"RIFF" and len(head) >= 8:
                return size < 8 + int.from_bytes(head[4:8], "little")
            if head[:4] == EBML_MAGIC:
                return _ebml_cut_short(head, size)
            if head[4:8] in ISO_TOP_LEVEL:
                return _iso_cut_short(f, size)
    except OSError:
        return None
    return None


def counts_frames(path: str | os.PathLike) -> bool:
    """Whether the container indexes its frames (RIFF/AVI, ISO media/MP4/MOV), so that the frame count
    OpenCV reports is the file's own, not a duration x rate estimate."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return head[:4] == b"RIFF" or head[4:8] in ISO_TOP_LEVEL


def _ebml_cut_short(head: bytes, size: int) -> bool | None:
    """The EBML header element, then the Segment, whose size field covers the rest of the file."""
    header_size, offset = _vint(head, 4)
    if header_size is None:
        return None
    segment = offset + header_size
    if head[segment:segment + 4] != SEGMENT_ID:
        return None
    segment_size, data_start = _vint(head, segment + 4)
    if segment_size is None:  # unknown size (a live recording): nothing declared
        return None
    return size < data_start + segment_size


def _vint(data: bytes, offset: int) -> tuple[int | None, int]:
    """An EBML variable-size integer at ``offset``: (value, offset after it); value None for "unknown"."""
    if offset >= len(data) or data[offset] == 0:
        return None, offset
    first = data[offset]
    length = 8 - first.bit_length() + 1
    if offset + length > len(data):
        return None, offset
    value = first & ((1 << (8 - length)) - 1)
    for byte in data[offset + 1:offset + length]:
        value = (value << 8) | byte
    if value == (1 << (7 * length)) - 1:
        return None, offset + length
    return value, offset + length


def _iso_cut_short(f, size: int) -> bool | None:
    """Walk the top-level boxes: one that runs past the end of the file was cut."""
    offset = 0
    while offset + 8 <= size:
        f.seek(offset)
        header = f.read(16)
        box = int.from_bytes(header[:4], "big")
        if box == 1:
            if len(header) < 16:
                return True
            box = int.from_bytes(header[8:16], "big")
        elif box == 0:  # runs to the end of the file
            return False
        if box < 8:
            return None  # not a box structure we can follow: claim nothing
        offset += box
    return offset > size
