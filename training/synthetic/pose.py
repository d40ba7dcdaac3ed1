"""Continuous pose: rotation, scale, translation, facing; sampling that keeps the object in view.

Pose values are fractions of the image side, so one pose renders the same scene at any size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from mnm.errors import MnmError
from mnm.training.synthetic.shapes import rotate

ROTATION_RANGE = 25.0  # degrees either way
MARGIN = 0.02  # fraction of the image side kept free at every border


@dataclass(frozen=True)
class Pose:
    rotation: float  # degrees, counter-clockwise on screen
    scale: float  # body length / image side
    tx: float  # body centre right of the image centre, / image side
    ty: float  # body centre below the image centre, / image side
    facing: int  # +1: beak to the right, -1: to the left

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Pose:
        try:
            pose = cls(rotation=float(data["rotation"]), scale=float(data["scale"]), tx=float(data["tx"]),
                       ty=float(data["ty"]), facing=int(data["facing"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise MnmError(f"pose needs numbers rotation, scale, tx, ty and facing ±1: {exc}") from None
        if pose.facing not in (1, -1) or pose.scale <= 0:
            raise MnmError(f"pose facing must be 1 or -1 and scale positive, got {data}")
        return pose

    def apply(self, points: np.ndarray, size: float) -> np.ndarray:
        """Object coordinates → continuous pixel coordinates (pixel i spans [i, i+1))."""
        pts = np.asarray(points, np.float64) * np.array([self.facing, 1.0])
        pts = rotate(pts, self.rotation) * (self.scale * size)
        return pts + size * np.array([0.5 + self.tx, 0.5 + self.ty])

    def invert(self, xy: np.ndarray, size: float) -> np.ndarray:
        """Continuous pixel coordinates → object coordinates (the inverse of ``apply``)."""
        centre = size * np.array([0.5 + self.tx, 0.5 + self.ty])
        pts = (np.asarray(xy, np.float64) - centre) / (self.scale * size)
        return rotate(pts, -self.rotation) * np.array([self.facing, 1.0])


def sample_pose(rng: np.random.Generator, points: np.ndarray, fill_range: tuple[float, float]) -> Pose:
    """A random pose under which every one of ``points`` (the object's vertices) stays in view, its
    larger box side a fraction of the image side drawn uniformly from ``fill_range``."""
    facing = 1 if rng.random() < 0.5 else -1
    rotation = rng.uniform(-ROTATION_RANGE, ROTATION_RANGE)
    fill = rng.uniform(*fill_range)
    unit = Pose(rotation, 1.0, 0.0, 0.0, facing).apply(points, 1.0) - 0.5
    lo, hi = unit.min(axis=0), unit.max(axis=0)
    scale = fill / float((hi - lo).max())
    lo, hi = lo * scale, hi * scale
    tx = rng.uniform(-0.5 + MARGIN - lo[0], 0.5 - MARGIN - hi[0])
    ty = rng.uniform(-0.5 + MARGIN - lo[1], 0.5 - MARGIN - hi[1])
    return Pose(rotation=float(rotation), scale=float(scale), tx=float(tx), ty=float(ty), facing=facing)
