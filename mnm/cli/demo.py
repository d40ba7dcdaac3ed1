"""`mnm demo`: the bundled demo model, no arguments, no network."""

from __future__ import annotations

from pathlib import Path

import typer

from mnm.cli.app import app


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("mnm-demo"), "--out", help="Folder for the grid, comparison and animation."),
    bundle: Path | None = typer.Option(None, "--bundle", help="Use this bundle instead of the bundled demo model."),
    backend: str = typer.Option("auto", "--backend", help="auto, ort-cpu, ort-cuda, ort-trt or tensorrt."),
) -> None:
    """Run the bundled demo model: a mix-and-match grid, code vs feature mode, and an img2gif animation."""
    from mnm.demo import run_demo

    result = run_demo(out, bundle=bundle, backend=backend)
    for line in result.summary:
        typer.echo(line)
