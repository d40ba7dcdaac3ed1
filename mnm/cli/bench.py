"""`mnm bench`: latency and throughput of a bundle on its backends, torch-free."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import typer

from mnm.cli.app import app
from mnm.cli.pipeline import VERBOSE_HELP, precision_option
from mnm.errors import MnmError


def parse_batches(text: str) -> list[int]:
    """``1,8,32`` → [1, 8, 32]; one line naming the option on anything else."""
    try:
        values = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        values = []
    if not values or any(v < 1 for v in values):
        raise MnmError(f"--batch: expected comma-separated positive integers like 1,8,32, got {text!r}")
    return list(dict.fromkeys(values))


@app.command("bench")
def bench(
    bundle: Path = typer.Argument(..., help="Exported bundle folder (mnm export)."),
    backend: list[str] = typer.Option(
        ["auto"], "--backend",
        help="auto, all (every backend that starts here), ort-cpu, ort-cuda, ort-trt or tensorrt; "
        "repeat or comma-separate for several.",
    ),
    precision: str = precision_option(),
    batch: str = typer.Option("1,8,32", "--batch", help="Batch sizes for the per-graph latencies."),
    repeats: int = typer.Option(20, "--repeats", min=1, help="Timed runs per measurement (the median is reported)."),
    warmup: int = typer.Option(3, "--warmup", min=0, help="Untimed runs before each measurement."),
    json_path: Path | None = typer.Option(None, "--json", help="Also write the full report as JSON here."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help=VERBOSE_HELP),
) -> None:
    """Per backend: each graph's latency per batch size, mix-and-match images/s (one mix of four
    references; a 4x4x4 grid) and img2gif per-frame latency and fps, with the machine's details."""
    from mnm.atomic import write_text
    from mnm.progress import track
    from mnm.runtime.bench import format_report, run_bench

    backends = [name.strip() for value in backend for name in value.split(",") if name.strip()]
    bar = partial(track, desc="bench", unit="run", terminal_only=True)  # in a captured log it would run into the report
    report = run_bench(bundle, backends, parse_batches(batch), repeats, warmup, progress=lambda n: bar(total=n),
                       precision=precision)
    if verbose:
        for name, reasons in report["auto_skipped"].items():
            typer.echo(f"--backend auto picked {name}; not used:", err=True)
            for reason in reasons:
                typer.echo(f"  {reason}", err=True)
    typer.echo(format_report(report))
    if json_path is not None:
        write_text(json_path, json.dumps(report, indent=2) + "\n")
        typer.echo(f"\nwrote {json_path}")
