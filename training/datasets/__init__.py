"""Real datasets: CUB-200-2011 layout (and the synthetic set), Stanford Dogs, Stanford Cars, and a
plain folder with a boxes file, each detected from the folder's contents.

``open_dataset`` validates every box of the split against its image's header (never decoding
pixels) and raises one `MnmError` naming the file and line of the first problem;
``check_dataset`` (in `mnm.training.data_check`) collects every problem instead.
"""

from __future__ import annotations

import os
from pathlib import Path

from mnm.errors import MnmError
from mnm.progress import track
from mnm.training.datasets import cars, cub, dogs, folder
from mnm.training.datasets.annotations import Annotations, Problem, Record, resolve, select
from mnm.training.datasets.dataset import ImageDataset, background_scale_side

READERS = {"cub": cub, "dogs": dogs, "cars": cars, "folder": folder}

__all__ = [
    "READERS", "ImageDataset", "Problem", "Record", "background_scale_side",
    "check_dataset", "detect_format", "open_dataset", "read_annotations",
]


def detect_format(root: str | os.PathLike) -> str:
    """The format of a dataset folder, from the files it holds (checked in the order of READERS)."""
    root = Path(root)
    if not root.is_dir():
        raise MnmError(f"{root}: not a folder")
    for name, reader in READERS.items():
        if reader.detect(root):
            return name
    raise MnmError(
        f"{root}: cannot tell the dataset format: expected images.txt + bounding_boxes.txt (CUB layout), "
        "Images/ + Annotation/ (Stanford Dogs), devkit/cars_train_annos.mat (Stanford Cars), "
        "or boxes.csv / boxes.json (a folder of images)"
    )


def read_annotations(root: str | os.PathLike, format: str | None = None) -> Annotations:
    """Parse a dataset folder's annotations (every split) without looking at the images."""
    root = Path(root)
    if format is None:
        format = detect_format(root)
    if format not in READERS:
        raise MnmError(f"unknown dataset format {format!r}: use one of {', '.join(READERS)}")
    return READERS[format].read(root)


def open_dataset(root: str | os.PathLike, split: str = "train", format: str | None = None) -> ImageDataset:
    """Open one split ("train", "test" or "all") of a dataset folder, checking every box.

    Image sizes come from each file's header (Pillow's lazy open), so this reads every image's
    first bytes but decodes none. The first problem found is raised with a count of the rest.
    """
    root = Path(root)
    ann = read_annotations(root, format)
    entries = select(ann, split)
    records, problems = resolve(track(entries, desc=f"reading {ann.format} image headers", unit="img"))
    problems = ann.problems + problems
    if problems:
        more = f" (and {len(problems) - 1} more: run `mnm data check {root}`)" if len(problems) > 1 else ""
        raise MnmError(f"{problems[0]}{more}")
    if not records:
        raise MnmError(f"{root}: the {split} split of this {ann.format} dataset holds no images")
    return ImageDataset(root, ann.format, split, records, ann.num_classes)


def __getattr__(name: str):
    # check_dataset lives in mnm.training.data_check, which imports this package: load it lazily.
    if name in ("check_dataset", "CheckReport"):
        from mnm.training import data_check

        return getattr(data_check, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
