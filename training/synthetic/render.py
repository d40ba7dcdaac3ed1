"""One scene: factors (b, p, c, pose and jitter keys) → image, object mask and ground truth.

The object is filled part by part with OpenCV at a supersampled resolution and block-averaged
down, which anti-aliases its edges and gives the mask as exact coverage at the same time.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import cv2
import numpy as np

from mnm.errors import MnmError
from mnm.training.synthetic.backgrounds import background_family, draw_background
from mnm.training.synthetic.colour import to_uint8
from mnm.training.synthetic.pose import Pose, sample_pose
from mnm.training.synthetic.shapes import KEYPOINTS, shape_family, silhouette
from mnm.training.synthetic.spec import (
    DOMAIN_IMAGE,
    STREAM_BACKGROUND,
    STREAM_FACTORS,
    STREAM_TEXTURE,
    SynthSpec,
    rng_for,
)
from mnm.training.synthetic.textures import paint, texture

SHIFT = 4  # fractional bits of the polygon vertices given to cv2.fillPoly


def supersampling(size: int) -> int:
    """Supersampling factor: at least 2, and a 256-pixel canvas for small images."""
    return max(2, 256 // size)


@dataclass(frozen=True)
class Factors:
    """Everything a scene is made of. The keys name the image whose jitter is reused: the
    background layout (``background_key``) and the lighting of the texture (``texture_key``)."""

    b: int
    p: int
    c: int
    pose: Pose
    background_key: int
    texture_key: int

    def as_kwargs(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class Scene:
    image: np.ndarray  # [S, S, 3] uint8 RGB
    mask: np.ndarray  # [S, S] uint8 object coverage, 255 = fully object
    truth: dict  # b, p, c, pose, box [x, y, w, h] (or None), keypoints {name: [x, y, visible]}


def sample_factors(spec: SynthSpec, index: int) -> Factors:
    """The factors of image ``index``: texture uniform, shape its parent, background the texture's
    preferred family with probability rho (else uniform), a pose that keeps the bird in view."""
    r = rng_for(spec.seed, DOMAIN_IMAGE, index, STREAM_FACTORS)
    c = int(r.integers(spec.n_child))
    p = spec.parent(c)
    correlated, other = r.random() < spec.correlation, int(r.integers(spec.backgrounds))
    b = spec.preferred_background(c) if correlated else other
    pose = sample_pose(r, silhouette(shape_family(spec.seed, p)).points, (spec.object_min, spec.object_max))
    return Factors(b=b, p=p, c=c, pose=pose, background_key=index, texture_key=index)


def render_scene(spec: SynthSpec, index: int) -> Scene:
    """Image ``index`` of the dataset ``spec`` describes."""
    return render_from_factors(spec, **sample_factors(spec, index).as_kwargs())


def render_from_factors(spec: SynthSpec, b: int, p: int, c: int, pose: Pose,
                        background_key: int = 0, texture_key: int = 0) -> Scene:
    """A scene with chosen factors, in the world of ``spec`` (its seed, families and size).

    Any combination is allowed (texture c on a shape other than its parent), so the ideal result
    of a mix, e.g. background and texture of image A with shape and pose of image B, is
    ``render_from_factors(spec, A.b, B.p, A.c, B.pose, background_key=A, texture_key=A)``.
    """
    for name, value, count in (("b", b, spec.backgrounds), ("p", p, spec.shapes), ("c", c, spec.n_child)):
        if not 0 <= int(value) < count:
            raise MnmError(f"{name}={value} is out of range 0..{count - 1} for this synthetic dataset")
    size, f = spec.size, supersampling(spec.size)
    sil = silhouette(shape_family(spec.seed, int(p)))

    labels = np.zeros((size * f, size * f), np.uint8)
    for label, poly in sil.parts:
        pts = pose.apply(poly, size) * f - 0.5  # OpenCV puts pixel centres on integers
        cv2.fillPoly(labels, [np.rint(pts * (1 << SHIFT)).astype(np.int32)], int(label), cv2.LINE_8, SHIFT)

    foreground = np.zeros((size * f, size * f, 3), np.float32)
    x0, y0, w, h = cv2.boundingRect(labels)  # of the non-zero pixels
    if w:
        y1, x1 = y0 + h, x0 + w
        crop = labels[y0:y1, x0:x1]
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        uv = pose.invert(np.stack([xx + 0.5, yy + 0.5], axis=-1) / f, size)
        tr = rng_for(spec.seed, DOMAIN_IMAGE, texture_key, STREAM_TEXTURE)
        gain = (tr.uniform(0.9, 1.08) * (1 + tr.uniform(-0.03, 0.03, 3))).astype(np.float32)
        tex = texture(spec.seed, int(c), spec.textures_per_shape)
        colour = paint(tex, crop, uv[..., 0].astype(np.float32), uv[..., 1].astype(np.float32), gain)
        foreground[y0:y1, x0:x1] = colour * (crop > 0)[..., None]
    # Area interpolation by an integer factor is the exact f x f block mean.
    coverage = cv2.resize((labels > 0).astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    foreground = cv2.resize(foreground, (size, size), interpolation=cv2.INTER_AREA)

    bg_rng = rng_for(spec.seed, DOMAIN_IMAGE, background_key, STREAM_BACKGROUND)
    background = draw_background(background_family(spec.seed, int(b)), size, bg_rng)
    image = to_uint8(foreground + background * (1.0 - coverage[..., None]))
    mask = to_uint8(coverage)
    return Scene(image=image, mask=mask, truth={
        "b": int(b), "p": int(p), "c": int(c), "pose": pose.to_dict(), "box": mask_box(mask),
        "keypoints": _keypoints(sil.keypoints, pose, size),
    })


def mask_box(mask: np.ndarray) -> list[int] | None:
    """[x, y, w, h] in pixels of the smallest box holding every pixel the object touches."""
    x, y, w, h = cv2.boundingRect(mask)
    return [int(x), int(y), int(w), int(h)] if w else None


def _keypoints(points: dict[str, np.ndarray], pose: Pose, size: int) -> dict[str, list]:
    out = {}
    for name in KEYPOINTS:
        x, y = pose.apply(points[name], size)
        out[name] = [round(float(x), 3), round(float(y), 3), int(0 <= x < size and 0 <= y < size)]
    return out
