"""What the pipeline returns: a generated image with its float outputs and codes, and grids of them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mnm.runtime import grid as grid_layout


@dataclass
class Rendered:
    """A generated image: ``image`` H x W x 3 uint8 (stitched if asked), ``outputs`` the float
    arrays (3 x S x S / 1 x S x S in the model's ranges: g_child's outputs plus ``background`` and
    ``shape_feature``), ``codes`` the codes used (z_bg, b, c, and z_pose, p in code mode).
    ``outputs`` and ``codes`` are read-only (the pipeline's caches share them): copy to edit."""

    image: np.ndarray
    outputs: dict[str, np.ndarray]
    codes: dict[str, np.ndarray]


@dataclass
class Grid:
    """The cells of a grid in row-major order and the axes that label them; ``image()`` draws it."""

    cells: list[Rendered]
    rows: list[grid_layout.Axis]
    cols: grid_layout.Axis | None
    caption: str = ""
    shape: tuple[int, int] = (1, 1)
    fixed: list[grid_layout.Axis] = field(default_factory=list)  # the factors every cell shares

    def image(self) -> np.ndarray:
        return grid_layout.compose([c.image for c in self.cells], self.rows, self.cols, self.caption, self.fixed)
