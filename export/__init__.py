"""Export: one ONNX graph per network, parity against PyTorch, FP16 graphs, TensorRT engines, and the
bundle manifest (docs/bundle.md).

Importing this package is cheap and torch-free (``mnm export --help`` and option checks run without
torch); the torch-based API below loads on first use.
"""

from __future__ import annotations

_LAZY = {
    "export_bundle": "mnm.export.bundle",
    "export_checkpoint": "mnm.export.bundle",
    "export_random": "mnm.export.bundle",
    "random_init_modules": "mnm.export.bundle",
    "ExportModules": "mnm.export.specs",
    "GRAPHS": "mnm.export.specs",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mnm.export' has no attribute {name!r}")
