"""`mnm info`: what a bundle holds (config, graphs, fp16 and INT8 graphs, engines) and whether every file is intact;
with ``--backends``, which backends really start on this machine (each one is created), and why not.

Runs on the lean install: the runtime is imported inside the command and never imports torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mnm.cli.app import app
from mnm.errors import MnmError

DEMO_BUNDLE = Path(__file__).resolve().parents[1] / "assets" / "demo" / "bundle"


@app.command("info")
def info(
    bundle: Path | None = typer.Argument(
        None, help="Exported bundle folder (with --backends: default the demo model)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    backends: bool = typer.Option(
        False, "--backends", help="Create every backend for the bundle and say which start here, and why not."
    ),
) -> None:
    """Describe and verify a bundle: config, graphs, fp16 graphs, engines (and whether they fit here).

    Every file's sha256 is checked; the command exits non-zero naming a file that does not match.
    With --backends, also the onnxruntime/TensorRT packages, the GPUs and their driver, and each
    backend created for real (a provider onnxruntime lists may still fail to start).
    """
    from mnm.runtime.bundle import Bundle

    if bundle is None and not backends:
        raise MnmError("give a bundle folder (or --backends to test the backends on the demo model)")
    opened = Bundle.open(bundle if bundle is not None else DEMO_BUNDLE, verify=False)
    report = _report(opened)
    if backends:
        report.update(_backends_report(opened))
    typer.echo(json.dumps(report, indent=2) if as_json else _text(report))
    bad = [f for f in report["files"] if f["problem"]]
    if bad:
        more = f" (and {len(bad) - 1} more file(s))" if len(bad) > 1 else ""
        raise MnmError(f"{bad[0]['file']}: {bad[0]['problem']}{more}")


def _backends_report(bundle) -> dict:
    from mnm.runtime.backends import AUTO_ORDER, probe
    from mnm.runtime.backends.environment import installation

    found = probe(bundle)
    return {
        "installation": installation(),
        "backends": {name: {"starts": p.starts, "detail": p.detail} for name, p in found.items()},
        "auto": next((name for name in AUTO_ORDER if found[name].starts), None),
    }


def _report(bundle) -> dict:
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
        "graphs_int8": graph_rows(bundle.graphs_int8),
        "int8": manifest.get("int8"),
        "precision_auto": _precision_auto(bundle),
        "rewrites": manifest.get("rewrites"),
        "engines": _engine_rows(bundle, problems),
        "files": [{"file": f, "problem": p} for f, p in problems.items()],
    }


def _precision_auto(bundle) -> dict:
    """What ``--precision auto`` runs on this CPU and on a GPU, and why (Bundle.int8_choice, fp16_choice)."""
    from mnm.runtime import machine

    chosen, why = bundle.int8_choice
    gpu, gpu_why = bundle.fp16_choice
    return {"runs_int8": chosen, "why": why, "cpu": machine.cpu_model(), "cpu_features": machine.cpu_features(),
            "gpu": "fp16" if gpu else "fp32", "gpu_why": gpu_why}


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
        "export rewrites: " + (", ".join(report["rewrites"] or {}) or "none recorded") + " (docs/export-rewrites.md)",
    ]
    for title, rows in (("graphs", report["graphs"]), ("fp16 graphs", report["graphs_fp16"])):
        if not rows and title == "fp16 graphs":
            lines.append("fp16 graphs: none (export with --fp16)")
            continue
        if title == "fp16 graphs":
            auto = report["precision_auto"]
            lines.append(f"--precision auto on a GPU: {auto['gpu']} ({auto['gpu_why']})")
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
    lines += _int8_text(report)
    if report["engines"]:
        lines.append("engines:")
        for e in report["engines"]:
            fit = "fits this machine" if e["fits_here"] else f"does not fit: {e['why_not']}"
            built = f"TensorRT {e['tensorrt_version']}, {e['gpu_name']} (sm {e['compute_capability']})"
            lines.append(f"  {e['key']:<20} {built}: {fit}")
    else:
        lines.append("engines: none (export with --trt on a GPU machine)")
    if "backends" in report:
        lines += _backend_lines(report)
    else:
        lines.append("backends: mnm info --backends BUNDLE creates each one and says which start here")
    bad = [f for f in report["files"] if f["problem"]]
    lines.append(f"files: {len(report['files'])} checked, " + (f"{len(bad)} bad" if bad else "all sha256 match"))
    return "\n".join(lines)


def _int8_text(report: dict) -> list[str]:
    """The INT8 graphs and, for every graph, its gate verdict (docs/int8.md)."""
    int8 = report.get("int8")
    if not int8:
        return ["int8 graphs: none (export with --int8)"]
    lines = [f"int8 graphs ({len(report['graphs_int8'])} of {len(report['graphs'])} passed the quality gate):"]
    ok = {g["name"]: g["sha256_ok"] for g in report["graphs_int8"]}
    for name, q in int8["graphs"].items():
        verdict = "int8" if q["precision"] == "int8" else "fp32 (failed its gate)"
        check = ("  sha256 ok" if ok[name] else "  SHA256 MISMATCH OR MISSING") if name in ok else ""
        lines.append(f"  {name:<13} {verdict:<22} PSNR {q['psnr_db']:.1f} dB, max diff {q['max_abs_diff']}{check}")
    gate = int8.get("gate_machine")
    if gate:
        lines.append(f"  gate measured on: {gate['cpu']} ({', '.join(gate['cpu_features']) or 'no listed features'})")
    auto = report["precision_auto"]
    lines.append(f"--precision auto here: {'the INT8 graphs' if auto['runs_int8'] else 'fp32'} ({auto['why']})")
    return lines


def _backend_lines(report: dict) -> list[str]:
    inst = report["installation"]
    packages = ", ".join(f"{k} {v}" for k, v in inst["packages"].items()) or "none of them"
    lines = [f"packages: {packages}"]
    if inst["onnxruntime_cuda"]:
        lines.append(f"onnxruntime-gpu is built for CUDA {inst['onnxruntime_cuda']}"
                     + (f", its TensorRT provider for TensorRT {inst['onnxruntime_tensorrt_major']}"
                        if inst["onnxruntime_tensorrt_major"] else ""))
    lines.append(f"providers onnxruntime lists: {', '.join(inst['providers_listed']) or 'none'}")
    for i, gpu in enumerate(inst["gpus"]):
        lines.append(f"GPU {i} (nvidia-smi order): {gpu['name']}, sm {gpu['compute_capability']}, "
                     f"driver {gpu['driver']}")
    if inst["gpus"]:
        extra = (f"CUDA {inst['cuda_major']} wheels: pip extra {inst['extra']}" if inst["extra"]
                 else "too old for the CUDA 12/13 wheels")
        lines.append(f"driver's newest CUDA: {inst['driver_cuda'] or '?'} -> {extra} (docs/gpu.md)")
    else:
        lines.append("GPUs: none (no nvidia-smi, or it lists none)")
    lines += [f"problem: {p}" for p in inst["problems"]]
    lines.append(f"backends, each created for {report['bundle']}:")
    for name, found in report["backends"].items():
        state = "starts" if found["starts"] else "does not start"
        lines.append(f"  {name:<9} {state}: {found['detail']}")
    lines.append(f"--backend auto picks: {report['auto'] or 'none'}")
    return lines


def _shape(shape: list) -> str:
    return "[" + ",".join("N" if d == "batch" else str(d) for d in shape) + "]"


def _parity(parity: dict) -> str:
    diffs = parity.get("max_abs_diff") or {}
    if not diffs:
        return "parity: not recorded"
    worst = max(diffs.values())
    return f"parity vs {parity.get('reference', 'torch')}: max |diff| {worst:.1e} (tol {parity.get('tolerance', '?')})"
