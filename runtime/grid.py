"""A labelled grid image: generated cells, with every reference they were made from shown beside them.

The picture explains itself: each factor is named (background, pose, shape, texture) next to the
reference images it came from, the ones that vary along the axes and the ones every cell shares.
Layout, top to bottom, in bands (``compose`` is the one definition; the C library ports it):

1. caption line (optional), e.g. "code mode";
2. fixed band (when a factor is the same in every cell): the heading "same in every cell:", then
   per fixed factor a tile with two label lines below it: the factor's name, the reference's label;
3. column band (when the column factor has a thumbnail): its factor's name, then per column a tile
   with the reference's label below it;
4. names line: each row factor's name above its column of row heads; columns without thumbnails
   (a comparison of modes, say) put their labels here, centred over the cells;
5. the rows: per row, one head tile per row factor (label below) and then the cells.

Code references (``code:3``, ``seed:1``, ``random``) appear as grey text tiles. Small models are
enlarged with nearest-neighbour scaling so the cells stay readable; text is drawn with OpenCV's
built-in font (no font files) and shortened with ".." to fit its tile.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MIN_CELL = 96
"""Cells smaller than this many pixels are scaled up by an integer factor."""
PAD = 4
LABEL_H = 14
TITLE_H = 16
FONT = cv2.FONT_HERSHEY_SIMPLEX
FONT_SCALE = 0.38
WHITE, INK, TILE = 255, (30, 30, 30), (225, 225, 225)
FIXED_HEADING = "same in every cell:"


@dataclass
class Axis:
    """One factor: its name and, per position, a thumbnail (or None) and a label. A fixed factor is
    an axis with one position."""

    name: str
    thumbnails: list[np.ndarray | None]
    labels: list[str]


def text_tile(text: str, size: int) -> np.ndarray:
    """A grey square with ``text`` centred: the thumbnail of a code reference."""
    tile = np.full((size, size, 3), TILE, np.uint8)
    _put_text(tile, text, 0, size // 2 - 6, size, center=True)
    return tile


def compose(cells: list[np.ndarray], rows: list[Axis], cols: Axis | None, caption: str = "",
            fixed: list[Axis] = ()) -> np.ndarray:
    """Cells in row-major order (``len(rows[0].labels)`` rows, ``len(cols.labels)`` columns) → one image.

    ``rows`` may be empty (one row) and ``cols`` None (one column); ``fixed`` are the factors every
    cell shares, one position each.
    """
    n_rows = len(rows[0].labels) if rows else 1
    n_cols = len(cols.labels) if cols else 1
    if len(cells) != n_rows * n_cols:
        raise ValueError(f"{len(cells)} cells for a {n_rows} x {n_cols} grid")
    side = cells[0].shape[0]
    scale = max(1, -(-MIN_CELL // side))
    cell = side * scale
    step_x, step_y = cell + PAD, cell + LABEL_H + PAD
    left = len(rows) * step_x
    col_tiles = cols is not None and any(t is not None for t in cols.thumbnails)
    names_line = bool(rows) or (cols is not None and not col_tiles)
    top = ((TITLE_H if caption else 0) + (TITLE_H + step_y + LABEL_H if fixed else 0)
           + (TITLE_H + step_y if col_tiles else 0) + (TITLE_H if names_line else 0))
    height = top + n_rows * step_y + PAD
    width = max(left + n_cols * step_x + PAD, _text_width(caption) + 2 * PAD, len(fixed) * step_x + PAD,
                _text_width(FIXED_HEADING) + 2 * PAD if fixed else 0)
    canvas = np.full((height, width, 3), WHITE, np.uint8)
    y = PAD
    if caption:
        _put_text(canvas, caption, PAD, y, width - PAD)
        y += TITLE_H
    if fixed:
        _put_text(canvas, FIXED_HEADING, PAD, y, width - PAD)
        for k, factor in enumerate(fixed):
            x = PAD + k * step_x
            _place(canvas, _thumb(factor, 0, cell), factor.name, x, y + TITLE_H)
            _put_text(canvas, factor.labels[0], x, y + TITLE_H + cell + 1 + LABEL_H, cell)
        y += TITLE_H + step_y + LABEL_H
    if col_tiles:
        _put_text(canvas, cols.name, left + PAD, y, n_cols * step_x)
        for j in range(n_cols):
            _place(canvas, _thumb(cols, j, cell), cols.labels[j], left + PAD + j * step_x, y + TITLE_H)
        y += TITLE_H + step_y
    if names_line:
        for a, axis in enumerate(rows):
            _put_text(canvas, axis.name, PAD + a * step_x, y, step_x - PAD)
        if cols is not None and not col_tiles:
            for j in range(n_cols):
                _put_text(canvas, cols.labels[j], left + PAD + j * step_x, y, cell, center=True)
        y += TITLE_H
    for a, axis in enumerate(rows):
        for i in range(n_rows):
            _place(canvas, _thumb(axis, i, cell), axis.labels[i], PAD + a * step_x, y + i * step_y)
    for index, image in enumerate(cells):
        i, j = divmod(index, n_cols)
        big = cv2.resize(image, (cell, cell), interpolation=cv2.INTER_NEAREST) if scale > 1 else image
        x0, y0 = left + PAD + j * step_x, y + i * step_y
        canvas[y0 : y0 + cell, x0 : x0 + cell] = big
    return canvas


def _thumb(axis: Axis, index: int, cell: int) -> np.ndarray:
    image = axis.thumbnails[index]
    if image is None:
        return text_tile(axis.labels[index], cell)
    return cv2.resize(image, (cell, cell), interpolation=cv2.INTER_AREA if image.shape[0] > cell else cv2.INTER_NEAREST)


def _place(canvas: np.ndarray, tile: np.ndarray, label: str, x: int, y: int) -> None:
    size = tile.shape[0]
    canvas[y : y + size, x : x + size] = tile
    _put_text(canvas, label, x, y + size + 1, size)


def _text_width(text: str) -> int:
    return cv2.getTextSize(text, FONT, FONT_SCALE, 1)[0][0] if text else 0


def _put_text(canvas: np.ndarray, text: str, x: int, y: int, max_width: int, center: bool = False) -> None:
    """Draw one line with its top at ``y``, shortened with '..' to fit ``max_width`` pixels."""
    while text and _text_width(text) > max_width:
        text = text[:-3] + ".." if len(text) > 3 else text[:-1]
    if not text:
        return
    (w, h), _ = cv2.getTextSize(text, FONT, FONT_SCALE, 1)
    if center:
        x += max(0, (max_width - w) // 2)
    cv2.putText(canvas, text, (x, y + h + 2), FONT, FONT_SCALE, INK, 1, cv2.LINE_AA)
