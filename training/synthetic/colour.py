"""Colour helpers shared by textures and backgrounds: HSV palettes, hue names, float↔uint8."""

from __future__ import annotations

import colorsys

import numpy as np

GOLDEN = 0.6180339887498949  # hue step of a low-discrepancy sequence: any run of k hues is well spread

_HUE_NAMES = ("red", "orange", "yellow", "lime", "green", "jade", "cyan", "azure", "blue", "violet",
              "magenta", "rose")


def hsv(h: float, s: float, v: float) -> np.ndarray:
    """One RGB colour in [0, 1] (float32) from hue (wraps), saturation and value (clipped)."""
    rgb = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return np.array(rgb, np.float32)


def hue_name(h: float) -> str:
    return _HUE_NAMES[int((h % 1.0) * 12 + 0.5) % 12]


def mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-pixel blend of colours (or colour maps) a and b with weight t in [0, 1] (HxW)."""
    t = t[..., None]
    return a * (1.0 - t) + b * t


def to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
