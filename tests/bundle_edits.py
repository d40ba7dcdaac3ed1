"""Editing an exported bundle in tests: its manifest, and stand-in engines listed as the exporter lists them."""

from __future__ import annotations

import json
from pathlib import Path

from mnm.provenance import sha256_file


def edit_manifest(bundle: Path, change) -> None:
    """Apply ``change(manifest_dict)`` to the bundle's manifest.json in place."""
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest, indent=1))


def add_engine(bundle: Path, graph: str, machine: dict, precision: str = "fp32", **record) -> None:
    """A stand-in engine file (not a real engine) built on ``machine`` (tensorrt_version, gpu_name,
    compute_capability), with its build record, registered in the manifest; ``record`` overrides fields."""
    folder = bundle / "engines"
    folder.mkdir(exist_ok=True)
    engine = folder / f"{graph}.{precision}.engine"
    engine.write_bytes(f"stand-in engine for {graph} built on {machine['gpu_name']}".encode())
    manifest = json.loads((bundle / "manifest.json").read_text())
    full = {"graph": graph, "precision": precision, **machine, "source_sha256": manifest["graphs"][graph]["sha256"],
            "rebuild": f"mnm export --preset tiny --random-init --out {bundle} --trt", **record}
    (folder / f"{graph}.{precision}.json").write_text(json.dumps(full))
    entry = {"file": f"engines/{graph}.{precision}.engine", "record": f"engines/{graph}.{precision}.json",
             "sha256": sha256_file(engine)}
    edit_manifest(bundle, lambda m: m["engines"].update({f"{graph}.{precision}": entry}))
