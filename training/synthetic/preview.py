"""A labelled contact sheet of samples, so a person can see at a glance what a dataset holds."""

from __future__ import annotations

import cv2
import numpy as np

TILE = 128
LABEL_HEIGHT = 16


def preview_grid(tiles: list[tuple[np.ndarray, str]], columns: int = 8) -> np.ndarray:
    """RGB images with one short label each → one RGB sheet, the label on a strip under each tile."""
    columns = max(1, min(columns, len(tiles)))
    rows = -(-len(tiles) // columns)
    cell_h = TILE + LABEL_HEIGHT
    sheet = np.full((rows * cell_h, columns * TILE, 3), 32, np.uint8)
    for i, (image, label) in enumerate(tiles):
        y, x = (i // columns) * cell_h, (i % columns) * TILE
        grow = image.shape[0] < TILE
        sheet[y:y + TILE, x:x + TILE] = cv2.resize(
            image, (TILE, TILE), interpolation=cv2.INTER_NEAREST if grow else cv2.INTER_AREA)
        cv2.putText(sheet, label, (x + 4, y + TILE + LABEL_HEIGHT - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (235, 235, 235), 1, cv2.LINE_AA)
    return sheet
