"""`mnm export`: a trained run (or random weights) to a checked ONNX bundle, optionally FP16 graphs
and TensorRT engines."""

from __future__ import annotations

from pathlib import Path

import typer

from mnm.cli.app import app
from mnm.errors import MnmError


@app.command("export")
def export(
    source: Path | None = typer.Argument(
        None, metavar="CHECKPOINT_OR_RUN", show_default=False,
        help="A training run folder (its latest checkpoint) or a checkpoint folder.",
    ),
    out: Path = typer.Option(..., "--out", help="The bundle folder to write (replaced atomically)."),
    preset: str | None = typer.Option(None, "--preset", help="With --random-init: paper, lite or tiny."),
    random_init: bool = typer.Option(False, "--random-init", help="Export randomly initialised networks."),
    seed: int | None = typer.Option(None, "--seed", help="With --random-init: the weights' seed (default 0)."),
    fp16: bool = typer.Option(False, "--fp16", help="Also write FP16 graphs (float32 inputs and outputs)."),
    trt: bool = typer.Option(False, "--trt", help="Also build TensorRT engines (needs TensorRT and a GPU)."),
    max_batch: int = typer.Option(16, "--max-batch", help="Largest batch of the TensorRT profiles."),
    opset: int = typer.Option(18, "--opset", help="ONNX opset of the graphs."),
) -> None:
    """Export every network to ONNX, check each graph against PyTorch, and write the bundle."""
    if random_init == (source is not None):
        raise MnmError("give either a run or checkpoint folder, or --random-init with --preset")
    if random_init and preset is None:
        raise MnmError("--random-init needs --preset (paper, lite or tiny)")
    if not random_init and (preset is not None or seed is not None):
        raise MnmError("--preset and --seed apply to --random-init only; a checkpoint carries its config")
    if max_batch < 1:
        raise MnmError(f"--max-batch must be at least 1, got {max_batch}")

    from mnm.config import resolve_config
    from mnm.export.bundle import build_bundle_engines, export_checkpoint, export_random

    options = {"fp16": fp16, "opset": opset, "max_batch": max_batch}
    if random_init:
        manifest = export_random(resolve_config(preset), out, seed=seed or 0, preset=preset, **options)
    else:
        manifest = export_checkpoint(source, out, **options)
    typer.echo(_summary(out, manifest))
    if trt:
        manifest = build_bundle_engines(out, manifest, max_batch)
        typer.echo(f"engines: {len(manifest['engines'])} in {out / 'engines'}")


def _summary(out: Path, manifest: dict) -> str:
    """One line per graph: precision, MACs per image and the worst parity difference."""
    rows = []
    for section in ("graphs", "graphs_fp16"):
        for name, entry in manifest[section].items():
            parity = entry["parity"]
            worst = max(parity["max_abs_diff"].values())
            scale = " of the output scale" if entry["precision"] == "fp16" else ""
            rows.append(
                f"  {name:<13} {entry['precision']}  {entry['macs_per_image'] / 1e6:9.1f} MMAC/image  "
                f"max |onnx - torch| {worst:.1e} (tolerance {parity['tolerance']:g}{scale})"
            )
    modes = " + ".join(manifest["modes"])
    return f"bundle {out} ({modes} mode, opset {manifest['opset']}):\n" + "\n".join(rows)
