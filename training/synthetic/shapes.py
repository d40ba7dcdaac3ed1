"""Bird-like silhouette families: proportions drawn from (seed, family index), parts as polygons.

Object coordinates: body centre at the origin, x towards the beak (facing right), y down, body
length 1. Each family combines discrete traits (tail kind, leg length, wing carriage, crest),
assigned without repeats through a seeded permutation, with continuous proportions, so families
differ in outline and not only in size.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from mnm.training.synthetic.spec import DOMAIN_SHAPE, DOMAIN_WORLD, rng_for

# Part labels, in drawing order (later parts cover earlier ones). NECK is painted like the body.
LEG, TAIL, BODY, WING, NECK, HEAD, CREST, BEAK, EYE = range(1, 10)
BODY_LIKE = (TAIL, BODY, WING, NECK)
KEYPOINTS = ("beak_tip", "head", "tail_tip", "body_centre", "feet")

TAIL_KINDS = ("wedge", "fork", "fan", "pin")
# (tail kind, long legs, raised wings, crest): 32 combinations
TRAITS = tuple(itertools.product(TAIL_KINDS, (False, True), (False, True), (False, True)))


@dataclass(frozen=True)
class ShapeFamily:
    index: int
    tail: str
    long_legs: bool
    raised_wings: bool
    crest: bool
    body_aspect: float  # body height / length
    body_tilt: float  # degrees, head end up
    egg: float  # how much fuller the front of the body is than the rear
    neck: float
    neck_angle: float  # degrees above the body axis
    head_radius: float
    beak_length: float
    beak_width: float  # fraction of the head diameter
    beak_droop: float  # degrees below the horizontal
    beak_curve: float  # downward bend of the beak's centre line, fraction of its length
    tail_length: float
    tail_droop: float  # degrees below the body axis
    leg_length: float
    wing_length: float
    crest_size: float

    @property
    def name(self) -> str:
        legs = "wader" if self.long_legs else "percher"
        extras = ("_crested" if self.crest else "") + ("_flying" if self.raised_wings else "")
        return f"{self.tail}tail_{legs}{extras}"


@lru_cache(maxsize=4096)
def shape_family(seed: int, p: int) -> ShapeFamily:
    """Family p of the world with this seed: the same (seed, p) always gives the same family."""
    order = rng_for(seed, DOMAIN_WORLD, 0).permutation(len(TRAITS))
    tail, long_legs, raised, crest = TRAITS[int(order[p % len(TRAITS)])]
    r = rng_for(seed, DOMAIN_SHAPE, p)
    u = r.uniform
    return ShapeFamily(
        index=p, tail=tail, long_legs=long_legs, raised_wings=raised, crest=crest,
        body_aspect=u(0.42, 0.72), body_tilt=u(0.0, 35.0), egg=u(0.0, 0.3),
        neck=u(0.2, 0.45) if long_legs else u(0.0, 0.15), neck_angle=u(35.0, 70.0),
        head_radius=u(0.14, 0.24), beak_length=u(0.12, 0.5), beak_width=u(0.35, 0.7),
        beak_droop=u(-5.0, 25.0), beak_curve=u(-0.05, 0.3),
        tail_length=u(0.3, 0.65), tail_droop=u(-25.0, 35.0),
        leg_length=u(0.35, 0.6) if long_legs else u(0.08, 0.18),
        wing_length=u(0.55, 0.85), crest_size=u(0.9, 1.6),
    )


@dataclass(frozen=True)
class Silhouette:
    parts: tuple[tuple[int, np.ndarray], ...]  # (label, polygon [n, 2]) in drawing order
    keypoints: dict[str, np.ndarray]

    @property
    def points(self) -> np.ndarray:
        """Every vertex: the extent of the object, used to keep it in view."""
        return np.concatenate([poly for _, poly in self.parts])


def rotate(points, degrees: float) -> np.ndarray:
    """Counter-clockwise on screen (y down)."""
    t = np.deg2rad(degrees)
    c, s = np.cos(t), np.sin(t)
    pts = np.asarray(points, np.float64)
    return np.stack([pts[..., 0] * c + pts[..., 1] * s, -pts[..., 0] * s + pts[..., 1] * c], axis=-1)


def _ellipse(a: float, b: float, n: int = 48, egg: float = 0.0) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([a * np.cos(t), b * np.sin(t) * (1 + egg * np.cos(t))], axis=1)


def _strip(start, direction, length: float, w0: float, w1: float) -> np.ndarray:
    """A tapered band from start along direction: width w0 at the start, w1 at the end."""
    d = np.asarray(direction, np.float64) / np.linalg.norm(direction)
    n = np.array([-d[1], d[0]])
    end = start + d * length
    return np.array([start + n * w0 / 2, end + n * w1 / 2, end - n * w1 / 2, start - n * w0 / 2])


@lru_cache(maxsize=4096)
def silhouette(family: ShapeFamily) -> Silhouette:
    """The family's parts as polygons and its keypoints, in object coordinates (facing right)."""
    f = family
    a, b = 0.5, 0.5 * f.body_aspect
    body = rotate(_ellipse(a, b, egg=f.egg), f.body_tilt)

    def on_body(t: float, inset: float = 0.0) -> np.ndarray:
        point = np.array([a * np.cos(t), b * np.sin(t) * (1 + f.egg * np.cos(t))]) * (1 - inset)
        return rotate(point, f.body_tilt)

    hr = f.head_radius
    shoulder = on_body(-0.7, inset=0.15)
    neck_dir = rotate([1.0, 0.0], f.body_tilt + f.neck_angle)
    head_c = shoulder + neck_dir * (f.neck + 0.55 * hr)
    head = _ellipse(hr, hr, n=32) + head_c
    neck = _strip(shoulder, neck_dir, f.neck + 0.55 * hr, 1.9 * hr, 1.3 * hr)

    # Beak: a tapered band whose centre line bends down; its tip is a keypoint.
    beak_dir = rotate([1.0, 0.0], -f.beak_droop)
    beak_n = np.array([-beak_dir[1], beak_dir[0]])  # points down for a rightward beak
    base = head_c + beak_dir * 0.75 * hr
    s = np.linspace(0, 1, 9)[:, None]
    centre = base + beak_dir * f.beak_length * s + beak_n * f.beak_curve * f.beak_length * s**2
    half = f.beak_width * hr * (1 - s)
    beak = np.concatenate([centre - beak_n * half, (centre + beak_n * half)[::-1]])
    beak_tip = centre[-1]
    eye = _ellipse(0.17 * hr, 0.17 * hr, n=12) + head_c + np.array([0.3, -0.2]) * hr

    # Tail: from inside the rear of the body, backwards and drooping.
    tail_dir = rotate([-1.0, 0.0], f.body_tilt - f.tail_droop)
    tail_n = np.array([-tail_dir[1], tail_dir[0]])
    root = on_body(np.pi, inset=0.25)
    length = f.tail_length * (1.3 if f.tail == "pin" else 1.0)
    tail_tip = root + tail_dir * length
    if f.tail == "wedge":
        tail = _strip(root, tail_dir, length, 0.3, 0.02)
    elif f.tail == "pin":
        tail = _strip(root, tail_dir, length, 0.14, 0.03)
    elif f.tail == "fan":
        arc = np.linspace(-0.45, 0.45, 9)
        rim = root + length * (np.cos(arc)[:, None] * tail_dir + np.sin(arc)[:, None] * tail_n)
        tail = np.concatenate([[root + tail_n * 0.08], rim[::-1], [root - tail_n * 0.08]])
    else:  # fork: two prongs with a notch between them
        w = 0.3 * length
        tail = np.array([root + tail_n * 0.08, tail_tip + tail_n * w, root + tail_dir * 0.55 * length,
                         tail_tip - tail_n * w, root - tail_n * 0.08])

    # Legs hang straight down in object coordinates, with a toe pointing forward.
    legs, feet = [], []
    thick = 0.05 if f.long_legs else 0.06
    for t in (np.pi / 2 - 0.35, np.pi / 2 + 0.1):
        hip = on_body(t, inset=0.2)
        bottom = on_body(t)
        foot = bottom + np.array([0.0, f.leg_length])
        legs.append(_strip(hip, [0.0, 1.0], foot[1] - hip[1], thick, thick * 0.8))
        toe = _strip(foot - np.array([thick / 2, 0.0]), [1.0, 0.0], 0.1 + thick / 2, thick * 0.8, thick * 0.5)
        legs.append(toe)
        feet.append(foot)

    if f.raised_wings:
        front, rear = on_body(-np.pi / 2 + 0.45, 0.1), on_body(-np.pi / 2 - 0.6, 0.1)
        up = rotate([-0.5, -1.0], f.body_tilt) / np.hypot(0.5, 1.0)
        tip = (front + rear) / 2 + up * f.wing_length
        wing = np.array([front, front + up * 0.6 * f.wing_length + np.array([0.08, 0.0]), tip,
                         rear + up * 0.45 * f.wing_length - np.array([0.06, 0.0]), rear])
    else:
        wing = rotate(_ellipse(f.wing_length / 2, 0.55 * b, n=32) + np.array([-0.12, -0.05 * b]),
                      f.body_tilt - 8.0)

    parts = [(LEG, leg) for leg in legs]
    parts += [(TAIL, tail), (BODY, body), (WING, wing), (NECK, neck), (HEAD, head)]
    if f.crest:
        crest = np.array([head_c + np.array([0.2, -0.9]) * hr,
                          head_c + np.array([-0.9, -1.25]) * hr * f.crest_size,
                          head_c + np.array([-0.85, -0.3]) * hr])
        parts.append((CREST, crest))
    parts += [(BEAK, beak), (EYE, eye)]
    keypoints = {"beak_tip": beak_tip, "head": head_c, "tail_tip": tail_tip,
                 "body_centre": np.zeros(2), "feet": (feet[0] + feet[1]) / 2}
    return Silhouette(parts=tuple(parts), keypoints=keypoints)
