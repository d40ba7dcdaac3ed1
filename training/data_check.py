"""`check_dataset`: everything wrong with a dataset folder, collected rather than stopping at the first.

Used by `mnm data check` before a long training run: it parses every split, reads each image's
header to validate its box, and (by default) decodes every image, so truncated files and
unsupported image modes show up now rather than hours into training.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from mnm.errors import MnmError
from mnm.progress import track
from mnm.training.datasets import read_annotations
from mnm.training.datasets.annotations import Problem, Record, resolve
from mnm.training.datasets.dataset import load_record


@dataclass
class CheckReport:
    """Counts of annotated images per split, the class count, and every problem found."""

    root: str
    format: str | None = None
    images: int = 0
    usable: int = 0
    classes: int = 0
    train: int = 0
    test: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {
            "root": self.root, "format": self.format, "ok": self.ok, "images": self.images,
            "usable": self.usable, "classes": self.classes, "train": self.train, "test": self.test,
            "problems": [{"file": p.file, "line": p.line, "message": p.message} for p in self.problems],
        }

    def text(self) -> str:
        lines = [
            f"dataset  {self.root}",
            f"format   {self.format or 'unknown'}",
            f"images   {self.images} annotated, {self.usable} usable",
            f"classes  {self.classes}",
            f"split    {self.train} train, {self.test} test",
            f"problems {len(self.problems)}",
        ]
        return "\n".join(lines + [f"  {p}" for p in self.problems])


def check_dataset(root: str | os.PathLike, decode: bool = True) -> CheckReport:
    """Check every split of a dataset folder; with ``decode`` also decode every usable image."""
    report = CheckReport(str(root))
    try:
        ann = read_annotations(Path(root))
    except MnmError as exc:
        report.problems.append(Problem(str(root), None, str(exc)))
        return report
    report.format, report.classes = ann.format, ann.num_classes
    report.images = len(ann.entries)
    report.train = sum(e.split == "train" for e in ann.entries)
    report.test = report.images - report.train
    records, problems = resolve(track(ann.entries, desc="reading image headers", unit="img"))
    report.problems = ann.problems + problems
    if decode:
        bad = _decode_problems(records)
        report.problems += bad
        report.usable = len(records) - len(bad)
    else:
        report.usable = len(records)
    return report


def _decode_problems(records: list[Record]) -> list[Problem]:
    """One problem per image that cannot be decoded or whose pixels differ in size from its header."""
    problems = []
    for rec in track(records, desc="decoding images", unit="img"):
        try:
            load_record(rec)
        except MnmError as exc:
            problems.append(Problem(str(rec.path), None, str(exc)))
    return problems
