"""CUB-200-2011 layout (also what `mnm data synth` writes).

``images.txt`` (id path-under-images/), ``bounding_boxes.txt`` (id x y w h, pixels),
``image_class_labels.txt`` (id class, 1-based; optional: labels are None without it),
``train_test_split.txt`` (id 1=train 0=test; optional: every image is training data without it),
``classes.txt`` (optional: gives the class count).
"""

from __future__ import annotations

from pathlib import Path

from mnm.errors import MnmError
from mnm.training.datasets.annotations import Annotations, Entry, Problem, parse_box, problem

MARKERS = ("images.txt", "bounding_boxes.txt")


def detect(root: Path) -> bool:
    return all((root / m).is_file() for m in MARKERS)


def _by_id(path: Path, problems: list[Problem]) -> dict[str, tuple[int, str]]:
    """{image id: (line number, rest of the line)}; malformed lines and repeated ids become problems."""
    out: dict[str, tuple[int, str]] = {}
    with open(path, encoding="utf-8") as f:
        for n, text in enumerate(f, start=1):
            fields = text.strip().split(maxsplit=1)
            if not fields:
                continue
            if len(fields) < 2:
                problems.append(problem(path, n, f"expected an image id and a value, found {text.strip()!r}"))
            elif fields[0] in out:
                first = out[fields[0]][0]
                problems.append(problem(path, n, f"image id {fields[0]} already given on line {first}"))
            else:
                out[fields[0]] = (n, fields[1].strip())
    return out


def read(root: Path) -> Annotations:
    for m in MARKERS:
        if not (root / m).is_file():
            raise MnmError(f"{root / m}: not found (the CUB layout needs images.txt and bounding_boxes.txt)")
    problems: list[Problem] = []
    images = _by_id(root / "images.txt", problems)
    boxes_file = root / "bounding_boxes.txt"
    boxes = _by_id(boxes_file, problems)
    labels_file = root / "image_class_labels.txt"
    labels = _by_id(labels_file, problems) if labels_file.is_file() else None
    split_file = root / "train_test_split.txt"
    splits = _by_id(split_file, problems) if split_file.is_file() else None

    entries, max_class = [], 0
    for image_id, (n, rel) in images.items():
        if image_id not in boxes:
            problems.append(problem(root / "images.txt", n, f"{rel} has no box: no line for image id "
                                    f"{image_id} in {boxes_file.name}"))
            continue
        box_line, box_text = boxes[image_id]
        box = parse_box(box_text.split(), boxes_file, box_line, problems)
        if box is None:
            continue
        label = _label(labels, image_id, labels_file, problems)
        if label is not None:
            max_class = max(max_class, label + 1)
        split = _split(splits, image_id, split_file, problems)
        if split is None:
            continue
        entries.append(Entry(root / "images" / rel, box, label, split, str(boxes_file), box_line))
    for image_id, (n, _) in boxes.items():
        if image_id not in images:
            problems.append(problem(boxes_file, n, f"image id {image_id} is not listed in images.txt"))
    return Annotations("cub", entries, problems, _num_classes(root, max_class), splits is not None)


def _label(labels, image_id: str, path: Path, problems: list[Problem]) -> int | None:
    if labels is None:
        return None
    if image_id not in labels:
        problems.append(problem(path, None, f"no class label for image id {image_id}"))
        return None
    n, value = labels[image_id]
    if not value.isdigit() or int(value) < 1:
        problems.append(problem(path, n, f"class {value!r} is not a 1-based class number"))
        return None
    return int(value) - 1


def _split(splits, image_id: str, path: Path, problems: list[Problem]) -> str | None:
    if splits is None:
        return "train"
    if image_id not in splits:
        problems.append(problem(path, None, f"no train/test flag for image id {image_id}"))
        return None
    n, value = splits[image_id]
    if value not in ("0", "1"):
        problems.append(problem(path, n, f"train/test flag must be 1 or 0, found {value!r}"))
        return None
    return "train" if value == "1" else "test"


def _num_classes(root: Path, max_class: int) -> int:
    """classes.txt's line count where present (some classes may have no image), else the largest label."""
    classes = root / "classes.txt"
    if classes.is_file():
        with open(classes, encoding="utf-8") as f:
            return max(max_class, sum(1 for line in f if line.strip()))
    return max_class
