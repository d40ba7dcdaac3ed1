"""The labelled grid layout: cells land where the axes say, header-only columns stay compact, and the
fixed factors are shown with their names."""

from __future__ import annotations

import numpy as np

from mnm.runtime.grid import LABEL_H, MIN_CELL, PAD, TITLE_H, Axis, compose
from tests.util import find_tile


def _cells(n: int, side: int) -> list[np.ndarray]:
    """Cells of distinct saturated colours, which neither grey text nor the thumbnails contain."""
    return [np.full((side, side, 3), (20 + 40 * k, 250 - 30 * k, 77), np.uint8) for k in range(n)]


def _cell_origins(canvas: np.ndarray, cells: list[np.ndarray]) -> list[tuple[int, int]]:
    """Top-left corner of each uniformly coloured cell, found by its colour."""
    origins = []
    for cell in cells:
        ys, xs = np.nonzero((canvas == cell[0, 0]).all(axis=2))
        origins.append((int(ys.min()), int(xs.min())))
    return origins


def test_cells_follow_rows_and_columns_and_small_cells_are_enlarged():
    cells = _cells(6, 32)
    thumbs = [np.full((32, 32, 3), 200, np.uint8)] * 3
    canvas = compose(cells, rows=[Axis("background", thumbs[:2], ["a", "b"])],
                     cols=Axis("texture", thumbs, ["x", "y", "z"]), caption="pose fixed")
    origins = _cell_origins(canvas, cells)
    ys = sorted({y for y, _ in origins})
    xs = sorted({x for _, x in origins})
    assert len(ys) == 2 and len(xs) == 3  # 2 rows x 3 columns
    assert origins == [(ys[i], xs[j]) for i in range(2) for j in range(3)]  # row-major
    cell = MIN_CELL  # 32 px cells are scaled x3 to 96
    for y, x in origins:
        assert (canvas[y:y + cell, x:x + cell] == canvas[y, x]).all()


def test_columns_without_thumbnails_get_a_header_line_not_tiles():
    cells = _cells(4, 32)
    rows = [Axis("A", [np.zeros((32, 32, 3), np.uint8)] * 2, ["a1", "a2"])]
    tiles = compose(cells, rows, Axis("mode", [np.full((32, 32, 3), 200, np.uint8)] * 2, ["code", "feature"]))
    header = compose(cells, rows, Axis("mode", [None, None], ["code", "feature"]))
    assert tiles.shape[1] == header.shape[1]
    assert tiles.shape[0] - header.shape[0] == TITLE_H + MIN_CELL + LABEL_H + PAD  # no band of column tiles
    first_cell_y = _cell_origins(header, cells)[0][0]
    assert first_cell_y == PAD + TITLE_H
    assert (header[PAD:first_cell_y] < 128).any()  # the column labels are drawn above the cells


def test_fixed_factors_are_drawn_above_the_grid_with_their_names():
    rng = np.random.default_rng(0)
    cells = _cells(2, 32)
    pose, texture = (rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(2))
    fixed = [Axis("pose", [pose], ["bird.png"]), Axis("shape", [None], ["code:2"])]
    plain = compose(cells, rows=[], cols=Axis("texture", [texture, texture], ["t1", "t2"]))
    canvas = compose(cells, rows=[], cols=Axis("texture", [texture, texture], ["t1", "t2"]), fixed=fixed)
    big = np.repeat(np.repeat(pose, 3, axis=0), 3, axis=1)  # nearest-neighbour x3, as the cells
    [(y, x)] = find_tile(canvas, big)
    first_cell_y = _cell_origins(canvas, cells)[0][0]
    assert (y, x) == (PAD + TITLE_H, PAD) and y + MIN_CELL < first_cell_y  # the fixed band comes first
    assert canvas.shape[0] - plain.shape[0] == TITLE_H + MIN_CELL + 2 * LABEL_H + PAD
    name_line = canvas[y + MIN_CELL : y + MIN_CELL + LABEL_H, x : x + MIN_CELL]
    assert (name_line < 128).any()  # the factor's name under its tile
    code_tile = canvas[y : y + MIN_CELL, x + MIN_CELL + PAD : x + 2 * MIN_CELL + PAD]
    assert (code_tile == 225).mean() > 0.8 and (code_tile < 128).any()  # a grey text tile for code:2
