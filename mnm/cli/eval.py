"""``mnm eval clustering|disentangle|fid``: score a run; each writes JSON and prints one line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mnm.cli.app import eval_app

Run = Annotated[Path, typer.Argument(help="A run folder (its latest checkpoint) or a checkpoint folder.")]
Json = Annotated[Path | None, typer.Option(
    "--json", help="Result file (default: <run>/eval/<metric>-<step>.json).")]
Split = Annotated[str, typer.Option("--split", help="Dataset split: train, test or all.")]
Seed = Annotated[int, typer.Option("--seed", min=0, help="Seed of every random choice (k-means, pairs, codes).")]
Batch = Annotated[int, typer.Option("--batch", help="Images per forward pass.")]
Device = Annotated[str, typer.Option("--device", help="auto (CUDA when present), cuda or cpu.")]


def _run(name: str, run: Path, json_path: Path | None, device: str, precision: str | None = None, **options) -> None:
    from mnm.training.metrics import run_metric, summary

    record, path = run_metric(name, run, output=json_path, device=device, precision=precision, **options)
    typer.echo(f"{summary(name, record)}; wrote {path}")


@eval_app.command("clustering")
def clustering(
    run: Run,
    data: Annotated[Path, typer.Option("--data", help="Labelled dataset folder (any supported format).")],
    split: Split = "test",
    json_path: Json = None,
    seed: Seed = 0,
    n_init: Annotated[int, typer.Option("--n-init", help="k-means restarts (best inertia kept).")] = 10,
    batch: Batch = 64,
    device: Device = "auto",
) -> None:
    """NMI and accuracy of k-means on E_p + E_c features against the classes (paper Table 2)."""
    _run("clustering", run, json_path, device, data=str(data), split=split, seed=seed, n_init=n_init, batch=batch)


@eval_app.command("disentangle")
def disentangle(
    run: Annotated[Path, typer.Argument(
        help="A run folder (its latest checkpoint), a checkpoint folder, or an exported bundle folder.")],
    data: Annotated[Path, typer.Option("--data", help="A `mnm data synth` folder (ground truth and masks).")],
    pairs: Annotated[int, typer.Option("--pairs", help="Image pairs (A, B) to mix.")] = 5000,
    mode: Annotated[str, typer.Option("--mode", help="code (p, z from B) or feature (S(B)).")] = "code",
    seed: Seed = 0,
    split: Split = "test",
    json_path: Json = None,
    batch: Batch = 64,
    device: Device = "auto",
    precision: Annotated[str | None, typer.Option(
        "--precision", help="For a bundle: auto (INT8 graphs where it has them), fp32, fp16 or int8.")] = None,
) -> None:
    """Shape IoU and texture/background colour chi2 of mixes vs ground truth, with baselines (Table 3).
    A bundle is scored through the runtime, so fp32 and INT8 graphs of one model can be compared."""
    _run("disentangle", run, json_path, device, precision, data=str(data), pairs=pairs, mode=mode, seed=seed,
         split=split, batch=batch)


@eval_app.command("fid")
def fid(
    run: Run,
    data: Annotated[Path, typer.Option("--data", help="Dataset folder of the real images.")],
    inception_weights: Annotated[Path | None, typer.Option(
        "--inception-weights", help="FID Inception weights (safetensors, converted from pytorch-fid's "
        "pt_inception-2015-12-05 file; default ~/.cache/mnm/inception-2015-12-05.safetensors).")] = None,
    n: Annotated[int, typer.Option("--n", help="Generated images (and at most this many real ones).")] = 10_000,
    seed: Seed = 0,
    split: Split = "test",
    json_path: Json = None,
    batch: Batch = 50,
    device: Device = "auto",
) -> None:
    """FID and KID of generated images against the real object crops."""
    _run("fid", run, json_path, device, data=str(data),
         inception_weights=None if inception_weights is None else str(inception_weights),
         n=n, seed=seed, split=split, batch=batch)
