"""The reference images behind INT8 export: a calibration set and a held-out set (docs/int8.md).

``--calibrate DIR`` may be a dataset folder in any format the training side reads (its boxes give
the object crops, as in training) or a plain folder of images (largest centred square). Without
it, a synthetic set is rendered into a temporary folder (``mnm data synth`` with its defaults at
twice the model's side). Every fourth image (in sorted order) is held out: the quality gate mixes
those, and calibration never sees them. A folder written by ``mnm data synth`` also has ground
truth, and the gate then checks ``mnm eval disentangle`` too.
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnm.errors import MnmError
from mnm.imaging import load_image, prepare_reference, to_uint8

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
HELD_OUT_EVERY = 4
MAX_CALIBRATION = 64
MAX_HELD_OUT = 16
SYNTHETIC_IMAGES = 200  # its test split (ids divisible by 10) holds 20: enough distinct disentangle pairs


@dataclass
class References:
    calibration: np.ndarray  # [N, 3, S, S] float32 model inputs
    held_out: list[np.ndarray]  # S x S x 3 uint8 crops
    source: dict  # recorded in the manifest
    truth: Path | None  # a `mnm data synth` folder: ground truth for the disentangle check


@contextlib.contextmanager
def reference_set(folder: str | Path | None, size: int) -> Iterator[References]:
    """The references from ``folder`` (or a synthetic set, removed afterwards) at model side ``size``."""
    if folder is not None:
        yield _load(Path(folder), size, {"kind": "folder", "path": str(folder)})
        return
    from mnm.training.synthetic.writer import render_dataset

    with tempfile.TemporaryDirectory(prefix="mnm-calibration-") as tmp:
        side = min(2 * size, 512)
        data = render_dataset(Path(tmp) / "synth", SYNTHETIC_IMAGES, size=side, shapes=4, textures_per_shape=3,
                              backgrounds=12, correlation=0.8, seed=0, workers=1)
        yield _load(data, size, {"kind": "synthetic", "images": SYNTHETIC_IMAGES, "size": side, "seed": 0,
                                 "command": f"mnm data synth --n {SYNTHETIC_IMAGES} --size {side} --seed 0"})


def _load(folder: Path, size: int, source: dict) -> References:
    loaders = _loaders(folder, size)
    if len(loaders) < 2 * HELD_OUT_EVERY:
        raise MnmError(f"{folder}: {len(loaders)} image(s); INT8 calibration needs at least {2 * HELD_OUT_EVERY}")
    every = range(len(loaders))
    held = _spread([i for i in every if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1], MAX_HELD_OUT)
    calib = _spread([i for i in every if i % HELD_OUT_EVERY != HELD_OUT_EVERY - 1], MAX_CALIBRATION)
    truth = folder if (folder / "ground_truth.jsonl").is_file() and (folder / "synth.json").is_file() else None
    source = {**source, "found": len(loaders), "calibration_images": len(calib), "held_out_images": len(held)}
    return References(np.stack([loaders[i]() for i in calib]), [to_uint8(loaders[i]()) for i in held], source, truth)


def _loaders(folder: Path, size: int) -> list[Callable[[], np.ndarray]]:
    """One loader per image, giving its model input (3 x S x S): object crops for a dataset folder,
    centred squares for a plain folder of images. Nothing is decoded until a loader is called."""
    from mnm.training.datasets import detect_format, open_dataset
    from mnm.training.datasets.dataset import load_record

    if not folder.is_dir():
        raise MnmError(f"{folder}: --calibrate must be a folder of reference images")
    try:
        detect_format(folder)
    except MnmError:  # not a dataset: a plain folder of images
        paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        return [functools.partial(lambda p: prepare_reference(load_image(p), size), p) for p in paths]
    records = open_dataset(folder, "all").records
    return [functools.partial(lambda r: prepare_reference(load_record(r), size, r.box), r) for r in records]


def _spread(items: list, limit: int) -> list:
    """At most ``limit`` items, evenly spaced over the list."""
    if len(items) <= limit:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]
