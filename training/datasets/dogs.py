"""Stanford Dogs layout: ``Images/<breed>/<name>.jpg`` and ``Annotation/<breed>/<name>`` (VOC XML).

The label is the breed folder's index in sorted order. An annotation may hold several objects;
the largest box is used (the object a crop should centre on). VOC corners (xmin, ymin, xmax, ymax)
are read as continuous pixel coordinates: x = xmin, w = xmax - xmin. ``test_list.mat`` (in the
root or in ``lists/``, as the dataset ships it) names the test images; every other image is
training data, and without it every image is.
"""

from __future__ import annotations

from pathlib import Path
from xml.parsers import expat

from mnm.errors import MnmError
from mnm.training.datasets.annotations import Annotations, Entry, Problem, list_images, parse_box, problem

CORNERS = ("xmin", "ymin", "xmax", "ymax")


def detect(root: Path) -> bool:
    return (root / "Images").is_dir() and (root / "Annotation").is_dir()


def read(root: Path) -> Annotations:
    if not detect(root):
        raise MnmError(f"{root}: a Stanford Dogs dataset needs the folders Images/ and Annotation/")
    problems: list[Problem] = []
    breeds = sorted(p.name for p in (root / "Images").iterdir() if p.is_dir())
    test_path = _test_list_path(root)
    test = _test_list(test_path) if test_path else {}
    entries = []
    for label, breed in enumerate(breeds):
        for image in list_images(root / "Images" / breed):
            xml = _annotation_file(root / "Annotation" / breed, image.stem)
            if xml is None:
                expected = f"Annotation/{breed}/{image.stem}"
                problems.append(problem(image, None, f"no annotation: expected {expected}"))
                continue
            found = _largest_box(xml, problems)
            if found is None:
                continue
            box, line = found
            rel = f"{breed}/{image.name}"
            split = "test" if rel in test else "train"
            test.pop(rel, None)
            entries.append(Entry(image, box, label, split, str(xml), line))
    for rel, (source, index) in test.items():
        problems.append(problem(source, index, f"names {rel}, which is not in {root / 'Images'}"))
    return Annotations("dogs", entries, problems, len(breeds), test_path is not None)


def _annotation_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.xml"):
        if candidate.is_file():
            return candidate
    return None


def _test_list_path(root: Path) -> Path | None:
    for candidate in (root / "test_list.mat", root / "lists" / "test_list.mat"):
        if candidate.is_file():
            return candidate
    return None


def _test_list(path: Path) -> dict[str, tuple[Path, int]]:
    """{breed/name.jpg: (list file, 1-based entry)} from test_list.mat."""
    from scipy.io import loadmat

    try:
        names = loadmat(path, squeeze_me=True)["file_list"]
    except (OSError, ValueError, KeyError) as exc:
        raise MnmError(f"{path}: cannot read its file_list ({exc})") from exc
    return {str(name): (path, i) for i, name in enumerate(_as_list(names), start=1)}


def _as_list(values) -> list:
    """A loadmat cell array (squeezed) as a list, also when it held a single entry."""
    import numpy as np

    return list(np.atleast_1d(values))


def _objects(path: Path) -> list[dict]:
    """Each <object> of a VOC file: its start line and the text of its first bndbox corners."""
    parser = expat.ParserCreate()
    objects: list[dict] = []
    depth_in_object = 0
    text: list[str] = []

    def start(tag, _attrs):
        nonlocal depth_in_object
        text.clear()
        if tag == "object":
            objects.append({"line": parser.CurrentLineNumber})
            depth_in_object = 1
        elif depth_in_object:
            depth_in_object += 1

    def end(tag):
        nonlocal depth_in_object
        if depth_in_object:
            if tag in CORNERS:
                objects[-1].setdefault(tag, "".join(text).strip())
            depth_in_object -= 1
        text.clear()

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text.append
    with open(path, "rb") as f:
        parser.ParseFile(f)
    return objects


def _largest_box(path: Path, problems: list[Problem]) -> tuple[tuple, int] | None:
    """(x, y, w, h) of the largest object and the line of its <object>, or None after recording why."""
    try:
        objects = _objects(path)
    except expat.ExpatError as exc:
        problems.append(problem(path, exc.lineno, f"not valid XML ({expat.errors.messages[exc.code]})"))
        return None
    if not objects:
        problems.append(problem(path, None, "no <object> with a <bndbox>: the image has no box"))
        return None
    best = None
    for obj in objects:
        corners = parse_box([obj.get(k) for k in CORNERS], path, obj["line"], problems, " ".join(CORNERS))
        if corners is None:
            continue
        x0, y0, x1, y1 = corners
        box = (x0, y0, x1 - x0, y1 - y0)
        if best is None or box[2] * box[3] > best[0][2] * best[0][3]:
            best = (box, obj["line"])
    return best
