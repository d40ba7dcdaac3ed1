"""The reference images behind INT8 export: a calibration set and a held-out set (docs/int8.md).

``--calibrate DIR`` may be a dataset folder in any format the training side reads (its boxes give
the object crops, as in training) or a plain folder of images (largest centred square). Without
it, a synthetic set is rendered into a temporary folder (``mnm data synth`` with its defaults at
twice the model's side). The quality gate judges images calibration never saw: a dataset with a
test split holds the whole split out (a folder written by ``mnm data synth`` also has ground truth,
and the gate's ``mnm eval disentangle`` check scores that same split), any other folder every
fourth image in sorted order. A calibration file with the same bytes as a held-out one is dropped
too, so the two sets are disjoint by content, not only by name.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
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
    truth: Path | None  # a `mnm data synth` folder: ground truth for the disentangle check (its test split)
    files: dict[str, list[Path]] = field(default_factory=dict)  # "calibration", "held_out": the files used


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


@dataclass(frozen=True)
class _Image:
    """One reference: its file and its model input (3 x S x S) on demand: a dataset record's object
    crop (checked against the size its header gave), or a plain image's centred square."""

    path: Path
    record: object = None

    def load(self, size: int) -> np.ndarray:
        from mnm.training.datasets.dataset import load_record

        if self.record is None:
            return prepare_reference(load_image(self.path), size)
        return prepare_reference(load_record(self.record), size, self.record.box)


def _load(folder: Path, size: int, source: dict) -> References:
    calib_pool, held_pool, rule = _split(folder)
    found = len(calib_pool) + len(held_pool)
    if found < 2 * HELD_OUT_EVERY:
        raise MnmError(f"{folder}: {found} image(s); INT8 calibration needs at least {2 * HELD_OUT_EVERY}")
    held = _spread(held_pool, MAX_HELD_OUT)
    kept_out = {_sha256(image.path) for image in held_pool}  # the whole split: the disentangle check scores it
    calib = [image for image in _spread(calib_pool, MAX_CALIBRATION) if _sha256(image.path) not in kept_out]
    if not calib:
        raise MnmError(f"{folder}: no calibration image is left once the held-out images are set aside")
    truth = folder if (folder / "ground_truth.jsonl").is_file() and (folder / "synth.json").is_file() else None
    source = {**source, "found": found, "held_out": rule, "calibration_images": len(calib),
              "held_out_images": len(held)}
    return References(np.stack([image.load(size) for image in calib]), [to_uint8(image.load(size)) for image in held],
                      source, truth, {"calibration": [i.path for i in calib], "held_out": [i.path for i in held]})


def _split(folder: Path) -> tuple[list[_Image], list[_Image], str]:
    """(calibration candidates, held-out candidates, the rule): a dataset's train and test splits,
    or every fourth image of a folder (or of a dataset without a test split) held out."""
    from mnm.training.datasets import detect_format, open_dataset, read_annotations

    if not folder.is_dir():
        raise MnmError(f"{folder}: --calibrate must be a folder of reference images")
    try:
        detect_format(folder)
    except MnmError:  # not a dataset: a plain folder of images
        images = [_Image(p) for p in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)]
    else:
        if read_annotations(folder).has_split:
            train, test = (open_dataset(folder, split).records for split in ("train", "test"))
            return [_Image(r.path, r) for r in train], [_Image(r.path, r) for r in test], "the test split"
        images = [_Image(r.path, r) for r in open_dataset(folder, "all").records]
    every = HELD_OUT_EVERY - 1
    return ([im for i, im in enumerate(images) if i % HELD_OUT_EVERY != every],
            [im for i, im in enumerate(images) if i % HELD_OUT_EVERY == every], f"every {HELD_OUT_EVERY}th image")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _spread(items: list, limit: int) -> list:
    """At most ``limit`` items, evenly spaced over the list."""
    if len(items) <= limit:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]
