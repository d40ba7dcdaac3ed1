"""``--vcam``: the platform's virtual camera through pyvirtualcam (v4l2loopback on Linux, the OBS
Virtual Camera on Windows and macOS), so Zoom, Meet, Discord or OBS see the animation as a webcam.

pyvirtualcam is checked when the sink is made (before any model work); the camera opens on the
first frame, which fixes the size, and a missing virtual camera is one line with its setup.
"""

from __future__ import annotations

import numpy as np

from mnm.errors import MnmError

SETUP = (
    "Linux: sudo modprobe v4l2loopback devices=1 card_label=mnm exclusive_caps=1; Windows and macOS: install "
    "OBS Studio and start its virtual camera once (docs/realtime.md)"
)


class VirtualCameraSink:
    """Frames to pyvirtualcam's camera; ``send`` does not pace, the capture does."""

    full = False

    def __init__(self, fps: float):
        try:
            import pyvirtualcam
        except ImportError:
            raise MnmError(f"--vcam needs pyvirtualcam: pip install 'mnm[live]'; then {SETUP}") from None
        self._module, self.fps = pyvirtualcam, fps
        self.count = 0
        self._camera = None
        self._device: str | None = None

    @property
    def summary(self) -> str:
        device = self._device or "the virtual camera"
        return f"sent {self.count} frames to {device}"

    @property
    def kept(self) -> str:
        return f"{self.count} frames were sent to the virtual camera" if self.count else "nothing was sent"

    def write(self, frame: np.ndarray, t: float | None = None) -> None:
        """Frames go out as they come: a camera shows the newest, so ``t`` is not used."""
        if self._camera is None:
            height, width = frame.shape[:2]
            try:
                self._camera = self._module.Camera(width, height, self.fps, fmt=self._module.PixelFormat.RGB)
            except (RuntimeError, ValueError) as exc:
                raise MnmError(f"--vcam: no virtual camera to open ({exc}); {SETUP}") from None
            self._device = self._camera.device
        try:
            self._camera.send(np.ascontiguousarray(frame))
        except RuntimeError as exc:
            raise MnmError(f"--vcam: sending frame {self.count + 1} failed ({exc})") from None
        self.count += 1

    def close(self, end: float | None = None) -> None:
        if self._camera is not None:
            self._camera.close()
            self._camera = None
