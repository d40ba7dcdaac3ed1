"""A V4L2 output device (v4l2loopback): frames written as planar YUV 4:2:0, which every webcam app reads.

The device is checked when the sink is made, before any model work: it must exist, answer V4L2's
``VIDIOC_QUERYCAP`` and be a v4l2loopback device that takes output; a real camera, ``/dev/null`` or a
missing node is one line saying how to make a virtual one (docs/realtime.md). The format is set with
``VIDIOC_S_FMT`` on the first frame, which fixes the size; each frame is then one ``write``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct

import cv2
import numpy as np

from mnm.errors import MnmError
from mnm.runtime.live.targets import Device

# From <linux/videodev2.h> (64-bit layouts): struct v4l2_capability is 104 bytes, struct v4l2_format 208.
VIDIOC_QUERYCAP = 0x80685600
VIDIOC_S_FMT = 0xC0D05605
CAPABILITY = struct.Struct("16s32s32sIII12x")
FORMAT = struct.Struct("I4x12I152x")
V4L2_CAP_VIDEO_OUTPUT = 0x00000002
V4L2_CAP_DEVICE_CAPS = 0x80000000
V4L2_BUF_TYPE_VIDEO_OUTPUT = 2
V4L2_FIELD_NONE = 1
V4L2_COLORSPACE_SRGB = 8
V4L2_PIX_FMT_YUV420 = int.from_bytes(b"YU12", "little")
LOOPBACK_DRIVER = "v4l2 loopback"
SETUP = "sudo modprobe v4l2loopback devices=1 video_nr=N card_label=mnm exclusive_caps=1 (docs/realtime.md)"


class V4l2Sink:
    """Frames to a v4l2loopback device; ``write`` blocks only as long as the kernel copies a frame."""

    full = False

    def __init__(self, device: Device, fps: float):
        self.path, self.fps = device.path, fps
        self.count = 0
        self.size: tuple[int, int] | None = None
        self._fd = open_loopback(self.path)

    @property
    def summary(self) -> str:
        return f"sent {self.count} frames to {self.path} (YUV 4:2:0, {self.size[0]}x{self.size[1]})"

    @property
    def kept(self) -> str:
        return f"{self.count} frames were sent to {self.path}" if self.count else "nothing was sent"

    def write(self, frame: np.ndarray, t: float | None = None) -> None:
        """Frames go out as they come: a device shows the newest, so ``t`` is not used."""
        height, width = frame.shape[:2]
        if self.size is None:
            self._set_format(width, height)
        try:
            os.write(self._fd, cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())
        except OSError as exc:
            raise MnmError(f"{self.path}: writing frame {self.count + 1} failed ({exc.strerror})") from None
        self.count += 1

    def close(self, end: float | None = None) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _set_format(self, width: int, height: int) -> None:
        if width % 2 or height % 2:
            raise MnmError(f"{self.path}: YUV 4:2:0 needs even sides, the frames are {width}x{height}; give --size")
        request = bytearray(FORMAT.pack(
            V4L2_BUF_TYPE_VIDEO_OUTPUT, width, height, V4L2_PIX_FMT_YUV420, V4L2_FIELD_NONE,
            width, width * height * 3 // 2, V4L2_COLORSPACE_SRGB, 0, 0, 0, 0, 0,
        ))
        try:
            fcntl.ioctl(self._fd, VIDIOC_S_FMT, request)
        except OSError as exc:
            raise MnmError(f"{self.path}: the device refused {width}x{height} YUV 4:2:0 ({exc.strerror})") from None
        self.size = (width, height)


def open_loopback(path: str) -> int:
    """A write descriptor on the v4l2loopback device ``path``, or one line saying what it is instead."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        raise MnmError(f"{path}: no such device; make a virtual camera with {SETUP}") from None
    except OSError as exc:
        hint = "; add yourself to the video group" if exc.errno == errno.EACCES else ""
        raise MnmError(f"{path}: cannot open the device ({exc.strerror}){hint}") from None
    try:
        driver, card, caps = query_capability(fd, path)
        if driver != LOOPBACK_DRIVER or not caps & V4L2_CAP_VIDEO_OUTPUT:
            raise MnmError(
                f"{path}: {card} ({driver}) is not a v4l2loopback output; make a virtual camera with {SETUP}"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def query_capability(fd: int, path: str) -> tuple[str, str, int]:
    """(driver, card, capabilities of this node) from ``VIDIOC_QUERYCAP``."""
    buffer = bytearray(CAPABILITY.size)
    try:
        fcntl.ioctl(fd, VIDIOC_QUERYCAP, buffer)
    except OSError as exc:
        raise MnmError(f"{path}: not a V4L2 device ({exc.strerror}); make a virtual camera with {SETUP}") from None
    driver, card, _bus, _version, caps, device_caps = CAPABILITY.unpack(buffer)
    if caps & V4L2_CAP_DEVICE_CAPS:
        caps = device_caps
    return driver.split(b"\0")[0].decode(errors="replace"), card.split(b"\0")[0].decode(errors="replace"), caps
