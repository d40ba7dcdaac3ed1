"""A labelled grid image: generated cells, with each varying factor's references along the axes.

Layout: a caption names the factors that stay fixed; the column factor's reference thumbnails run
along the top, and each row factor gets a column of thumbnails on the left (several row factors
give several columns, so every row shows which references produced it). Code references (``code:3``,
``seed:1``, ``random``) appear as text tiles. Small models are enlarged with nearest-neighbour
scaling so the cells stay readable; text is drawn with OpenCV's built-in font (no font files).
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


@dataclass
class Axis:
    """One factor along an axis: its name and, per position, a thumbnail (or None) and a label."""

    name: str
    thumbnails: list[np.ndarray | None]
    labels: list[str]


def text_tile(text: str, size: int) -> np.ndarray:
    """A grey square with ``text`` centred: the thumbnail of a code reference."""
    tile = np.full((size, size, 3), TILE, np.uint8)
    _put_text(tile, text, 0, size // 2 - 6, size, center=True)
    return tile


def compose(cells: list[np.ndarray], rows: list[Axis], cols: Axis | None, caption: str = "") -> np.ndarray:
    """Cells in row-major order (``len(rows[0].labels)`` rows, ``len(cols.labels)`` columns) → one image.

    ``rows`` may be empty (one row) and ``cols`` None (one column). Columns with no thumbnail at
    all (a comparison of modes, say) get their labels as a header line instead of text tiles.
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
    top = (TITLE_H if caption else 0) + ((TITLE_H + step_y) if col_tiles else TITLE_H if cols else 0)
    height = top + n_rows * step_y + PAD
    width = max(left + n_cols * step_x + PAD, _text_width(caption) + 2 * PAD)
    canvas = np.full((height, width, 3), WHITE, np.uint8)
    y0 = PAD
    if caption:
        _put_text(canvas, caption, PAD, y0, width - PAD)
        y0 += TITLE_H
    if col_tiles:
        _put_text(canvas, cols.name, left + PAD, y0, n_cols * step_x)
        for j in range(n_cols):
            _place(canvas, _thumb(cols, j, cell), cols.labels[j], left + PAD + j * step_x, y0 + TITLE_H)
        y0 += TITLE_H + step_y
    elif cols:
        for j in range(n_cols):
            _put_text(canvas, cols.labels[j], left + PAD + j * step_x, y0, cell, center=True)
        y0 += TITLE_H
    for a, axis in enumerate(rows):
        x = PAD + a * step_x
        _put_text(canvas, axis.name, x, y0 - TITLE_H, step_x - PAD)
        for i in range(n_rows):
            _place(canvas, _thumb(axis, i, cell), axis.labels[i], x, y0 + i * step_y)
    for index, image in enumerate(cells):
        i, j = divmod(index, n_cols)
        big = cv2.resize(image, (cell, cell), interpolation=cv2.INTER_NEAREST) if scale > 1 else image
        x, y = left + PAD + j * step_x, y0 + i * step_y
        canvas[y : y + cell, x : x + cell] = big
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
