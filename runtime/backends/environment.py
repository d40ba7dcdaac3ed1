"""What this installation holds for the GPU backends, and which CUDA the machine's driver takes.

The pieces ``mnm info --backends`` shows beside the backends it created: the onnxruntime
package(s) (``onnxruntime`` and ``onnxruntime-gpu`` install the same module and break each other),
the providers onnxruntime lists (listed is not started), TensorRT and cuda-python, and the GPUs
with their driver. The driver decides the CUDA major a wheel may target: CUDA 13 needs driver
r580 or newer, the CUDA 12 wheels of TensorRT r535 (TensorRT's installation prerequisites); the
"CUDA Version" in ``nvidia-smi``'s header is the newest CUDA the driver supports, not an
installed toolkit.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from mnm.runtime import machine

PACKAGES = ("onnxruntime", "onnxruntime-gpu", "tensorrt", "tensorrt-cu12", "tensorrt-cu13", "cuda-python",
            "cuda-bindings")
EXTRA_FOR_CUDA = {13: "trt-cu13", 12: "trt-cu12"}


def cuda_major_for_driver(driver: str | None) -> int | None:
    """The newest CUDA major whose wheels run on NVIDIA driver ``driver`` (e.g. "580.65.06"), or None."""
    match = re.match(r"\s*(\d+)", driver or "")
    if not match:
        return None
    branch = int(match.group(1))
    return 13 if branch >= 580 else 12 if branch >= 535 else None


def driver_cuda_version() -> str | None:
    """The "CUDA Version" of ``nvidia-smi``'s header (the driver's newest CUDA), or None."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    try:
        out = subprocess.run([smi], capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"CUDA Version:\s*([\d.]+)", out)
    return match.group(1) if match else None


def installation() -> dict:
    """Packages, listed providers, GPUs, the driver's CUDA and what that means for the extras."""
    from mnm.runtime.backends.ort_gpu import linked_tensorrt_major, onnxruntime_cuda_version

    packages = machine.library_versions(PACKAGES)
    try:
        import onnxruntime as ort

        listed = list(ort.get_available_providers())
    except ImportError:
        listed = []
    gpus = machine.gpus()
    cuda_major = cuda_major_for_driver(gpus[0]["driver"]) if gpus else None
    problems = []
    if "onnxruntime" in packages and "onnxruntime-gpu" in packages:
        problems.append("both onnxruntime and onnxruntime-gpu are installed and overwrite each other's files: pip "
                        "uninstall -y onnxruntime onnxruntime-gpu, then install onnxruntime-gpu alone (docs/gpu.md)")
    ort_cuda = onnxruntime_cuda_version()
    if ort_cuda and cuda_major and int(ort_cuda.split(".")[0]) > cuda_major:
        problems.append(f"onnxruntime-gpu is built for CUDA {ort_cuda}, newer than this driver takes "
                        f"(CUDA {cuda_major}); install the CUDA {cuda_major} build (docs/gpu.md)")
    return {
        "packages": packages,
        "onnxruntime_cuda": ort_cuda,
        "onnxruntime_tensorrt_major": linked_tensorrt_major() if "TensorrtExecutionProvider" in listed else None,
        "providers_listed": listed,
        "gpus": gpus,
        "driver_cuda": driver_cuda_version() if gpus else None,
        "cuda_major": cuda_major,
        "extra": EXTRA_FOR_CUDA.get(cuda_major),
        "problems": problems,
    }
