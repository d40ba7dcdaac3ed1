"""A plain folder of images with a boxes file: ``boxes.csv`` or ``boxes.json``.

``boxes.csv`` has the header ``file,x,y,w,h`` and an optional ``label`` column; ``boxes.json`` is
a list of objects with the same keys. ``file`` is relative to the folder; x y w h are pixels.
Labels that are all whole numbers are used as 0-based class indices, otherwise the sorted
distinct names are numbered. A file named on several rows gets its largest box. Every image in
the folder (subfolders included) needs a box. All images are training data: there is no test split.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from mnm.errors import MnmError
from mnm.training.datasets.annotations import (
    Annotations,
    Entry,
    Problem,
    labels_from_names,
    list_images,
    parse_box,
    problem,
)

BOX_FILES = ("boxes.csv", "boxes.json")
COLUMNS = ("file", "x", "y", "w", "h")


def detect(root: Path) -> bool:
    return any((root / name).is_file() for name in BOX_FILES)


def read(root: Path) -> Annotations:
    present = [root / name for name in BOX_FILES if (root / name).is_file()]
    if len(present) != 1:
        names = " or ".join(BOX_FILES)
        raise MnmError(f"{root}: a folder dataset needs exactly one of {names}, found {len(present)}")
    path = present[0]
    rows = _csv_rows(path) if path.suffix == ".csv" else _json_rows(path)
    problems: list[Problem] = []
    best: dict[str, tuple[tuple, str | None, int]] = {}
    for line, row in rows:
        missing = [k for k in COLUMNS if row.get(k) in (None, "")]
        if missing:
            problems.append(problem(path, line, f"missing {', '.join(missing)}"))
            continue
        box = parse_box([row[k] for k in COLUMNS[1:]], path, line, problems)
        if box is None:
            continue
        label = row.get("label")
        label = None if label in (None, "") else str(label).strip()
        name = Path(str(row["file"])).as_posix()
        if name not in best or box[2] * box[3] > best[name][0][2] * best[name][0][3]:
            best[name] = (box, label, line)
    names, num_classes = labels_from_names(sorted({v[1] for v in best.values() if v[1] is not None}))
    for image in list_images(root):
        if image.relative_to(root).as_posix() not in best:
            problems.append(problem(image, None, f"no box: the image is not named in {path.name}"))
    entries = [
        Entry(root / name, box, None if label is None else names[label], "train", str(path), line)
        for name, (box, label, line) in best.items()
    ]
    return Annotations("folder", entries, problems, num_classes, has_split=False)


def _csv_rows(path: Path) -> list[tuple[int, dict]]:
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in reader.fieldnames or []]
        if any(c not in header for c in COLUMNS):
            found = ",".join(header)
            raise MnmError(f"{path} line 1: the header must be file,x,y,w,h[,label], found {found}")
        reader.fieldnames = header
        return [(reader.line_num, row) for row in reader]


def _json_rows(path: Path) -> list[tuple[int, dict]]:
    """Each object of the top-level list with the line it starts on (for messages)."""
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MnmError(f"{path} line {exc.lineno}: not valid JSON ({exc.msg})") from exc
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise MnmError(f"{path}: expected a list of objects with keys file, x, y, w, h and optionally label")
    # The text is valid JSON holding a list, so decoding element by element cannot fail.
    decoder, rows = json.JSONDecoder(), []
    pos, line, counted = text.index("[") + 1, 1, 0
    for _ in data:
        pos = _skip(text, pos)
        line += text.count("\n", counted, pos)
        counted = pos
        item, pos = decoder.raw_decode(text, pos)
        rows.append((line, item))
        pos = _skip(text, pos) + 1  # past the comma (or the closing bracket)
    return rows


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos
