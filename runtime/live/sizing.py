"""``--size``: the output frame size, resized from the model's S x S with a stated interpolation.

Enlarging uses bicubic interpolation (OpenCV ``INTER_CUBIC``), shrinking area averaging
(``INTER_AREA``, which does not alias). A size that is not square gets the image scaled to fit
its shorter side, centred on black: the model's square picture is never distorted. Sides are even
because the encoders store colour at half resolution (4:2:0).
"""

from __future__ import annotations

import re

import cv2
import numpy as np

from mnm.errors import MnmError

MIN_SIDE, MAX_SIDE = 16, 4096
SIZE = re.compile(r"(\d+)(?:[xX](\d+))?")


def parse_size(text: str) -> tuple[int, int]:
    """``N`` (N x N) or ``WxH`` as (width, height); sides even, from 16 to 4096."""
    match = SIZE.fullmatch(text.strip())
    if not match:
        raise MnmError(f"--size: expected N or WxH (e.g. 512 or 1280x720), got {text!r}")
    width = int(match[1])
    height = int(match[2]) if match[2] else width
    for side in (width, height):
        if not MIN_SIDE <= side <= MAX_SIDE or side % 2:
            raise MnmError(f"--size {text}: each side must be even and from {MIN_SIDE} to {MAX_SIDE}, got {side}")
    return width, height


def fit_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``frame`` (H x W x 3) scaled to fit ``size`` = (width, height), centred on black when the shapes differ."""
    width, height = size
    h, w = frame.shape[:2]
    if (w, h) == (width, height):
        return frame
    scale = min(width / w, height / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    interpolation = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
    resized = cv2.resize(frame, (new_w, new_h), interpolation=interpolation)
    if (new_w, new_h) == (width, height):
        return resized
    canvas = np.zeros((height, width, 3), np.uint8)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = resized
    return canvas
