"""Reading a ``--batch`` plan as a stream: one CSV record per line, each row checked on its own.

A plan has the columns background, pose, shape, texture and optionally out; the shape column may be
left out (or a cell left empty) only in feature mode, where the shape comes from the pose image.
Every other cell must say what it wants: an image path, ``random``, ``code:K`` or ``seed:N``.

Rows are read from the file one line at a time, never all at once: a record may not span lines (a
cell with a line break is refused), so the byte offset of a line is the start of its row and a
worker can read a window of rows on its own (``read_window``). Row N is the plan's line N + 1
(after the header); blank lines keep their numbers. A row without an ``out`` cell is written as
``{N:05d}.png``.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from mnm.errors import MnmError
from mnm.runtime.planner import check_feature_mix
from mnm.runtime.requests import CODE_OF, FACTORS, BoxTable, Factor, Mix, is_spec, parse_factor
from mnm.runtime.stitch import SOURCE as STITCH_SOURCE

COLUMNS = (*FACTORS, "out")
OUTPUT_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")


@dataclass(frozen=True)
class PlanRow:
    """One plan row as written: its number, line, the four cells (empty when absent) and the output name."""

    number: int
    line: int
    cells: dict[str, str]
    out: str


@dataclass
class Plan:
    """A plan file and what its rows are checked against: the mode, the boxes and the stitch.
    Relative image paths are taken from ``base`` (the current folder where the plan is read), in
    every process that reads the plan (a Ray worker's own folder may differ)."""

    path: Path
    mode: str = "code"
    boxes: BoxTable = field(default_factory=BoxTable)
    stitch: str | None = None
    base: Path = field(default_factory=Path.cwd)

    def where(self, row: PlanRow) -> str:
        return f"{self.path}:{row.line}"

    def rows(self) -> Iterator[tuple[int, PlanRow]]:
        """``(byte offset, row)`` for each non-blank row, streamed from the file. A line that is not
        a CSV record of the header's width raises ``MnmError`` naming it."""
        with self.open() as handle:
            columns = self._header(handle.readline())
            line = 1
            while True:
                start = handle.tell()
                raw = handle.readline()
                if not raw:
                    return
                line += 1
                row = self._row(raw, columns, line)
                if row is not None:
                    yield start, row

    def check(self, row: PlanRow) -> Mix:
        """The row's ``Mix`` of parsed factors, or ``MnmError`` naming the row (and the column)."""
        factors = {}
        for kind in FACTORS:
            text = row.cells[kind]
            if not text:
                if kind == "shape" and self.mode == "feature":
                    factors[kind] = None
                    continue
                raise MnmError(f"{self.where(row)}: {kind}: empty cell; every factor is given explicitly "
                               "(an image path, random, code:K or seed:N)")
            try:
                factors[kind] = parse_cell(text, kind, self.boxes, self.base)
            except MnmError as exc:
                raise MnmError(f"{self.where(row)}: {exc}") from None
        mix = Mix(**factors)
        try:
            if self.mode == "feature":
                check_feature_mix(mix)
            if self.stitch and not getattr(mix, STITCH_SOURCE[self.stitch]).is_image:
                raise MnmError(f"stitch {self.stitch}: the {STITCH_SOURCE[self.stitch]} must be a reference image")
        except MnmError as exc:
            raise MnmError(f"{self.where(row)}: {exc}") from None
        return mix

    def open(self):
        try:
            return open(self.path, "rb")
        except FileNotFoundError:
            raise MnmError(f"{self.path}: plan file not found") from None
        except OSError as exc:
            raise MnmError(f"{self.path}: cannot read the plan ({exc.strerror or exc})") from None

    def _header(self, raw: bytes) -> list[str]:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise MnmError(f"{self.path}: the plan is not UTF-8 text") from None
        columns = [c.strip() for c in next(csv.reader([text]), [])]
        required = ("background", "pose", "texture") if self.mode == "feature" else FACTORS
        missing = [c for c in required if c not in columns]
        if missing:
            raise MnmError(f"{self.path}: the plan needs columns background,pose,shape,texture[,out] "
                           f"(shape may be left out in feature mode); missing {', '.join(missing)}")
        unknown = sorted(set(columns) - set(COLUMNS))
        if unknown:
            raise MnmError(f"{self.path}: unknown plan column(s) {', '.join(unknown)}")
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if repeated:
            raise MnmError(f"{self.path}: plan column(s) {', '.join(repeated)} given twice")
        return columns

    def _row(self, raw: bytes, columns: list[str], line: int) -> PlanRow | None:
        """The row on ``line`` (None for a blank line, or one of empty cells as spreadsheets write)."""
        where = f"{self.path}:{line}"
        try:
            text = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise MnmError(f"{where}: not UTF-8 text") from None
        if not text.strip():
            return None
        try:  # most rows quote nothing: a split is the same and several times faster
            cells = next(csv.reader([text], strict=True)) if '"' in text else text.split(",")
        except csv.Error as exc:
            raise MnmError(f"{where}: not a CSV record ({exc}; a cell may not hold a line break)") from None
        if not any(c.strip() for c in cells):
            return None
        if len(cells) != len(columns):
            raise MnmError(f"{where}: {len(cells)} cells for {len(columns)} columns ({','.join(columns)})")
        values = dict(zip(columns, (c.strip() for c in cells), strict=True))
        number = line - 1
        out = values.get("out")
        if out:
            check_out_name(out, where)
        else:
            out = f"{number:05d}.png"
        return PlanRow(number, line, {k: values.get(k, "") for k in FACTORS}, out)


def read_window(plan: Plan, offset: int, first_line: int, count: int) -> list[PlanRow]:
    """``count`` rows starting at byte ``offset`` whose first row is on ``first_line`` (from ``Scan.windows``)."""
    rows = []
    with plan.open() as handle:
        columns = plan._header(handle.readline())
        handle.seek(offset)
        line = first_line
        while len(rows) < count:
            raw = handle.readline()
            if not raw:
                raise MnmError(f"{plan.path}: the plan ended before line {line}; was it changed during the run?")
            row = plan._row(raw, columns, line)
            if row is not None:
                rows.append(row)
            line += 1
    return rows


def check_out_name(out: str, where: str) -> None:
    """An output name is a relative path inside the output folder, with an image extension."""
    path = Path(out)
    if path.is_absolute() or ".." in path.parts or "\\" in out:
        raise MnmError(f"{where}: out {out!r} must be a file name inside the output folder")
    if output_format(path.suffix) is None:
        raise MnmError(f"{where}: out {out!r} needs an image extension (.png, .jpg, .webp, .bmp, .tif or .gif)")


@functools.lru_cache(maxsize=64)
def output_format(suffix: str) -> str | None:
    """The Pillow format an output suffix writes (``.jpg`` → JPEG), None if it is not an image we write."""
    found = Image.registered_extensions().get(suffix.lower())
    return found if found in OUTPUT_FORMATS else None


def parse_cell(text: str, kind: str, boxes: BoxTable, base: Path) -> Factor:
    """A plan cell → ``Factor``; an image path is made absolute from ``base``, and each distinct
    path is looked at once (``_missing``), however many rows name it."""
    if is_spec(text):
        return _spec(text, kind)
    path = os.path.normpath(os.path.join(base, text))
    problem = _missing(path)
    if problem:
        raise MnmError(f"{kind}: {text}: {problem} ({kind}: an image path, random, code:K or seed:N)")
    return Factor(image=Path(path), box=boxes.lookup(Path(path))).check(kind)


@functools.lru_cache(maxsize=4096)
def _spec(text: str, kind: str) -> Factor:
    """Specs repeat across rows; a row's draws come from ``draws``, never from a factor's identity."""
    return parse_factor(text, kind)


@functools.lru_cache(maxsize=4096)
def _missing(path: str) -> str:
    if not os.path.exists(path):
        return "reference image not found"
    return "" if os.path.isfile(path) else "is not a file"


def code_index(factor: Factor | None) -> int | None:
    """The category index a ``code:K`` factor asks for (checked against the bundle once it is open)."""
    return factor.code if factor is not None and isinstance(factor.code, int) else None


@dataclass
class Scan:
    """What one pass over the whole plan found, before any work: its sha256, rows, windows, bad rows."""

    sha256: str
    rows: int
    windows: list[tuple[int, int, int]]  # (byte offset, first line, rows)
    bad: int
    first_bad: str  # the first bad row's error (under keep_going)
    codes: dict[str, tuple[int, str]]  # factor -> (largest code:K, where): checked against the bundle


def scan(plan: Plan, window: int, keep_going: bool) -> Scan:
    """Check every row (refusing the first bad one unless ``keep_going``), hash the file and cut it
    into windows of ``window`` rows. Holds one output name per row (to refuse repeats), no images."""
    digest = _sha256(plan)
    names: dict[str, int] = {}
    windows: list[tuple[int, int, int]] = []
    bad, first_bad, codes, count = 0, "", {}, 0
    for offset, row in plan.rows():
        if count % window == 0:
            windows.append((offset, row.line, 0))
        count += 1
        offset0, line0, n = windows[-1]
        windows[-1] = (offset0, line0, n + 1)
        if row.out in names:
            raise MnmError(f"{plan.where(row)}: out {row.out!r} repeats line {names[row.out]}")
        names[row.out] = row.line
        try:
            mix = plan.check(row)
        except MnmError as exc:
            if not keep_going:
                raise
            bad += 1
            first_bad = first_bad or str(exc)
            continue
        for kind in CODE_OF:
            k = code_index(getattr(mix, kind))
            if k is not None and k > codes.get(kind, (-1, ""))[0]:
                codes[kind] = (k, plan.where(row))
    if not count:
        raise MnmError(f"{plan.path}: the plan has no rows")
    return Scan(digest, count, windows, bad, first_bad, codes)


def _sha256(plan: Plan) -> str:
    h = hashlib.sha256()
    with plan.open() as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
