"""`mnm mix`: one image, a labelled grid, or a CSV plan of combinations.

Runs on the lean install: the runtime is imported inside the command and never imports torch.
"""

from __future__ import annotations

from pathlib import Path

import typer

from mnm.cli import batch as batch_cli
from mnm.cli.app import app
from mnm.cli.demo import note_demo_model
from mnm.cli.pipeline import FIT_HELP, VERBOSE_HELP, open_pipeline, precision_option
from mnm.errors import MnmError

FACTOR_HELP = (
    "an image path, random, code:K (category of b/p/c) or seed:N (z); repeat or comma-separate for a grid, "
    "or name a folder or a quoted pattern ('refs/*.png') for all its images"
)


@app.command("mix", context_settings={"allow_extra_args": True})
def mix(
    ctx: typer.Context,
    bundle: Path = typer.Argument(..., help="Exported bundle folder (mnm export)."),
    background: list[str] = typer.Option([], "--background", help=f"Background (b, z_bg): {FACTOR_HELP}."),
    pose: list[str] = typer.Option([], "--pose", help=f"Pose (z): {FACTOR_HELP}."),
    shape: list[str] = typer.Option(
        [], "--shape", help=f"Shape (p): {FACTOR_HELP}. Feature mode: leave out (S of the pose image)."
    ),
    texture: list[str] = typer.Option([], "--texture", help=f"Texture (c): {FACTOR_HELP}."),
    mode: str = typer.Option("code", "--mode", help="code: codes from the encoders; feature: shape and pose from S."),
    backend: str = typer.Option("auto", "--backend", help="auto, ort-cpu, ort-cuda, ort-trt or tensorrt."),
    precision: str = precision_option(),
    stitch: str | None = typer.Option(
        None, "--stitch", help="Paste real pixels back: background (from the background reference) or foreground."
    ),
    box: str | None = typer.Option(None, "--box", help="Object box x,y,w,h in pixels for every reference image."),
    boxes: Path | None = typer.Option(None, "--boxes", help="File of 'PATH X Y W H' lines: a box per reference."),
    fit: str = typer.Option("crop", "--fit", help=FIT_HELP),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed for the random factors."),
    batch: Path | None = typer.Option(
        None, "--batch", help="CSV plan, columns background,pose,shape,texture[,out], every factor given (the shape "
        "may be left out in feature mode): one image per row into --out DIR; a rerun resumes (docs/runtime.md)."
    ),
    max_batch: int = typer.Option(16, "--max-batch", help="Most images per graph run."),
    threads: int | None = typer.Option(
        None, "--threads", min=1,
        help="onnxruntime CPU threads [default: the cores this process may use; 1 can be faster on a busy machine].",
    ),
    out: str = typer.Option(
        ..., "--out", help="Output image (a grid when a factor lists several), or a folder (or a pyarrow.fs URL) "
        "with --batch."
    ),
    shard: str | None = batch_cli.shard_option(),
    ray: bool = batch_cli.ray_option(),
    address: str | None = batch_cli.address_option(),
    workers: int = batch_cli.workers_option(),
    index: Path | None = batch_cli.index_option(),
    keep_going: bool = batch_cli.keep_going_option(),
    verbose: bool = typer.Option(False, "--verbose", "-v", help=VERBOSE_HELP),
) -> None:
    """Mix and match: each factor from a reference image or a code; lists give a labelled grid.

    Name every factor (random is asked for by name, not by leaving a factor out); feature mode alone
    leaves --shape out (it comes from the pose image)."""
    from mnm.runtime.requests import (
        BoxTable,
        Mix,
        expand_specs,
        parse_box,
        parse_factor,
        require_factors,
        split_specs,
    )
    from mnm.runtime.stitch import check_mode

    if ctx.args:  # what a shell glob after an option gives: --texture a.png b.png c.png
        raise MnmError(
            f"unexpected argument(s) {' '.join(ctx.args)}: to give a factor several values, repeat the option "
            "(--texture a.png --texture b.png), separate them with commas (--texture a.png,b.png), name a "
            "folder (--texture refs/) or quote a pattern (--texture 'refs/*.png')"
        )
    check_mode(stitch)
    if mode not in ("code", "feature"):
        raise MnmError(f"--mode: expected code or feature, got {mode!r}")
    if fit not in ("crop", "squash"):
        raise MnmError(f"--fit: expected crop or squash, got {fit!r}")
    given = {"background": background, "pose": pose, "shape": shape, "texture": texture}
    if batch is None:
        require_factors({k: bool(v) for k, v in given.items()}, mode, name=lambda k: f"--{k}")
    table = BoxTable.read(boxes, default=parse_box(box) if box else None)
    # Every input is checked before the bundle is opened (verifying it reads every graph).
    lists = {k: expand_specs(split_specs(v), f"--{k}") for k, v in given.items()}
    if batch is not None:
        used = [f"--{k}" for k, v in lists.items() if v]
        if used:
            raise MnmError(f"--batch: the plan gives the factors; drop {', '.join(used)}")
        batch_cli.run_batch(bundle, batch, out, mode=mode, seed=seed, stitch=stitch, fit=fit, precision=precision,
                            backend=backend, threads=threads, max_batch=max_batch, verbose=verbose, boxes=table,
                            boxes_path=boxes, shard=shard, ray=ray, address=address, workers=workers, index=index,
                            keep_going=keep_going)
        return
    batch_cli.refuse_without_batch(shard, ray, address, workers, index, keep_going)
    out = Path(out)
    _check_image_suffix(out)
    note_demo_model(bundle, [spec for values in lists.values() for spec in values])
    factors = {k: [parse_factor(v, k, table) for v in values] for k, values in lists.items()}
    shapes = factors["shape"] or [None]
    pipe = open_pipeline(bundle, backend, max_batch, threads, verbose, fit=fit, precision=precision)
    if all(len(v) == 1 for k, v in factors.items() if k != "shape") and len(shapes) == 1:
        one = Mix(factors["background"][0], factors["pose"][0], shapes[0], factors["texture"][0])
        rendered = pipe.render([one], mode=mode, seed=seed, stitch=stitch)
        _save(out, rendered[0].image)
        typer.echo(f"wrote {out}")
        return
    grid = pipe.grid(factors["background"], factors["pose"], shapes, factors["texture"], mode=mode, seed=seed,
                     stitch=stitch)
    _save(out, grid.image())
    rows, cols = grid.shape
    typer.echo(f"wrote {out} ({rows} x {cols} grid, {len(grid.cells)} images): {_several(given, lists)}")


def _several(given: dict[str, list[str]], lists: dict[str, list[str]]) -> str:
    """Which factors took several values, how many, and the folders or patterns they came from: a
    folder is a grid by design, and the line says so rather than surprise anyone."""
    from mnm.runtime.requests import split_specs

    parts = []
    for kind, values in lists.items():
        if len(values) > 1:
            expanded = [spec for spec in split_specs(given[kind]) if spec not in values]
            parts.append(f"--{kind} took {len(values)} values" + (f" (from {', '.join(expanded)})" if expanded else ""))
    return ", ".join(parts)


def _check_image_suffix(path: Path) -> None:
    from PIL import Image

    if Image.registered_extensions().get(path.suffix.lower()) not in ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF"):
        raise MnmError(f"{path}: --out needs an image extension (.png, .jpg, .webp, .bmp, .tif or .gif)")


def _save(path: Path, image) -> None:
    from mnm.imaging import save_image

    save_image(path, image)
