"""Writers of small real datasets in each supported format (real image files, XML, .mat, CSV, JSON).

Every image is a flat blue background with the object box painted red on its left half and green
on its right half, so a test can see where the box landed in a crop and which way it faces.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

BLUE, RED, GREEN = (30, 60, 200), (220, 20, 20), (20, 200, 40)


def paint(path: Path, width: int, height: int, box) -> np.ndarray:
    """Write a width x height image with the integer box (x, y, w, h) painted; return its pixels."""
    img = np.empty((height, width, 3), np.uint8)
    img[:] = BLUE
    x, y, w, h = (int(v) for v in box)
    img[y:y + h, x:x + w // 2] = RED
    img[y:y + h, x + w // 2:x + w] = GREEN
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, **({"quality": 95} if path.suffix == ".jpg" else {}))
    return img


def _lines(path: Path, rows) -> None:
    path.write_text("".join(" ".join(str(v) for v in row) + "\n" for row in rows))


def write_cub(root: Path, items, split: bool = True, classes: int | None = None) -> Path:
    """items: (relative path, (width, height), box x y w h, 1-based class, is_train)."""
    for rel, (w, h), box, _, _ in items:
        paint(root / "images" / rel, w, h, box)
    ids = range(1, len(items) + 1)
    rows = list(zip(ids, items, strict=True))
    _lines(root / "images.txt", [(i, it[0]) for i, it in rows])
    _lines(root / "bounding_boxes.txt", [(i, *(f"{v:.1f}" for v in it[2])) for i, it in rows])
    _lines(root / "image_class_labels.txt", [(i, it[3]) for i, it in rows])
    if split:
        _lines(root / "train_test_split.txt", [(i, int(it[4])) for i, it in rows])
    if classes is not None:
        _lines(root / "classes.txt", [(k, f"{k:03d}.class") for k in range(1, classes + 1)])
    return root


def voc_xml(width: int, height: int, boxes) -> str:
    """A Stanford Dogs style VOC annotation; boxes are (xmin, ymin, xmax, ymax); one <object> each."""
    objects = "".join(
        "\t<object>\n\t\t<name>dog</name>\n\t\t<pose>Unspecified</pose>\n\t\t<bndbox>\n"
        f"\t\t\t<xmin>{x0}</xmin>\n\t\t\t<ymin>{y0}</ymin>\n\t\t\t<xmax>{x1}</xmax>\n\t\t\t<ymax>{y1}</ymax>\n"
        "\t\t</bndbox>\n\t</object>\n"
        for x0, y0, x1, y1 in boxes
    )
    return (
        "<annotation>\n\t<folder>dogs</folder>\n\t<size>\n"
        f"\t\t<width>{width}</width>\n\t\t<height>{height}</height>\n\t\t<depth>3</depth>\n"
        f"\t</size>\n{objects}</annotation>\n"
    )


def write_dogs(root: Path, items, test=None) -> Path:
    """items: (breed, name, (width, height), [(xmin, ymin, xmax, ymax), ...]); the first box is painted.

    ``test``: breed/name.jpg entries written to lists/test_list.mat as the dataset ships them.
    """
    from scipy.io import savemat

    for breed, name, (w, h), boxes in items:
        x0, y0, x1, y1 = boxes[0]
        paint(root / "Images" / breed / f"{name}.jpg", w, h, (x0, y0, x1 - x0, y1 - y0))
        xml = root / "Annotation" / breed / name
        xml.parent.mkdir(parents=True, exist_ok=True)
        xml.write_text(voc_xml(w, h, boxes))
    if test is not None:
        (root / "lists").mkdir(exist_ok=True)
        savemat(root / "lists" / "test_list.mat", {"file_list": np.array(test, dtype=object).reshape(-1, 1)})
    return root


def cars_annotations(rows, with_class: bool = True) -> np.ndarray:
    """A struct array as in the devkit: rows are (fname, (x1, y1, x2, y2), 1-based class)."""
    fields = ["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2"] + (["class"] if with_class else []) + ["fname"]
    out = np.zeros((1, len(rows)), dtype=[(f, object) for f in fields])
    for i, (fname, corners, cls) in enumerate(rows):
        values = [np.array([[v]], np.uint16) for v in corners]
        if with_class:
            values.append(np.array([[cls]], np.uint8))
        out[0, i] = tuple(values) + (np.array([fname]),)
    return out


def write_cars(root: Path, train, test=None, class_names=None, test_labels: bool = True) -> Path:
    """train/test: (fname, (width, height), (x1, y1, x2, y2), 1-based class)."""
    from scipy.io import savemat

    devkit = root / "devkit"
    devkit.mkdir(parents=True, exist_ok=True)
    for folder, rows in (("cars_train", train), ("cars_test", test or [])):
        for fname, (w, h), (x1, y1, x2, y2), _ in rows:
            paint(root / folder / fname, w, h, (x1, y1, x2 - x1, y2 - y1))
    annos = [(fname, corners, cls) for fname, _, corners, cls in train]
    savemat(devkit / "cars_train_annos.mat", {"annotations": cars_annotations(annos)})
    if test is not None:
        name = "cars_test_annos_withlabels.mat" if test_labels else "cars_test_annos.mat"
        annos = [(fname, corners, cls) for fname, _, corners, cls in test]
        savemat(devkit / name, {"annotations": cars_annotations(annos, with_class=test_labels)})
    if class_names is not None:
        savemat(devkit / "cars_meta.mat", {"class_names": np.array(class_names, dtype=object).reshape(1, -1)})
    return root


def write_folder(root: Path, items, kind: str = "csv", labels: bool = True) -> Path:
    """items: (relative path, (width, height), box x y w h, label); boxes.csv or boxes.json."""
    import json

    for rel, (w, h), box, _ in items:
        paint(root / rel, w, h, box)
    if kind == "csv":
        header = "file,x,y,w,h" + (",label" if labels else "")
        rows = [",".join(map(str, (rel, *box, *([label] if labels else [])))) for rel, _, box, label in items]
        (root / "boxes.csv").write_text("\n".join([header, *rows]) + "\n")
    else:
        objects = [
            {"file": rel, **dict(zip("xywh", box, strict=True)), **({"label": label} if labels else {})}
            for rel, _, box, label in items
        ]
        (root / "boxes.json").write_text("[\n" + ",\n".join("  " + json.dumps(o) for o in objects) + "\n]\n")
    return root


@pytest.fixture
def writers() -> SimpleNamespace:
    return SimpleNamespace(
        paint=paint, cub=write_cub, dogs=write_dogs, cars=write_cars, folder=write_folder,
        voc_xml=voc_xml, cars_annotations=cars_annotations,
        colours=SimpleNamespace(blue=BLUE, red=RED, green=GREEN),
    )
