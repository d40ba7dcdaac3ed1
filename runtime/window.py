"""A window for ``mnm animate --show``: OpenCV's GUI, checked before it can abort the process."""

from __future__ import annotations

import contextlib
import os
import sys

import cv2
import numpy as np

from mnm.errors import MnmError


class Window:
    """An OpenCV window (``--show``); needs the GUI build of OpenCV and a display."""

    def __init__(self, title: str = "mnm animate", min_side: int = 384):
        problem = gui_problem()
        if problem:
            raise MnmError(f"--show: {problem}")
        self.title, self.min_side = title, min_side
        cv2.namedWindow(title, cv2.WINDOW_AUTOSIZE)

    def show(self, frame: np.ndarray) -> bool:
        """Display ``frame``; False once the user pressed q or Esc or closed the window."""
        scale = max(1, -(-self.min_side // max(frame.shape[:2])))
        bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        if scale > 1:
            bgr = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        cv2.imshow(self.title, bgr)
        key = cv2.waitKey(1) & 0xFF
        return key not in (ord("q"), 27) and cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1

    def close(self) -> None:
        with contextlib.suppress(cv2.error):
            cv2.destroyWindow(self.title)


def gui_problem() -> str | None:
    """Why no window can open here, or None. Checked first: a GUI build with no display aborts."""
    gui = next(
        (
            line.split(":", 1)[1].strip()
            for line in cv2.getBuildInformation().splitlines()
            if line.strip().startswith("GUI:")
        ),
        "",
    )
    if gui.upper() in ("", "NONE"):
        return (
            "this OpenCV has no GUI support (opencv-python-headless); install opencv-python instead "
            "(uninstall the headless one first: the two must not be installed together), or drop --show"
        )
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display to open a window on (DISPLAY is not set); drop --show or run in a desktop session"
    return None
