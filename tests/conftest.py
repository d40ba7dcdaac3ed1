"""Suite-wide: tests marked ``gpu`` skip, with the reason, where what they need is absent.

``@pytest.mark.gpu`` needs a CUDA GPU; ``@pytest.mark.gpu("torch")`` a CUDA build of torch that sees
it, ``gpu("onnxruntime")`` onnxruntime-gpu's CUDA provider, ``gpu("tensorrt")`` the tensorrt and
cuda-python packages. ``benchmarks/gpu.sh`` runs exactly these tests (``pytest -m gpu``).
"""

from __future__ import annotations

import functools
import importlib.util

import pytest


@functools.cache
def gpu_missing(need: str = "cuda") -> str | None:
    """Why a ``gpu(need)`` test cannot run here, or None."""
    from mnm.runtime import machine

    if not machine.gpus():
        return "no NVIDIA GPU (nvidia-smi lists none)"
    if need == "torch":
        import torch

        if not torch.cuda.is_available():
            return f"torch {torch.__version__} sees no CUDA GPU"
    if need == "onnxruntime":
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            return "onnxruntime has no CUDA provider (onnxruntime-gpu is not installed; docs/gpu.md)"
    if need == "tensorrt":
        for module in ("tensorrt", "cuda"):
            if importlib.util.find_spec(module) is None:
                return f"the {module} package is not installed (pip install 'mnm[trt-cu12]' or 'mnm[trt-cu13]')"
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        marker = item.get_closest_marker("gpu")
        if marker is None:
            continue
        for need in marker.args or ("cuda",):
            reason = gpu_missing(need)
            if reason:
                item.add_marker(pytest.mark.skip(reason=f"gpu test: {reason}"))
                break
