"""Textures (the child codes): colours and a pattern, each texture belonging to one shape family.

Texture c's main hue follows a golden-ratio sequence and its brightness a second low-discrepancy
sequence, so any run of textures (a family's k children, or all of them) is spread over colour
space and a colour histogram tells them apart; the rest comes from (seed, c). Patterns live in
object coordinates, so they turn and flip with the bird.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from mnm.training.synthetic.colour import GOLDEN, hsv, hue_name, mix
from mnm.training.synthetic.shapes import BEAK, BODY_LIKE, CREST, EYE, HEAD, LEG, TAIL, WING
from mnm.training.synthetic.spec import DOMAIN_TEXTURE, DOMAIN_WORLD, rng_for

PATTERNS = ("solid", "stripes", "spots", "gradient", "two_tone", "belly")
PLASTIC = 0.7548776662466927  # second low-discrepancy step, decorrelated from GOLDEN
ACCENTS = ((0.13, 0.9, 0.95), (0.07, 0.9, 0.9), (0.0, 0.0, 0.15), (0.0, 0.0, 0.55), (0.98, 0.75, 0.8))


@dataclass(frozen=True)
class Texture:
    index: int
    pattern: str
    hue: float
    primary: tuple[float, float, float]
    secondary: tuple[float, float, float]
    head: tuple[float, float, float]
    accent: tuple[float, float, float]  # beak and legs
    period: float  # stripe and spot spacing, in body lengths
    angle: float  # stripe and gradient direction, degrees
    salt: float  # places the spots

    @property
    def name(self) -> str:
        return f"{self.pattern}_{hue_name(self.hue)}"


@lru_cache(maxsize=65536)
def texture(seed: int, c: int, textures_per_shape: int) -> Texture:
    """Texture c of the world with this seed (its family is c // textures_per_shape)."""
    hue = (rng_for(seed, DOMAIN_WORLD, 1).random() + c * GOLDEN) % 1.0
    value = 0.6 + 0.35 * ((c * PLASTIC) % 1.0)
    r = rng_for(seed, DOMAIN_TEXTURE, c)
    sat = r.uniform(0.6, 0.95)
    primary = hsv(hue, sat, value)
    secondary = (
        hsv(hue + 0.5, 0.85 * sat, 0.9 * value),  # complementary
        hsv(hue, 0.7 * sat, 0.3 * value),  # dark
        hsv(hue + 0.03, 0.25 * sat, 0.97),  # pale
        hsv(hue + r.choice([-0.15, 0.15]), sat, 0.85 * value),  # analogous
    )[int(r.integers(4))]
    head = (primary, secondary, hsv(hue + 0.33, 0.8, 0.8))[int(r.integers(3))]
    accent = hsv(*ACCENTS[int(r.integers(len(ACCENTS)))])
    pattern = PATTERNS[(c % textures_per_shape + c // textures_per_shape) % len(PATTERNS)]
    return Texture(
        index=c, pattern=pattern, hue=float(hue), primary=tuple(primary.tolist()),
        secondary=tuple(secondary.tolist()), head=tuple(head.tolist()), accent=tuple(accent.tolist()),
        period=float(r.uniform(0.1, 0.2)), angle=float(r.uniform(-35.0, 35.0)), salt=float(r.uniform(0, 100)),
    )


def pattern_weight(tex: Texture, labels: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Where the secondary colour shows on body-like parts: a weight in [0, 1] per pixel."""
    a = np.deg2rad(tex.angle)
    along = u * np.cos(a) + v * np.sin(a)
    q = tex.period
    if tex.pattern == "stripes":
        return (np.mod(along / q, 1.0) < 0.45).astype(np.float32)
    if tex.pattern == "spots":
        cu, cv = np.floor(u / q), np.floor(v / q)
        h1 = np.mod(np.sin(cu * 12.9898 + cv * 78.233 + tex.salt) * 43758.5453, 1.0)
        h2 = np.mod(np.sin(cu * 39.3468 + cv * 11.135 + tex.salt) * 24634.6345, 1.0)
        d = np.hypot(u - (cu + 0.3 + 0.4 * h1) * q, v - (cv + 0.3 + 0.4 * h2) * q)
        return (d < 0.28 * q).astype(np.float32)
    if tex.pattern == "gradient":
        return np.clip(along / 0.9 + 0.5, 0.0, 1.0).astype(np.float32)
    if tex.pattern == "two_tone":
        return np.isin(labels, (WING, TAIL)).astype(np.float32)
    if tex.pattern == "belly":
        return (v > 0.05).astype(np.float32)
    return np.zeros(labels.shape, np.float32)


def paint(tex: Texture, labels: np.ndarray, u: np.ndarray, v: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] of every labelled pixel; ``u, v`` are its object coordinates, ``gain`` the
    per-image lighting (an RGB multiplier near 1)."""
    primary, secondary = np.array(tex.primary, np.float32), np.array(tex.secondary, np.float32)
    out = mix(primary, secondary, pattern_weight(tex, labels, u, v))
    if tex.pattern != "two_tone":
        out[labels == WING] *= 0.82  # a folded or raised wing still reads as a wing
    for part, colour in ((HEAD, tex.head), (CREST, tex.secondary), (BEAK, tex.accent), (LEG, tex.accent),
                         (EYE, (0.04, 0.04, 0.04))):
        out[labels == part] = colour
    shade = 1.08 - 0.25 * np.clip((v + 0.4) / 1.0, 0.0, 1.0)
    shade = np.where(np.isin(labels, BODY_LIKE + (HEAD,)), shade, 1.0).astype(np.float32)
    return np.clip(out * shade[..., None] * gain, 0.0, 1.0)
