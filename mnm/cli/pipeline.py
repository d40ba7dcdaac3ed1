"""Opening a ``Pipeline`` from command-line options, shared by the runtime commands."""

from __future__ import annotations

from pathlib import Path

import typer

PRECISION_HELP = (
    "auto: on the CPU, INT8 graphs where the bundle has them (they passed their quality gate at export) and this "
    "CPU runs them safely (VNNI), else fp32; on a GPU, fp16 where the bundle's fp16 graphs passed the same gate, "
    "else fp32 (mnm info says which and why); fp32; fp16; int8 (on any CPU; refused on a bundle without INT8 "
    "graphs)."
)
FIT_HELP = ("How a reference without a box becomes square: crop (the centred square) or squash (the whole "
            "image resized, as the authors evaluated the published MixNMatch models).")
VERBOSE_HELP = "Also say why each faster backend was not used (mnm info --backends tests them all)."


def precision_option():
    return typer.Option("auto", "--precision", help=PRECISION_HELP)


def backend_line(backend, requested: str) -> str:
    """The one line that says which backend runs, e.g. ``backend: ort-cpu (onnxruntime, fp32, 2 threads)``."""
    how = ", picked by --backend auto" if requested == "auto" else ""
    return f"backend: {backend.description}{how}"


def skip_lines(backend) -> list[str]:
    """Why ``--backend auto`` passed over each faster backend (``--verbose``)."""
    return [f"  not used: {reason}" for reason in getattr(backend, "skipped", [])]


def open_pipeline(bundle: Path, backend: str, max_batch: int, threads: int | None = None,
                  verbose: bool = False, fit: str = "crop", precision: str = "auto"):
    """The verified bundle's pipeline, saying on stderr in one line which backend runs (with
    ``verbose``, also why the faster ones did not); ``mnm animate`` uses it too."""
    from mnm.runtime.bundle import Bundle, check_precision_name
    from mnm.runtime.pipeline import Pipeline

    check_precision_name(precision, "--precision")
    pipe = Pipeline(Bundle.open(bundle), backend=backend, max_batch=max_batch, fit=fit, precision=precision,
                    threads=threads)
    typer.echo(backend_line(pipe.backend, backend), err=True)
    if verbose:
        for line in skip_lines(pipe.backend):
            typer.echo(line, err=True)
    return pipe
