"""The bundle manifest (docs/bundle.md, "`manifest.json`"): what each file is, its digest, its tensors,
and how it was made and checked.

Only the writer lives here; the torch-free reader is ``mnm.runtime``'s Bundle.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx

from mnm.atomic import write_text
from mnm.config import ModelConfig
from mnm.provenance import file_digest, utc_now

FORMAT = "mnm-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
NORMALIZATION = {
    "range": [-1, 1],
    "layout": "NCHW",
    "color": "RGB",
    "crop": "object box: square of 1.5*max(w,h) clipped; no box: largest centred square",
}
_DTYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16"}


def tensor_records(values) -> list[dict]:
    """Name, shape (the symbolic axis by name) and dtype of graph inputs or outputs."""
    records = []
    for value in values:
        tensor = value.type.tensor_type
        shape = [d.dim_param if d.dim_param else d.dim_value for d in tensor.shape.dim]
        dtype = _DTYPES.get(tensor.elem_type, onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name)
        records.append({"name": value.name, "shape": shape, "dtype": dtype})
    return records


def graph_entry(
    bundle: Path, path: Path, model: onnx.ModelProto, precision: str, params: int, macs: int, parity: dict
) -> dict:
    """The manifest record of one graph file inside ``bundle``."""
    sha256, size = file_digest(path)
    return {
        "file": path.relative_to(bundle).as_posix(),
        "sha256": sha256,
        "bytes": size,
        "precision": precision,
        "inputs": tensor_records(model.graph.input),
        "outputs": tensor_records(model.graph.output),
        "params": params,
        "macs_per_image": macs,
        "parity": parity,
    }


def new_manifest(cfg: ModelConfig, modes: list[str], opset: int, exporter: dict, source: dict) -> dict:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": utc_now(),
        "config": cfg.to_dict(),
        "modes": modes,
        "normalization": NORMALIZATION,
        "opset": opset,
        "exporter": exporter,
        "source": source,
        "graphs": {},
        "graphs_fp16": {},
        "graphs_int8": {},
        "engines": {},
    }


def write_manifest(bundle: Path, manifest: dict) -> None:
    write_text(bundle / MANIFEST, json.dumps(manifest, indent=2, allow_nan=False) + "\n")
