"""What each endpoint computes, as blocking functions that run on a worker thread.

Each takes the pipeline and a validated request and returns an ``Output``: the encoded image, its
codes and labels. They call the same ``Pipeline`` methods as ``mnm mix`` with the same arguments,
which is why a response equals the library's (and the CLI's) output for the same inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from mnm.imaging import encode_image
from mnm.runtime.pipeline import Pipeline
from mnm.runtime.requests import FACTORS, Factor, Mix
from mnm.runtime.server.inputs import Uploads, check_grid_size
from mnm.runtime.server.models import (
    FORMATS,
    Codes,
    EncodeRequest,
    GenerateRequest,
    GridCell,
    GridRequest,
    MixRequest,
)


class ImageLimits(NamedTuple):
    """Pixels one uploaded image, and all the images of one request, may decode to."""

    max_pixels: int
    max_request_pixels: int


@dataclass
class Output:
    """An image for the response and what the JSON form adds to it."""

    data: bytes
    format: str
    width: int
    height: int
    codes: Codes | None = None
    labels: dict[str, str] = field(default_factory=dict)
    cells: list[GridCell] = field(default_factory=list)
    shape: tuple[int, int] = (1, 1)

    @property
    def media_type(self) -> str:
        return FORMATS[self.format][1]


def mix(pipe: Pipeline, req: MixRequest, limits: ImageLimits) -> Output:
    factors = Uploads(pipe, *limits).factors({k: getattr(req, k) for k in FACTORS}, req.box)
    mix_ = pipe.make_mix(factors["background"], factors["pose"], factors["shape"], factors["texture"])
    rendered = pipe.render([mix_], mode=req.mode, seed=req.seed, stitch=req.stitch)[0]
    return _image(rendered.image, req.format, codes=codes_of(rendered.codes), labels=labels_of(mix_, req.mode))


def grid(pipe: Pipeline, req: GridRequest, limits: ImageLimits, max_images: int) -> Output:
    lists = {k: getattr(req, k) for k in FACTORS}
    check_grid_size(lists, max_images)
    uploads = Uploads(pipe, *limits)
    axes = {k: [uploads.factor(k, v, req.box) for v in values] if values else [None] for k, values in lists.items()}
    result = pipe.grid(axes["background"], axes["pose"], axes["shape"], axes["texture"],
                       mode=req.mode, seed=req.seed, stitch=req.stitch)
    rows, cols = result.shape
    labels = _cell_labels(axes, rows * cols, "random" if req.mode == "code" else "from pose")
    cells = [GridCell(row=i // cols, col=i % cols, labels=labels[i], codes=codes_of(cell.codes))
             for i, cell in enumerate(result.cells)]
    return _image(result.image(), req.format, cells=cells, shape=(rows, cols))


def encode(pipe: Pipeline, req: EncodeRequest, limits: ImageLimits) -> dict[str, np.ndarray]:
    array = Uploads(pipe, *limits).image(req.image, "image")
    codes = pipe.encode([array], factors=tuple(req.factors))
    return {name: value[0] for name, value in codes.items()}


def generate(pipe: Pipeline, req: GenerateRequest) -> Output:
    mix_ = Mix(
        background=Factor(code=req.b, z=req.z_bg).check("background"),
        pose=Factor(z=req.z_pose).check("pose"),
        shape=Factor(code=req.p).check("shape"),
        texture=Factor(code=req.c).check("texture"),
    )
    rendered = pipe.render([mix_], mode="code", seed=req.seed)[0]
    return _image(rendered.image, req.format, codes=codes_of(rendered.codes))


def codes_of(codes: dict[str, np.ndarray]) -> Codes:
    return Codes(**{name: np.asarray(value, np.float32).tolist() for name, value in codes.items()})


def labels_of(mix_: Mix, mode: str) -> dict[str, str]:
    """How each factor is shown (``mnm mix`` grid labels); a shape left out is random or from the pose."""
    no_shape = "random" if mode == "code" else "from pose"
    return {k: no_shape if getattr(mix_, k) is None else getattr(mix_, k).label for k in FACTORS}


def _cell_labels(axes: dict[str, list[Factor | None]], n: int, no_shape: str) -> list[dict[str, str]]:
    """Each cell's factor labels, in the grid's order (``Pipeline.grid``: the last varying factor
    along the columns, the others nested along the rows in the order background, pose, shape, texture).
    ``no_shape`` labels a shape left out."""
    varying = [k for k in FACTORS if len(axes[k]) > 1]
    cells = []
    for index in range(n):
        picks, rest = {}, index
        for kind in reversed(varying):
            rest, picks[kind] = divmod(rest, len(axes[kind]))
        chosen = {k: axes[k][picks.get(k, 0)] for k in FACTORS}
        cells.append({k: no_shape if f is None else f.label for k, f in chosen.items()})
    return cells


def _image(image: np.ndarray, fmt: str, **extra) -> Output:
    height, width = image.shape[:2]
    return Output(encode_image(image, FORMATS[fmt][0]), fmt, width, height, **extra)
