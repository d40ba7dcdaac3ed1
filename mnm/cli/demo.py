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
    from mnm.cli.demo_files import run_demo

    result = run_demo(out, bundle=bundle, backend=backend)
    for line in result.summary:
        typer.echo(line)


def note_demo_model(bundle: Path, specs: list[str]) -> None:
    """On stderr, one line on what the demo model is when it is given an image that is not one of the
    demo's own (by sha256: ``mnm.demo.foreign_images``): a photo gives nothing useful from it."""
    from mnm.demo import foreign_images, is_demo_bundle, model_note
    from mnm.runtime.requests import is_spec

    images = [spec for spec in specs if not is_spec(spec) and Path(spec).is_file()]
    if images and is_demo_bundle(bundle) and foreign_images(images):
        typer.echo(f"note: {model_note()}", err=True)
