"""Opening a ``Pipeline`` from command-line options, shared by the runtime commands."""

from __future__ import annotations

from pathlib import Path

import typer

PRECISION_HELP = (
    "auto: INT8 graphs where the bundle has them (they passed their quality gate at export), else fp32; "
    "fp32; fp16; int8 (refused on a bundle without INT8 graphs)."
)


def precision_option():
    return typer.Option("auto", "--precision", help=PRECISION_HELP)


def open_pipeline(bundle: Path, backend: str, max_batch: int, threads: int | None = None, precision: str = "auto"):
    """The verified bundle's pipeline, saying on stderr which backend runs (``mnm animate`` uses it too)."""
    from mnm.errors import MnmError
    from mnm.runtime.bundle import PRECISIONS, Bundle
    from mnm.runtime.pipeline import Pipeline

    if precision not in PRECISIONS:
        raise MnmError(f"--precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    options = {"precision": precision} if threads is None else {"threads": threads, "precision": precision}
    pipe = Pipeline(Bundle.open(bundle), backend=backend, max_batch=max_batch, **options)
    how = "picked by --backend auto" if backend == "auto" else "as asked"
    typer.echo(f"backend: {pipe.backend.description}, {how}", err=True)
    for reason in getattr(pipe.backend, "skipped", []):
        typer.echo(f"  not used: {reason}", err=True)
    return pipe
