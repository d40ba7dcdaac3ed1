"""`mnm model summary`: parameters and multiply-accumulates per exported graph of a config."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mnm.cli.app import model_app


def _millions(n: int) -> str:
    return f"{n / 1e6:.2f} M"


def _giga(n: int) -> str:
    return f"{n / 1e9:.3f} G"


def _table(report: dict) -> str:
    """Graphs then totals: MACs of the exported graph, of the naive computation, and what each
    rewrite of docs/export-rewrites.md takes off (blank where it changes nothing; rewrites that
    change no count anywhere, only the kind of operation, get no column)."""
    rewrites = [r for r in report["rewrites"] if any(e["macs_saved"][r] for e in report["graphs"].values())]
    rows = [("graph", "params", "MACs/image", "naive MACs", *(f"-{r}" for r in rewrites))]
    for name, entry in report["graphs"].items():
        saved = [_giga(entry["macs_saved"][r]) if entry["macs_saved"][r] else "" for r in rewrites]
        rows.append((name, _millions(entry["params"]), _giga(entry["macs"]), _giga(entry["macs_naive"]), *saved))
    for name, entry in report["totals"].items():
        rows.append((f"total {name}", _millions(entry["params"]), _giga(entry["macs"]), _giga(entry["macs_naive"]),
                     *([""] * len(rewrites))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        first, *rest = zip(row, widths, strict=True)
        cells = [first[0].ljust(first[1])] + [cell.rjust(w) for cell, w in rest]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


@model_app.command("summary")
def summary(
    preset: str = typer.Option("paper", "--preset", help="Config preset: paper, lite or tiny."),
    config: Path | None = typer.Option(None, "--config", help="JSON file of config fields over the preset."),
    overrides: list[str] = typer.Option([], "--set", help="key=value config override (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Parameters and MACs per image of every exported graph (with the export rewrites) and naive."""
    from mnm.config import resolve_config

    cfg = resolve_config(preset, config, overrides)  # bad input fails before torch is imported
    from mnm.export.summary import summarize

    report = summarize(cfg)
    typer.echo(json.dumps(report, indent=2) if as_json else _table(report))
