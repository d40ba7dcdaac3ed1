"""What every format reader produces, and the checks shared by all formats.

A reader turns a dataset folder into `Entry` rows (image path, box, label, split, and the file and
line that defined the box) plus the problems it met while parsing. `resolve` then checks each
entry against its image file: the image must exist and its header must be readable, and the box
must be a pixel box inside the image (`mnm.imaging.validate_box`). Sizes come from Pillow's lazy
open, which reads the header only, so opening a dataset never decodes pixels; decoding happens in
`ImageDataset.sample` and in `check_dataset(..., decode=True)`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mnm.errors import MnmError
from mnm.imaging import open_image, validate_box

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
SPLITS = ("train", "test", "all")
EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset; ``message`` is the full one-line text, location included."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return self.message


def where(file: str | Path, line: int | None = None) -> str:
    """``file line N`` (``file entry N`` for a .mat array, or just ``file``): how messages start."""
    if line is None:
        return str(file)
    return f"{file} {'entry' if str(file).endswith('.mat') else 'line'} {line}"


def problem(file: str | Path, line: int | None, text: str) -> Problem:
    return Problem(str(file), line, f"{where(file, line)}: {text}")


@dataclass(frozen=True)
class Record:
    """One usable image: box is (x, y, w, h) in pixels of the stored image; label is 0-based or None.

    ``source`` and ``line`` name the annotation that defined the box: ``line`` is the 1-based
    line of a text file, the 1-based entry of a .mat array, or None (a whole-file annotation).
    """

    path: Path
    box: tuple[float, float, float, float]
    label: int | None
    source: str
    line: int | None
    width: int
    height: int


@dataclass(frozen=True)
class Entry:
    """A box as a reader found it, before the image file is looked at."""

    path: Path
    box: tuple[float, float, float, float]
    label: int | None
    split: str
    source: str
    line: int | None


@dataclass
class Annotations:
    """A reader's result: entries of every split, parse problems, and the class count."""

    format: str
    entries: list[Entry]
    problems: list[Problem] = field(default_factory=list)
    num_classes: int = 0
    has_split: bool = False


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) as `load_image` will return the image, read from the header only.

    `load_image` applies the EXIF orientation, so a quarter-turn tag (5 to 8) swaps the sides.
    Pillow's PNG reader decodes the whole file to look for EXIF, so a PNG is asked only when an
    eXIf chunk came before the pixel data (then it is already in the header's info).
    """
    from PIL import UnidentifiedImageError

    try:
        with open_image(path, path, path.name) as im:
            width, height = im.size
            has_exif = im.format != "PNG" or "exif" in im.info
            turned = has_exif and im.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8)
            return (height, width) if turned else (width, height)
    except (UnidentifiedImageError, OSError) as exc:
        raise MnmError(f"{path}: cannot read the image header ({exc})") from exc


def select(ann: Annotations, split: str) -> list[Entry]:
    """Entries of one split; asking for a test split that the dataset does not define is an error."""
    if split not in SPLITS:
        raise MnmError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    if split == "all":
        return list(ann.entries)
    if split == "test" and not ann.has_split:
        raise MnmError(f"this {ann.format} dataset defines no test split; open split 'train' or 'all'")
    return [e for e in ann.entries if e.split == split]


def resolve(entries: Iterable[Entry]) -> tuple[list[Record], list[Problem]]:
    """Check each entry against its image file; return the usable records and every problem."""
    records, problems = [], []
    for e in entries:
        loc = where(e.source, e.line)
        if not e.path.is_file():
            problems.append(Problem(e.source, e.line, f"{loc}: image {e.path} not found"))
            continue
        try:
            width, height = image_size(e.path)
            validate_box(e.box, width, height, f"{loc} ({e.path.name})")
        except MnmError as exc:
            problems.append(Problem(e.source, e.line, str(exc)))
            continue
        records.append(Record(e.path, e.box, e.label, e.source, e.line, width, height))
    return records, problems


def parse_box(values, file: str | Path, line: int | None, problems: list[Problem], names: str = "x y w h"):
    """Four numbers (x y w h, or the ``names`` given) as a float tuple, or None after recording why not."""
    values = list(values)
    try:
        box = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        box = ()
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        problems.append(problem(file, line, f"expected a box {names} of four finite numbers, found {values}"))
        return None
    return box


def labels_from_names(names: list[str]) -> tuple[dict[str, int], int]:
    """Map label strings to 0-based indices: integers as they are, otherwise sorted names in order."""
    if all(n.isdigit() for n in names):
        values = {n: int(n) for n in names}
        return values, (max(values.values()) + 1 if values else 0)
    ordered = sorted(set(names))
    return {n: i for i, n in enumerate(ordered)}, len(ordered)


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively), in a stable order."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
