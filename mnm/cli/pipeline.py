"""Opening a ``Pipeline`` from command-line options, shared by the runtime commands."""

from __future__ import annotations

from pathlib import Path

import typer

FIT_HELP = ("How a reference without a box becomes square: crop (the centred square) or squash (the whole "
            "image resized, as the authors evaluated the published MixNMatch models).")


def open_pipeline(bundle: Path, backend: str, max_batch: int, threads: int | None = None, fit: str = "crop"):
    """The verified bundle's pipeline, saying on stderr which backend runs (``mnm animate`` uses it too)."""
    from mnm.runtime.bundle import Bundle
    from mnm.runtime.pipeline import Pipeline

    options = {} if threads is None else {"threads": threads}
    pipe = Pipeline(Bundle.open(bundle), backend=backend, max_batch=max_batch, fit=fit, **options)
    how = "picked by --backend auto" if backend == "auto" else "as asked"
    typer.echo(f"backend: {pipe.backend.description}, {how}", err=True)
    for reason in getattr(pipe.backend, "skipped", []):
        typer.echo(f"  not used: {reason}", err=True)
    return pipe
