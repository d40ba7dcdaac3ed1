"""The metrics by name, and the one way to run them: load the run, evaluate, write JSON.

Metric modules import torch, scikit-learn and scipy; the registry names them as strings and
imports one only when it runs, so listing metrics (and ``mnm --help``) stays light. Each module
provides ``check(**options)`` (fails fast on bad options, before a model is loaded),
``evaluate(model, **options) -> dict`` and ``summary(result) -> str``.
"""

from __future__ import annotations

import importlib
import json
import platform
from importlib import metadata
from pathlib import Path

from mnm.atomic import write_text
from mnm.errors import MnmError
from mnm.provenance import utc_now

METRICS = {
    "clustering": "mnm.training.metrics.clustering",
    "disentangle": "mnm.training.metrics.disentangle",
    "fid": "mnm.training.metrics.fid",
}
LIBRARIES = ("mnm", "torch", "numpy", "scipy", "scikit-learn", "safetensors", "opencv-python-headless", "pillow")


def get(name: str):
    """The module of metric ``name``."""
    if name not in METRICS:
        raise MnmError(f"unknown metric {name!r}; choose one of {', '.join(METRICS)}")
    return importlib.import_module(METRICS[name])


def versions() -> dict[str, str]:
    """Installed versions of the libraries every number depends on, and Python's."""
    out = {"python": platform.python_version()}
    for lib in LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "not installed"
    return out


def default_output(checkpoint: Path, name: str, step) -> Path:
    """``<run>/eval/<metric>-<step>.json`` for a checkpoint inside a run, else beside the checkpoint."""
    checkpoint = Path(checkpoint)
    base = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    return base / "eval" / f"{name}-{int(step or 0):08d}.json"


def run_metric(name: str, run: str | Path, output: str | Path | None = None, device: str = "auto",
               precision: str | None = None, **options) -> tuple[dict, Path]:
    """Evaluate metric ``name`` on a run or checkpoint folder; write the result JSON atomically.

    The JSON holds the metric's numbers and protocol plus what they depend on: the checkpoint,
    step, model config, options, device and library versions.
    """
    from mnm.training.metrics.inputs import BundleModel, is_bundle, load_model

    module = get(name)
    module.check(**options)
    if is_bundle(run) and not getattr(module, "BUNDLES", False):
        raise MnmError(f"{run}: {name} needs the trained networks (a run or checkpoint folder), not a bundle")
    model = load_model(run, device, precision)
    result = module.evaluate(model, **options)
    record = {
        "metric": name,
        "created": utc_now(),
        "run": str(run),
        "checkpoint": model.meta["path"],
        "step": model.meta.get("step"),
        "stage": model.meta.get("stage"),
        "config": model.cfg.to_dict(),
        "device": str(model.device),
        "options": options,
        "versions": versions(),
        **result,
    }
    if output is not None:
        path = Path(output)
    elif isinstance(model, BundleModel):
        bundle = Path(run)
        path = bundle.parent / "eval" / f"{name}-{bundle.name}-{model.precision}.json"
    else:
        path = default_output(Path(model.meta["path"]), name, record["step"])
    try:
        write_text(path, json.dumps(record, indent=2) + "\n")
    except OSError as exc:
        raise MnmError(f"{path}: cannot write the result ({exc.strerror or exc})") from None
    return record, path


def summary(name: str, record: dict) -> str:
    return get(name).summary(record)
