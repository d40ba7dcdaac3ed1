"""`mnm data check DIR`: the format, counts, and every problem of a dataset folder; exit 2 if any."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mnm.cli.app import data_app


@data_app.command("check")
def check(
    directory: Path = typer.Argument(..., help="Dataset folder: CUB layout, Stanford Dogs, Stanford Cars, "
                                     "or images with boxes.csv / boxes.json."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    no_decode: bool = typer.Option(False, "--no-decode", help="Read image headers only; skip decoding "
                                   "every image (faster, misses truncated files)."),
) -> None:
    """Check a dataset folder before training: boxes in pixels and inside their images, images readable."""
    from mnm.training.data_check import check_dataset

    report = check_dataset(directory, decode=not no_decode)
    print(json.dumps(report.to_dict(), indent=2) if as_json else report.text())
    raise typer.Exit(0 if report.ok else 2)
