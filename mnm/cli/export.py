"""`mnm export`: a trained run (or random weights) to a checked ONNX bundle, optionally FP16 graphs
and TensorRT engines."""

from __future__ import annotations

from pathlib import Path

import typer

from mnm.cli.app import app
from mnm.errors import MnmError
from mnm.export.int8_gate import Gate


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
    fp16: bool = typer.Option(
        False, "--fp16", help="Also write FP16 graphs (float32 inputs and outputs), gated as INT8 graphs are "
        "(precision auto takes them on a GPU only if they pass)."),
    int8: bool = typer.Option(
        False, "--int8", help="Also write INT8 graphs (CPU), each kept only if it passes its quality gate."),
    calibrate: Path | None = typer.Option(
        None, "--calibrate", help="With --int8 or --fp16: folder of reference images (or a dataset folder) to "
        "calibrate and gate on [default: a rendered synthetic set]."),
    int8_min_psnr: float = typer.Option(
        Gate.min_psnr_db, "--int8-min-psnr", help="Gate: least PSNR (dB) of held-out mixes against fp32."),
    int8_max_diff: int = typer.Option(
        Gate.max_abs_diff, "--int8-max-diff", min=0, max=255,
        help="Gate: largest pixel difference (0-255) of held-out mixes against fp32."),
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
    if calibrate is not None and not (int8 or fp16):
        raise MnmError("--calibrate applies to --int8 and --fp16 only")
    if calibrate is not None and not calibrate.is_dir():
        raise MnmError(f"{calibrate}: --calibrate must be a folder of reference images")

    from mnm.config import resolve_config
    from mnm.export.bundle import build_bundle_engines, export_checkpoint, export_random

    options = {"fp16": fp16, "opset": opset, "max_batch": max_batch, "int8": int8, "calibrate": calibrate,
               "int8_gate": Gate(min_psnr_db=int8_min_psnr, max_abs_diff=int8_max_diff)}
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
    int8 = manifest.get("int8")
    if int8:
        for name, q in int8["graphs"].items():
            verdict = "int8" if q["precision"] == "int8" else "stays fp32"
            why = f" ({q['dropped']})" if q.get("dropped") else ""
            rows.append(f"  {name:<13} {verdict:<10} held-out mixes vs fp32: PSNR {q['psnr_db']:.1f} dB, "
                        f"max diff {q['max_abs_diff']} (gate >= {q['gate']['min_psnr_db']:g} dB, "
                        f"<= {q['gate']['max_abs_diff']}){why}")
        if int8.get("disentangle"):
            d = int8["disentangle"]
            rows.append(f"  disentangle (fp32 -> int8 graphs): largest change {d['max_change']:.3f} "
                        f"(gate <= {int8['gate']['max_disentangle_change']:g}, {d['pairs']} pairs)")
    modes = " + ".join(manifest["modes"])
    return f"bundle {out} ({modes} mode, opset {manifest['opset']}):\n" + "\n".join(rows)
