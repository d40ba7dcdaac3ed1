"""TensorRT engine build records and the check that an engine fits this machine.

A serialized engine runs only on the GPU model and TensorRT version it was built with, so each
engine carries a record (docs/architecture.md, "Bundle") and the runtime refuses a mismatch with
the command that rebuilds it. Dependency-free (stdlib only; cuda-python used if present) so the
torch-free runtime imports it without TensorRT.
"""

from __future__ import annotations

import shutil
import subprocess

REBUILD_FALLBACK = "mnm export CHECKPOINT_OR_RUN --out BUNDLE --trt"


def engine_compatibility(record: dict, machine: dict) -> tuple[bool, str]:
    """Whether an engine built as ``record`` runs on ``machine``; the reason says how to rebuild.

    ``machine`` holds ``tensorrt_version``, ``gpu_name`` and ``compute_capability`` (see
    :func:`machine_info`). The TensorRT major.minor, the compute capability and the GPU model
    must all match.
    """
    built_trt, here_trt = record.get("tensorrt_version"), machine.get("tensorrt_version")
    mismatches = []
    if here_trt is None:
        mismatches.append(f"TensorRT {built_trt}, and TensorRT is not installed here")
    elif _major_minor(built_trt) != _major_minor(here_trt):
        mismatches.append(f"TensorRT {built_trt}, this machine has {here_trt}")
    if str(record.get("compute_capability")) != str(machine.get("compute_capability")):
        mismatches.append(
            f"compute capability {record.get('compute_capability')}, this GPU has {machine.get('compute_capability')}"
        )
    if _norm(record.get("gpu_name")) != _norm(machine.get("gpu_name")):
        mismatches.append(f"GPU {record.get('gpu_name')}, this machine has {machine.get('gpu_name')}")
    engine = f"{record.get('graph', 'engine')}.{record.get('precision', '?')}"
    if not mismatches:
        return True, f"{engine}: built with TensorRT {built_trt} on {record.get('gpu_name')}, matches this machine"
    rebuild = record.get("rebuild") or REBUILD_FALLBACK
    return False, (
        f"{engine} was built for {'; '.join(mismatches)}; engines do not carry across GPU models or "
        f"TensorRT versions, rebuild them on this machine: {rebuild}"
    )


def machine_info(tensorrt_version: str | None, device: int = 0) -> dict | None:
    """The ``machine`` dict for :func:`engine_compatibility`, or None when no CUDA GPU is visible."""
    gpu = local_gpu(device)
    return None if gpu is None else {"tensorrt_version": tensorrt_version, **gpu}


def local_gpu(device: int = 0) -> dict | None:
    """``{"gpu_name", "compute_capability"}`` of a CUDA device, or None if there is none.

    cuda-python first (it honours CUDA_VISIBLE_DEVICES like TensorRT does), nvidia-smi otherwise.
    """
    return _from_cuda_python(device) or _from_nvidia_smi(device)


def _from_cuda_python(device: int) -> dict | None:
    try:
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart
        err, prop = cudart.cudaGetDeviceProperties(device)
    except Exception:  # not installed, no driver, no such device
        return None
    if int(err) != 0:
        return None
    name = prop.name.decode(errors="replace") if isinstance(prop.name, bytes) else str(prop.name)
    return {"gpu_name": name.rstrip("\x00").strip(), "compute_capability": f"{prop.major}.{prop.minor}"}


def _from_nvidia_smi(device: int) -> dict | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, f"--id={device}", "--query-gpu=name,compute_cap", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    name, sep, capability = out.rpartition(",")
    if not sep:
        return None
    return {"gpu_name": name.strip(), "compute_capability": capability.strip()}


def _major_minor(version) -> tuple[str, ...]:
    return tuple(str(version).split(".")[:2])


def _norm(name) -> str:
    return " ".join(str(name).split()).lower()
