"""`mnm mix`: one image, a labelled grid, or a CSV plan of combinations.

Runs on the lean install: the runtime is imported inside the command and never imports torch.
"""

from __future__ import annotations

from pathlib import Path

import typer

from mnm.cli.app import app
from mnm.cli.pipeline import FIT_HELP, VERBOSE_HELP, open_pipeline, precision_option
from mnm.errors import MnmError

FACTOR_HELP = "an image path, random, code:K (category of b/p/c) or seed:N (z); repeat or comma-separate for a grid"


@app.command("mix")
def mix(
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
        None, "--batch", help="CSV plan, columns background,pose,shape,texture[,out]: one image per row into --out DIR."
    ),
    max_batch: int = typer.Option(16, "--max-batch", help="Most images per graph run."),
    threads: int | None = typer.Option(
        None, "--threads", min=1,
        help="onnxruntime CPU threads [default: the cores this process may use; 1 can be faster on a busy machine].",
    ),
    out: Path = typer.Option(
        ..., "--out", help="Output image (a grid when a factor lists several), or a folder with --batch."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help=VERBOSE_HELP),
) -> None:
    """Mix and match: each factor from a reference image or a code; lists give a labelled grid."""
    from mnm.runtime.requests import BoxTable, parse_box, split_specs
    from mnm.runtime.stitch import check_mode

    check_mode(stitch)
    if mode not in ("code", "feature"):
        raise MnmError(f"--mode: expected code or feature, got {mode!r}")
    if fit not in ("crop", "squash"):
        raise MnmError(f"--fit: expected crop or squash, got {fit!r}")
    table = BoxTable.read(boxes, default=parse_box(box) if box else None)
    lists = {k: split_specs(v) for k, v in (("background", background), ("pose", pose), ("shape", shape),
                                             ("texture", texture))}
    if batch is not None:
        given = [f"--{k}" for k, v in lists.items() if v]
        if given:
            raise MnmError(f"--batch: the plan gives the factors; drop {', '.join(given)}")
        if out.exists() and not out.is_dir():
            raise MnmError(f"{out}: --out must be a folder with --batch")
    else:
        _check_image_suffix(out)
    pipe = open_pipeline(bundle, backend, max_batch, threads, verbose, fit=fit, precision=precision)
    if batch is not None:
        _run_plan(pipe, batch, out, mode, seed, stitch, table)
        return
    for kind in ("background", "pose", "texture"):
        lists[kind] = lists[kind] or ["random"]
    shapes = lists["shape"] or [None]
    if all(len(v) == 1 for v in lists.values()) and len(shapes) == 1:
        rendered = pipe.render([pipe.make_mix(lists["background"][0], lists["pose"][0], shapes[0],
                                              lists["texture"][0], table)], mode=mode, seed=seed, stitch=stitch)
        _save(out, rendered[0].image)
        typer.echo(f"wrote {out}")
        return
    grid = pipe.grid(lists["background"], lists["pose"], shapes, lists["texture"], mode=mode, seed=seed,
                     stitch=stitch, boxes=table)
    _save(out, grid.image())
    rows, cols = grid.shape
    typer.echo(f"wrote {out} ({rows} x {cols} grid, {len(grid.cells)} images)")


def _check_image_suffix(path: Path) -> None:
    from PIL import Image

    if Image.registered_extensions().get(path.suffix.lower()) not in ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF"):
        raise MnmError(f"{path}: --out needs an image extension (.png, .jpg, .webp, .bmp, .tif or .gif)")


def _save(path: Path, image) -> None:
    from mnm.imaging import save_image

    save_image(path, image)


def _run_plan(pipe, plan: Path, folder: Path, mode: str, seed: int, stitch, table) -> None:
    """Every row of the plan into ``folder``; rows whose file exists are skipped (re-runs resume).

    A row's random factors come from ``default_rng((seed, row number))``, so a row gets the same
    image whether or not earlier rows were skipped.
    """
    import numpy as np

    from mnm.progress import track
    from mnm.runtime.requests import FACTORS, Mix, read_plan

    rows = read_plan(plan)
    for row in rows:
        _check_image_suffix(folder / row.out)
    pending = [r for r in rows if not (folder / r.out).exists()]
    if len(pending) < len(rows):
        typer.echo(f"{len(rows) - len(pending)} of {len(rows)} images already in {folder}; skipping them", err=True)
    mixes = []
    for row in pending:  # parse every row before generating anything; resolve its random codes now
        rng = np.random.default_rng((seed, row.line))
        try:
            specs = {k: row.specs[k] or (None if k == "shape" else "random") for k in FACTORS}
            if specs["shape"] is None and mode == "code":
                specs["shape"] = "random"
            m = pipe.make_mix(specs["background"], specs["pose"], specs["shape"], specs["texture"], table)
            mixes.append(Mix(*(None if f is None else f.resolve(k, pipe.config, rng)
                               for k, f in zip(FACTORS, (m.background, m.pose, m.shape, m.texture), strict=True))))
        except MnmError as exc:
            raise MnmError(f"{plan}:{row.line}: {exc}") from None
    with track(total=len(pending), desc="mix", unit="image") as bar:
        for start in range(0, len(pending), pipe.max_batch):
            chunk = slice(start, start + pipe.max_batch)
            for row, rendered in zip(pending[chunk], pipe.render(mixes[chunk], mode=mode, stitch=stitch), strict=True):
                _save(folder / row.out, rendered.image)
                bar.update()
    typer.echo(f"wrote {len(pending)} images to {folder}")
