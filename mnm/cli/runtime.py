"""`mnm mix` (one image, a labelled grid, or a CSV plan of combinations) and `mnm info` (what a bundle holds).

Both run on the lean install: the runtime is imported inside the commands and never imports torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mnm.cli.app import app
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
    stitch: str | None = typer.Option(
        None, "--stitch", help="Paste real pixels back: background (from the background reference) or foreground."
    ),
    box: str | None = typer.Option(None, "--box", help="Object box x,y,w,h in pixels for every reference image."),
    boxes: Path | None = typer.Option(None, "--boxes", help="File of 'PATH X Y W H' lines: a box per reference."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed for the random factors."),
    batch: Path | None = typer.Option(
        None, "--batch", help="CSV plan, columns background,pose,shape,texture[,out]: one image per row into --out DIR."
    ),
    max_batch: int = typer.Option(16, "--max-batch", help="Most images per graph run."),
    threads: int | None = typer.Option(
        None, "--threads", min=1,
        help="onnxruntime CPU threads [default: physical cores; 1 can be faster on a busy machine].",
    ),
    out: Path = typer.Option(
        ..., "--out", help="Output image (a grid when a factor lists several), or a folder with --batch."
    ),
) -> None:
    """Mix and match: each factor from a reference image or a code; lists give a labelled grid."""
    from mnm.runtime.requests import BoxTable, parse_box, split_specs
    from mnm.runtime.stitch import check_mode

    check_mode(stitch)
    if mode not in ("code", "feature"):
        raise MnmError(f"--mode: expected code or feature, got {mode!r}")
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
    pipe = open_pipeline(bundle, backend, max_batch, threads)
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


@app.command("info")
def info(
    bundle: Path = typer.Argument(..., help="Exported bundle folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Describe and verify a bundle: config, graphs, fp16 graphs, engines (and whether they fit here).

    Every file's sha256 is checked; the command exits non-zero naming a file that does not match.
    """
    from mnm.runtime.bundle import Bundle

    opened = Bundle.open(bundle, verify=False)
    report = _report(opened)
    typer.echo(json.dumps(report, indent=2) if as_json else _text(report))
    bad = [f for f in report["files"] if f["problem"]]
    if bad:
        more = f" (and {len(bad) - 1} more file(s))" if len(bad) > 1 else ""
        raise MnmError(f"{bad[0]['file']}: {bad[0]['problem']}{more}")


# ---------------------------------------------------------------- mix helpers


def open_pipeline(bundle: Path, backend: str, max_batch: int, threads: int | None = None):
    """The verified bundle's pipeline, saying on stderr which backend runs (``mnm animate`` uses it too)."""
    from mnm.runtime.bundle import Bundle
    from mnm.runtime.pipeline import Pipeline

    options = {} if threads is None else {"threads": threads}
    pipe = Pipeline(Bundle.open(bundle), backend=backend, max_batch=max_batch, **options)
    how = "picked by --backend auto" if backend == "auto" else "as asked"
    typer.echo(f"backend: {pipe.backend.description}, {how}", err=True)
    for reason in getattr(pipe.backend, "skipped", []):
        typer.echo(f"  not used: {reason}", err=True)
    return pipe


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
    from mnm.runtime.requests import Mix
    from mnm.runtime.requests import FACTORS, read_plan

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


# ---------------------------------------------------------------- info helpers


def _report(bundle) -> dict:
    from mnm.runtime.backends import available

    manifest = bundle.manifest
    problems = {str(p): problem for p, problem in bundle.check_files()}

    def graph_rows(table):
        return [
            {
                "name": g.name,
                "file": str(g.path.relative_to(bundle.path)),
                "precision": g.precision,
                "inputs": [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in g.inputs],
                "outputs": [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in g.outputs],
                "params": g.params,
                "macs_per_image": g.macs_per_image,
                "bytes": g.bytes,
                "parity": g.parity,
                "sha256_ok": problems[str(g.path)] is None,
            }
            for g in table.values()
        ]

    return {
        "bundle": str(bundle.path),
        "format_version": manifest.get("format_version"),
        "created": manifest.get("created"),
        "source": manifest.get("source"),
        "exporter": manifest.get("exporter"),
        "opset": manifest.get("opset"),
        "config": bundle.config.to_dict(),
        "modes": list(bundle.modes),
        "normalization": manifest.get("normalization"),
        "graphs": graph_rows(bundle.graphs),
        "graphs_fp16": graph_rows(bundle.graphs_fp16),
        "engines": _engine_rows(bundle, problems),
        "backends": available(bundle),
        "files": [{"file": f, "problem": p} for f, p in problems.items()],
    }


def _engine_rows(bundle, problems: dict) -> list[dict]:
    if not bundle.engines:
        return []
    from mnm.runtime.backends.tensorrt import engine_problem, machine_info

    try:
        machine, no_machine = machine_info(), None
    except MnmError as exc:
        machine, no_machine = None, str(exc)
    rows = []
    for entry in bundle.engines.values():
        try:
            record = entry.record()
            fit = no_machine or engine_problem(bundle, entry, machine)
        except MnmError as exc:
            record, fit = {}, str(exc)
        rows.append({
            "key": entry.key,
            "file": str(entry.path.relative_to(bundle.path)),
            "precision": entry.precision,
            "tensorrt_version": record.get("tensorrt_version"),
            "gpu_name": record.get("gpu_name"),
            "compute_capability": record.get("compute_capability"),
            "profiles": record.get("profiles"),
            "fits_here": fit is None,
            "why_not": fit,
            "sha256_ok": problems[str(entry.path)] is None,
        })
    return rows


def _text(report: dict) -> str:
    cfg = report["config"]
    source = report["source"] or {}
    lines = [
        f"bundle {report['bundle']} (format {report['format_version']}, created {report['created']})",
        f"source: {source.get('kind', '?')}" + "".join(f", {k} {v}" for k, v in source.items() if k != "kind"),
        "config: " + ", ".join(f"{k}={v}" for k, v in cfg.items()),
        f"modes: {', '.join(report['modes'])}; opset {report['opset']}",
    ]
    for title, rows in (("graphs", report["graphs"]), ("fp16 graphs", report["graphs_fp16"])):
        if not rows and title == "fp16 graphs":
            lines.append("fp16 graphs: none (export with --fp16)")
            continue
        lines.append(f"{title}:")
        for g in rows:
            ins = ", ".join(f"{t['name']}{_shape(t['shape'])}" for t in g["inputs"])
            outs = ", ".join(f"{t['name']}{_shape(t['shape'])}" for t in g["outputs"])
            parity = _parity(g["parity"])
            ok = "sha256 ok" if g["sha256_ok"] else "SHA256 MISMATCH OR MISSING"
            lines.append(
                f"  {g['name']:<13} {g['macs_per_image'] / 1e6:9.2f} M MACs  {g['bytes'] / 2**20:7.2f} MiB  "
                f"{parity}  {ok}"
            )
            lines.append(f"  {'':<13} in: {ins}  out: {outs}")
    if report["engines"]:
        lines.append("engines:")
        for e in report["engines"]:
            fit = "fits this machine" if e["fits_here"] else f"does not fit: {e['why_not']}"
            built = f"TensorRT {e['tensorrt_version']}, {e['gpu_name']} (sm {e['compute_capability']})"
            lines.append(f"  {e['key']:<20} {built}: {fit}")
    else:
        lines.append("engines: none (export with --trt on a GPU machine)")
    usable = [name for name, why in report["backends"].items() if why is None]
    lines.append(f"backends here: {', '.join(usable) or 'none'}")
    bad = [f for f in report["files"] if f["problem"]]
    lines.append(f"files: {len(report['files'])} checked, " + (f"{len(bad)} bad" if bad else "all sha256 match"))
    return "\n".join(lines)


def _shape(shape: list) -> str:
    return "[" + ",".join("N" if d == "batch" else str(d) for d in shape) + "]"


def _parity(parity: dict) -> str:
    diffs = parity.get("max_abs_diff") or {}
    if not diffs:
        return "parity: not recorded"
    worst = max(diffs.values())
    return f"parity vs {parity.get('reference', 'torch')}: max |diff| {worst:.1e} (tol {parity.get('tolerance', '?')})"
