"""`mnm import mixnmatch`: the authors' published G.pth, E.pth (and EX.pth) as an mnm checkpoint.

torch is imported inside the command only (the files are PyTorch pickles, read with
``weights_only=True``); ``mnm --help`` stays torch-free.
"""

from __future__ import annotations

from pathlib import Path

import typer

from mnm.cli.app import app

import_app = typer.Typer(help="Import models trained by other code: the published MixNMatch checkpoints.",
                         no_args_is_help=True)
app.add_typer(import_app, name="import")


@import_app.command("mixnmatch")
def mixnmatch(
    generator: Path = typer.Option(..., "--generator", help="The authors' G.pth (the generator)."),
    encoders: Path = typer.Option(..., "--encoders", help="The authors' E.pth (the four encoders)."),
    extractor: Path | None = typer.Option(
        None, "--extractor", help="The authors' EX.pth (the feature extractor S); without it, code mode only."
    ),
    out: Path = typer.Option(..., "--out", help="The checkpoint folder to write (safetensors + meta.json)."),
) -> None:
    """Convert the published MixNMatch models into an mnm checkpoint (for export, eval and stage 2).

    The config is read from the tensor shapes, so CUB, Dogs and Cars files need no flags; every
    tensor is checked by name and shape before anything is written.
    """
    from mnm.config import ModelConfig
    from mnm.importers.mixnmatch import describe, import_mixnmatch
    from mnm.importers.mixnmatch_table import SLOTS

    folder, meta = import_mixnmatch(generator, encoders, out, extractor=extractor)
    imported = meta["imported"]
    typer.echo(f"model read from the tensor shapes: {describe(ModelConfig.from_dict(meta['config']))}")
    for slot, record in imported["files"].items():
        typer.echo(f"  {SLOTS[slot].option:<12} {record['file']}  {record['tensors']} tensors  "
                   f"sha256 {record['sha256'][:16]}")
    modes = " and ".join(meta["modes"])
    note = " (no --extractor: code mode only)" if imported["code_mode_only"] else ""
    typer.echo(f"wrote {folder} ({modes} mode){note}")
    typer.echo(f"next: mnm export {folder} --out BUNDLE")

