"""Background families: a pattern (sky, water, foliage, bark, sand, bokeh, reeds) times a palette.

The family fixes the pattern and the palette from (seed, b); every image draws its own layout
(noise, phases, blobs, blades) and a small palette jitter, so no two backgrounds are the same
picture but a family is recognisable.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from mnm.training.synthetic.colour import GOLDEN, hsv, hue_name, mix
from mnm.training.synthetic.spec import DOMAIN_BACKGROUND, rng_for

# Each pattern's natural palette (hue, saturation, value); later rounds of families rotate the hue.
NATURAL = {
    "sky": (0.58, 0.45, 0.92), "water": (0.53, 0.55, 0.65), "foliage": (0.30, 0.6, 0.6),
    "bark": (0.07, 0.5, 0.5), "sand": (0.11, 0.35, 0.85), "bokeh": (0.75, 0.5, 0.45),
    "reeds": (0.20, 0.55, 0.7),
}
PATTERNS = tuple(NATURAL)


@dataclass(frozen=True)
class BackgroundFamily:
    index: int
    pattern: str
    hue: float
    sat: float
    value: float
    scale: float  # feature size multiplier

    @property
    def name(self) -> str:
        return f"{self.pattern}_{hue_name(self.hue)}"


@lru_cache(maxsize=65536)
def background_family(seed: int, b: int) -> BackgroundFamily:
    pattern = PATTERNS[b % len(PATTERNS)]
    h, s, v = NATURAL[pattern]
    r = rng_for(seed, DOMAIN_BACKGROUND, b)
    hue = (h + (b // len(PATTERNS)) * GOLDEN + r.uniform(-0.03, 0.03)) % 1.0
    sat, value = min(1.0, s * r.uniform(0.8, 1.2)), min(1.0, v * r.uniform(0.85, 1.1))
    return BackgroundFamily(index=b, pattern=pattern, hue=float(hue), sat=float(sat), value=float(value),
                            scale=float(r.uniform(0.7, 1.4)))


def _noise(rng: np.random.Generator, size: int, cells_x: float, cells_y: float) -> np.ndarray:
    """Smooth value noise in [0, 1]: a random grid upsampled with cubic interpolation."""
    grid = rng.random((max(2, int(round(cells_y)) + 1), max(2, int(round(cells_x)) + 1))).astype(np.float32)
    return np.clip(cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def _fbm(rng: np.random.Generator, size: int, cells: float, octaves: int) -> np.ndarray:
    total = sum(0.5**i * _noise(rng, size, cells * 2**i, cells * 2**i) for i in range(octaves))
    return total / sum(0.5**i for i in range(octaves))


def draw_background(fam: BackgroundFamily, size: int, rng: np.random.Generator) -> np.ndarray:
    """One background of family ``fam``: [size, size, 3] float32 RGB in [0, 1]."""
    hue = fam.hue + rng.uniform(-0.015, 0.015)
    sat = fam.sat * rng.uniform(0.9, 1.1)
    val = fam.value * rng.uniform(0.92, 1.08)
    y, x = (np.mgrid[0:size, 0:size].astype(np.float32) + 0.5) / size
    u = rng.uniform
    if fam.pattern == "sky":
        a = u(-0.25, 0.25)
        img = mix(hsv(hue, sat, 0.85 * val), hsv(hue, 0.3 * sat, 1.08 * val),
                  np.clip(y * np.cos(a) + (x - 0.5) * np.sin(a), 0, 1))
        clouds = np.clip((_fbm(rng, size, 3 / fam.scale, 3) - u(0.5, 0.65)) / 0.15, 0, 1) * u(0.5, 0.9)
        img = mix(img, hsv(hue, 0.05, 0.98), clouds)
    elif fam.pattern == "water":
        wave = y + u(0.01, 0.04) * np.sin(2 * np.pi * u(4, 10) * x + u(0, 2 * np.pi))
        wave = wave + 0.03 * _noise(rng, size, 6, 6)
        m = (0.5 + 0.5 * np.sin(2 * np.pi * wave / (u(0.05, 0.12) * fam.scale) + u(0, 2 * np.pi))) ** 3
        img = mix(hsv(hue, sat, val), hsv(hue + 0.02, 0.6 * sat, 1.3 * val), m) * (1 - 0.25 * y)[..., None]
    elif fam.pattern == "foliage":
        t = _fbm(rng, size, 4 / fam.scale, 3)
        dark, mid = hsv(hue, sat, 0.4 * val), hsv(hue + 0.03, sat, val)
        light = hsv(hue + 0.06, 0.8 * sat, 1.35 * val)
        img = np.where((t < 0.5)[..., None], mix(dark, mid, np.clip(2 * t, 0, 1)),
                       mix(mid, light, np.clip(2 * t - 1, 0, 1)))
        leaves = np.clip((_noise(rng, size, 14, 14) - 0.72) / 0.08, 0, 1)
        img = mix(img, light, 0.6 * leaves)
    elif fam.pattern == "bark":
        streak = 0.7 * _noise(rng, size, 12 / fam.scale, 2) + 0.3 * _noise(rng, size, 40, 4)
        crack = np.exp(-(((_noise(rng, size, 10 / fam.scale, 3) - 0.5) / 0.04) ** 2))
        img = mix(hsv(hue, sat, 0.45 * val), hsv(hue + 0.02, 0.8 * sat, 1.1 * val), streak)
        img = img * (1 - 0.6 * crack)[..., None]
    elif fam.pattern == "sand":
        a = u(0, np.pi)
        dunes = 0.5 + 0.5 * np.sin(2 * np.pi * (x * np.cos(a) + y * np.sin(a)) / (u(0.2, 0.4) * fam.scale)
                                   + 3 * _noise(rng, size, 3, 3))
        img = mix(hsv(hue, sat, 0.8 * val), hsv(hue, 0.7 * sat, val), dunes)
        img = img * (1 + rng.uniform(-0.06, 0.06, (size, size, 1)).astype(np.float32))
    elif fam.pattern == "bokeh":
        img = mix(hsv(hue, sat, 0.6 * val), hsv(hue + 0.05, sat, 0.3 * val), y)
        for _ in range(int(rng.integers(6, 16))):
            blob = np.zeros((size, size), np.float32)
            radius = max(1, int(u(0.04, 0.14) * size * fam.scale))
            cv2.circle(blob, (int(u(0, size)), int(u(0, size))), radius, 1.0, -1)
            colour = hsv(hue + u(-0.12, 0.12), sat * u(0.3, 0.9), u(0.6, 1.0))
            img = mix(img, colour, blob * u(0.3, 0.7))
        img = cv2.GaussianBlur(img, (0, 0), 0.01 * size + 0.5)
    else:  # reeds
        img = mix(hsv(hue, 0.5 * sat, 1.1 * val), hsv(hue, sat, 0.6 * val), y)
        for _ in range(int(rng.integers(15, 35))):
            x0 = u(0, 1)
            colour = hsv(hue + u(-0.05, 0.05), sat * u(0.7, 1.1), val * u(0.5, 1.1))
            top = (int((x0 + u(-0.15, 0.15)) * size), int(u(0.1, 0.8) * size))
            width = max(1, int(size / 64 * u(1, 3)))
            cv2.line(img, (int(x0 * size), size), top, colour.tolist(), width, cv2.LINE_AA)
    return np.clip(img, 0.0, 1.0).astype(np.float32)
