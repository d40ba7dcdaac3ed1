"""`mnm data`: `synth` renders a synthetic dataset with ground truth (CUB layout); `check` lists every
problem of a dataset folder (format, counts, boxes, unreadable images) and exits 2 if any."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mnm.cli.app import data_app


@data_app.command("synth")
def synth(
    out: Path = typer.Option(..., "--out", help="Folder to write (new, empty, or an earlier synth output)."),
    n: int = typer.Option(..., "--n", help="Number of images."),
    size: int = typer.Option(64, "--size", help="Image side S: a power of two from 32 to 512."),
    shapes: int = typer.Option(4, "--shapes", help="N_p: silhouette families (parent codes)."),
    textures_per_shape: int = typer.Option(
        3, "--textures-per-shape", help="k: textures per family; N_c = N_p·k."),
    backgrounds: int = typer.Option(None, "--backgrounds", help="N_b: background families (default: N_c)."),
    correlation: float = typer.Option(
        0.8, "--correlation", help="rho: P(background = the texture's preferred one)."),
    object_size: tuple[float, float] = typer.Option(
        (0.35, 0.65), "--object-size", help="MIN MAX: the object's larger box side / image side, drawn uniformly."),
    seed: int = typer.Option(0, "--seed", help="Same seed and parameters, same bytes."),
    workers: int = typer.Option(None, "--workers", help="Worker processes (default: all CPUs)."),
) -> None:
    """Render N bird scenes with labels, boxes, masks and keypoints, in the CUB-200-2011 layout."""
    from mnm.training.synthetic import render_dataset
    from mnm.training.synthetic.writer import TEST_EVERY

    n_child = shapes * textures_per_shape
    backgrounds = n_child if backgrounds is None else backgrounds
    root = render_dataset(out, n=n, size=size, shapes=shapes, textures_per_shape=textures_per_shape,
                          backgrounds=backgrounds, correlation=correlation, seed=seed, workers=workers,
                          object_min=object_size[0], object_max=object_size[1])
    n_test = n // TEST_EVERY
    typer.echo(f"wrote {n} images of {size}x{size} to {root}: "
               f"{shapes} shapes x {textures_per_shape} textures = {n_child} classes, "
               f"{backgrounds} backgrounds, rho {correlation:g}, {n - n_test} train / {n_test} test")
    typer.echo(f"ground truth: {root / 'ground_truth.jsonl'}; preview: {root / 'preview.png'}")


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
