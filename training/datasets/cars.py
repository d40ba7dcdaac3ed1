"""Stanford Cars devkit layout: ``devkit/cars_train_annos.mat`` and ``cars_train/`` images.

Each annotation holds bbox_x1, bbox_y1, bbox_x2, bbox_y2, class (1-based) and fname. The test
split is ``devkit/cars_test_annos_withlabels.mat`` where present (else ``cars_test_annos.mat``,
whose entries have no class: labels are None) with images in ``cars_test/``. Corners are read as
continuous pixel coordinates (x = x1, w = x2 - x1). ``devkit/cars_meta.mat`` gives the class count.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mnm.errors import MnmError
from mnm.training.datasets.annotations import Annotations, Entry, Problem, parse_box, problem

CORNERS = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2")
TRAIN = "cars_train_annos.mat"
TEST = ("cars_test_annos_withlabels.mat", "cars_test_annos.mat")


def detect(root: Path) -> bool:
    return (root / "devkit" / TRAIN).is_file()


def read(root: Path) -> Annotations:
    devkit = root / "devkit"
    if not detect(root):
        raise MnmError(f"{devkit / TRAIN}: not found (a Stanford Cars dataset needs the devkit annotations)")
    problems: list[Problem] = []
    entries = _entries(devkit / TRAIN, root / "cars_train", "train", problems)
    test = next((devkit / name for name in TEST if (devkit / name).is_file()), None)
    if test is not None:
        entries += _entries(test, root / "cars_test", "test", problems)
    labels = [e.label for e in entries if e.label is not None]
    return Annotations("cars", entries, problems, _num_classes(devkit, labels), test is not None)


def _load(path: Path, key: str) -> np.ndarray:
    from scipy.io import loadmat

    try:
        return np.atleast_1d(loadmat(path, squeeze_me=True)[key])
    except (OSError, ValueError, KeyError) as exc:
        raise MnmError(f"{path}: cannot read its {key!r} array ({exc})") from exc


def _entries(path: Path, images: Path, split: str, problems: list[Problem]) -> list[Entry]:
    annos = _load(path, "annotations")
    fields = set(annos.dtype.names or ())
    missing = [f for f in (*CORNERS, "fname") if f not in fields]
    if missing:
        raise MnmError(f"{path}: annotations lack the fields {', '.join(missing)}")
    entries = []
    for i, row in enumerate(annos, start=1):
        corners = parse_box([row[k] for k in CORNERS], path, i, problems, " ".join(CORNERS))
        if corners is None:
            continue
        label = None
        if "class" in fields:
            value = int(row["class"])
            if value < 1:
                problems.append(problem(path, i, f"class {value} is not a 1-based class number"))
                continue
            label = value - 1
        x1, y1, x2, y2 = corners
        box = (x1, y1, x2 - x1, y2 - y1)
        entries.append(Entry(images / str(row["fname"]), box, label, split, str(path), i))
    return entries


def _num_classes(devkit: Path, labels: list[int]) -> int:
    largest = max(labels, default=-1) + 1
    meta = devkit / "cars_meta.mat"
    return max(largest, len(_load(meta, "class_names"))) if meta.is_file() else largest
