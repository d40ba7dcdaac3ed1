"""Stand-ins for the tensorrt and cuda-python modules, which cannot run on a machine without a GPU:
just enough of their documented API (``cudaGetDeviceProperties``, ``cudaSetDevice``,
``trt.Runtime``, ``deserialize_cuda_engine``) for the TensorRT backend to reach each failure that
must become "unavailable, because ..." at creation. ``fail`` picks the one that happens."""

from __future__ import annotations

import sys
import types

VERSION = "10.13.3.9"
GPU = {"tensorrt_version": VERSION, "gpu_name": "NVIDIA Stand-in GPU", "compute_capability": "9.0"}
NO_DEVICE = 100  # cudaErrorNoDevice


def install(monkeypatch, fail: str) -> None:
    """Put the stand-ins in ``sys.modules`` for one test; ``fail`` in set_device, runtime, deserialize."""
    cudart = types.ModuleType("cuda.bindings.runtime")
    properties = types.SimpleNamespace(name=GPU["gpu_name"].encode(), major=9, minor=0)
    cudart.cudaGetDeviceProperties = lambda device: (0, properties)
    cudart.cudaSetDevice = lambda device: (NO_DEVICE if fail == "set_device" else 0,)
    cudart.cudaGetErrorString = lambda err: (0, b"no CUDA-capable device is detected")

    trt = types.ModuleType("tensorrt")
    trt.__version__ = VERSION

    class Logger:
        WARNING = 2

        def __init__(self, level):
            self.level = level

    class Runtime:
        def __init__(self, logger):
            if fail == "runtime":  # what the bindings raise when TensorRT gets no CUDA context
                raise TypeError("pybind11::init(): factory function returned nullptr")

        def deserialize_cuda_engine(self, data: bytes):
            return None  # the documented failure value

    trt.Logger, trt.Runtime = Logger, Runtime
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = cudart
    cuda = types.ModuleType("cuda")
    cuda.bindings = bindings
    for name, module in (("tensorrt", trt), ("cuda", cuda), ("cuda.bindings", bindings),
                         ("cuda.bindings.runtime", cudart), ("cuda.bindings.utils", None)):
        monkeypatch.setitem(sys.modules, name, module)
