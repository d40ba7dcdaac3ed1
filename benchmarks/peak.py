"""The measured fp32 peak of this machine, and its details for benchmark reports.

The peak is what one large fp32 matrix product achieves here, measured two ways: numpy (its BLAS)
and onnxruntime's MatMul (the kernels the runtime uses). Both are reported and the higher is the
peak that graph timings are compared against (the roofline), since either library proves the
machine can reach it. ``python benchmarks/peak.py`` prints both as JSON.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from mnm.runtime import machine
from mnm.runtime.bench import measure, summarize

PEAK_SIZE = 2048  # 2048³ MACs = 17.2 GFLOP per product: long enough to hide call overheads


def details() -> dict:
    """``mnm.runtime.machine.details`` plus the training-side libraries and numpy's BLAS."""
    info = machine.details(extra_libraries=("torch", "onnx", "onnxscript"))
    info["numpy_blas"] = _numpy_blas()
    return info


def numpy_product(size: int = PEAK_SIZE):
    """A callable computing ``a @ b`` for two size×size fp32 matrices with numpy (its BLAS)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    out = np.empty((size, size), np.float32)
    return lambda: np.matmul(a, b, out=out)


def ort_product(size: int = PEAK_SIZE, threads: int | None = None):
    """A callable running an onnxruntime MatMul of two size×size fp32 inputs with the runtime's
    session options (the kernels and threads the graphs get)."""
    rng = np.random.default_rng(0)
    feeds = {n: rng.standard_normal((size, size), dtype=np.float32) for n in ("a", "b")}
    return _ort_matmul("MatMul", feeds, "float32", threads)


def ort_int8_product(size: int = PEAK_SIZE, threads: int | None = None):
    """A callable running an onnxruntime MatMulInteger (uint8 × int8 → int32, the kernels of the INT8
    graphs' convolutions) of two size×size inputs with the runtime's session options."""
    rng = np.random.default_rng(0)
    feeds = {"a": rng.integers(0, 256, (size, size), dtype=np.uint8),
             "b": rng.integers(-128, 128, (size, size), dtype=np.int8)}
    return _ort_matmul("MatMulInteger", feeds, "int32", threads)


def _ort_matmul(op: str, feeds: dict[str, np.ndarray], out_dtype: str, threads: int | None):
    """A one-node graph ``y = op(a, b)`` in an onnxruntime session; returns a callable running it."""
    import onnx
    import onnxruntime as ort
    from onnx import helper

    from mnm.runtime.backends.ort import session_options

    def value(name: str, dtype, shape) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), list(shape))

    shape = (feeds["a"].shape[0], feeds["b"].shape[1])
    graph = helper.make_graph([helper.make_node(op, ["a", "b"], ["y"])], "peak",
                              [value(n, a.dtype, a.shape) for n, a in feeds.items()], [value("y", out_dtype, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = min(model.ir_version, 10)
    onnx.checker.check_model(model)
    sess = ort.InferenceSession(
        model.SerializeToString(), sess_options=session_options(threads), providers=["CPUExecutionProvider"]
    )
    return lambda: sess.run(None, feeds)


def measure_int8_peak(size: int = PEAK_SIZE, repeats: int = 10, warmup: int = 2, threads: int | None = None) -> dict:
    """Median GOP/s (2 ops per multiply-accumulate, as for fp32) of onnxruntime's uint8 × int8 product."""
    numbers = _gflops(measure(ort_int8_product(size, threads), repeats, warmup), size)
    return {"onnxruntime_int8": numbers, "peak_gflops": numbers["gflops"], "peak_from": "onnxruntime_int8",
            "size": size}


def cuda_product(size: int = 4 * PEAK_SIZE, device: str = "cuda"):
    """A callable computing a CUDA fp32 ``torch.matmul`` with TF32 off (true fp32, as the fp32
    graphs run), synchronised so that its time is the GPU's."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    gen = torch.Generator(device=device).manual_seed(0)
    a, b = (torch.randn(size, size, device=device, generator=gen) for _ in range(2))
    out = torch.empty(size, size, device=device)

    def product():
        torch.matmul(a, b, out=out)
        torch.cuda.synchronize(device)

    return product


def measure_peak(size: int = PEAK_SIZE, repeats: int = 10, warmup: int = 2, threads: int | None = None,
                 device: str = "cpu") -> dict:
    """Median GFLOP/s of each product (numpy and onnxruntime on a CPU; torch's on a CUDA device)
    and the peak: the highest of them."""
    if device == "cpu":
        products = {"numpy": numpy_product(size), "onnxruntime": ort_product(size, threads)}
    else:
        size = max(size, 4 * PEAK_SIZE)  # a GPU needs a larger product to reach its peak
        products = {"torch_cuda": cuda_product(size, device)}
    numbers = {name: _gflops(measure(fn, repeats, warmup), size) for name, fn in products.items()}
    best = max(numbers, key=lambda k: numbers[k]["gflops"])
    return {**numbers, "peak_gflops": numbers[best]["gflops"], "peak_from": best, "size": size}


def _gflops(times: list[float], size: int) -> dict:
    stats = summarize(times)
    gflops = 2 * size**3 / (stats["median_ms"] / 1e3) / 1e9
    return {"gflops": gflops, "median_ms": stats["median_ms"], "repeats": len(times)}


def _numpy_blas() -> str:
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except (TypeError, KeyError):
        return "unknown"


if __name__ == "__main__":
    json.dump({"machine": details(), "peak": measure_peak()}, sys.stdout, indent=2)
    print()
