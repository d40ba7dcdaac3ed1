"""`ImageDataset`: validated records and the two training inputs of the paper for each image."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mnm.config import background_input_size
from mnm.errors import MnmError
from mnm.imaging import crop_resize, load_image, object_crop_box, to_model_input
from mnm.training.datasets.annotations import Record


def background_scale_side(size: int) -> int:
    """The short side the full image is resized to before the random B×B crop: S·76/64."""
    return round(size * 76 / 64)


def load_record(rec: Record) -> np.ndarray:
    """The decoded HxWx3 uint8 RGB image, checked against the size its header gave on opening."""
    img = load_image(rec.path)
    if img.shape[:2] != (rec.height, rec.width):
        raise MnmError(
            f"{rec.path}: decodes as {img.shape[1]}x{img.shape[0]} but its header said "
            f"{rec.width}x{rec.height} when the dataset was opened; the box would not match"
        )
    return img


@dataclass
class ImageDataset:
    """Records of one split of a dataset folder, with the per-image inputs the trainer needs."""

    root: Path
    format: str
    split: str
    records: list[Record]
    num_classes: int

    def __len__(self) -> int:
        return len(self.records)

    def load(self, i: int) -> np.ndarray:
        """Record i decoded: HxWx3 uint8 RGB."""
        return load_record(self.records[i])

    def sample(self, i: int, rng: np.random.Generator, size: int) -> dict:
        """The paper's two inputs for record i, with randomness drawn only from ``rng``.

        - ``object``: the square crop of side 1.5·max(w, h) around the box centre (clipped to
          the image), resized to size×size; 3xSxS float32 in [-1, 1].
        - ``background``: the full image resized so its short side is S·76/64 (aspect kept, as
          the reference's Scale does), then a random B×B crop (B = 126·S/128); 3xBxB float32.
        - ``box``: the object box warped into that crop, clipped to it, as float32
          (x0, y0, x1, y1) in background-input pixels.
        - A fair coin flips the background input and its box horizontally; the SAME coin flips
          the object crop, so both inputs of one sample show the object facing the same way.
        - ``label`` (-1 where the dataset has no labels) and ``index`` (= i).

        ``rng`` is drawn in a fixed order (crop x, crop y, flip), so one generator state gives
        one sample exactly: the trainer's per-sample generators make a resumed run identical.
        """
        rec = self.records[i]
        img = self.load(i)
        obj = crop_resize(img, object_crop_box(rec.box, rec.width, rec.height), size)

        side = background_input_size(size)
        scale = background_scale_side(size) / min(rec.width, rec.height)
        rw, rh = round(rec.width * scale), round(rec.height * scale)  # the short side is S·76/64 > B
        resized = cv2.resize(img, (rw, rh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        ox = int(rng.integers(0, rw - side + 1))
        oy = int(rng.integers(0, rh - side + 1))
        flip = bool(rng.random() < 0.5)
        background = resized[oy:oy + side, ox:ox + side]

        x, y, w, h = rec.box
        sx, sy = rw / rec.width, rh / rec.height
        x0, x1 = np.clip([x * sx - ox, (x + w) * sx - ox], 0, side)
        y0, y1 = np.clip([y * sy - oy, (y + h) * sy - oy], 0, side)
        if flip:
            background, obj = background[:, ::-1], obj[:, ::-1]
            x0, x1 = side - x1, side - x0
        return {
            "object": to_model_input(np.ascontiguousarray(obj)),
            "background": to_model_input(np.ascontiguousarray(background)),
            "box": np.array([x0, y0, x1, y1], np.float32),
            "label": -1 if rec.label is None else rec.label,
            "index": i,
        }

    def sample_batch(self, indices, rng: np.random.Generator, size: int) -> dict:
        """``sample`` for each index in order (drawing from the one ``rng``), stacked into arrays:
        object [N,3,S,S], background [N,3,B,B], box [N,4] float32, label and index [N] int64."""
        samples = [self.sample(int(i), rng, size) for i in indices]
        if not samples:
            raise MnmError("sample_batch needs at least one index")
        return {
            key: np.stack([s[key] for s in samples]) if key in ("object", "background", "box")
            else np.array([s[key] for s in samples], np.int64)
            for key in samples[0]
        }
