"""TensorRT engine build records and the check that an engine fits this machine.

A serialized engine runs only on the GPU model it was built on and, unless it was built
version-compatible, only with the exact TensorRT version that built it (TensorRT's "Version
Compatibility" page: "By default, TensorRT engines are compatible only with the version of TensorRT
used to build them"). So each engine carries a record (docs/bundle.md, "Engine build records") and
the runtime refuses a mismatch with the command that rebuilds it. It lives in the runtime, which
checks the records; the exporter (``mnm.export.tensorrt_build``) takes the GPU it records from
:func:`local_gpu`. Dependency-free
(stdlib only; cuda-python used if present) so the torch-free runtime imports it without TensorRT.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

REBUILD_FALLBACK = "mnm export CHECKPOINT_OR_RUN --out BUNDLE --trt"


def engine_compatibility(record: dict, machine: dict) -> tuple[bool, str]:
    """Whether an engine built as ``record`` runs on ``machine``; the reason says how to rebuild.

    ``machine`` holds ``tensorrt_version``, ``gpu_name`` and ``compute_capability`` (see
    :func:`machine_info`). The compute capability and the GPU model must match, and the TensorRT
    version must be the very one that built the engine; a record with ``version_compatible`` (built
    with ``BuilderFlag.VERSION_COMPATIBLE``) also runs on a later release of the same major.
    """
    built_trt, here_trt = record.get("tensorrt_version"), machine.get("tensorrt_version")
    mismatches = []
    if here_trt is None:
        mismatches.append(f"TensorRT {built_trt}, and TensorRT is not installed here")
    elif not tensorrt_reads(built_trt, here_trt, bool(record.get("version_compatible"))):
        major = version_tuple(built_trt)[:1] or ("?",)
        rule = f"it or a later {major[0]}.x" if record.get("version_compatible") else "that exact version"
        mismatches.append(f"TensorRT {built_trt} (it needs {rule}), this machine has {here_trt}")
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


def tensorrt_reads(built: str | None, here: str, version_compatible: bool = False) -> bool:
    """Whether TensorRT ``here`` deserialises an engine that TensorRT ``built`` made."""
    built_v, here_v = version_tuple(built), version_tuple(here)
    if not built_v or not here_v:
        return False
    if version_compatible:
        return built_v[0] == here_v[0] and here_v >= built_v
    width = max(len(built_v), len(here_v))
    return built_v + (0,) * (width - len(built_v)) == here_v + (0,) * (width - len(here_v))


def version_tuple(version) -> tuple[int, ...]:
    """``"10.14.1.48.post1"`` → (10, 14, 1, 48): the leading numeric parts (a wheel's post-release
    suffix is packaging, not a different TensorRT)."""
    parts = []
    for part in str(version or "").split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


def machine_info(tensorrt_version: str | None, device: int = 0) -> dict | None:
    """The ``machine`` dict for :func:`engine_compatibility`, or None when no CUDA GPU is visible."""
    gpu = local_gpu(device)
    return None if gpu is None else {"tensorrt_version": tensorrt_version, **gpu}


def local_gpu(device: int = 0) -> dict | None:
    """``{"gpu_name", "compute_capability"}`` of CUDA device ``device``, or None if there is none.

    cuda-python first (it numbers devices as CUDA and TensorRT do), nvidia-smi otherwise, mapped
    through CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER (:func:`pick_smi_row`).
    """
    return _from_cuda_python(device) or _from_nvidia_smi(device)


def pick_smi_row(rows: list[dict], device: int, env=os.environ) -> dict | None:
    """Which of nvidia-smi's GPUs (``rows``: index, uuid, name, compute_capability, in nvidia-smi's
    PCI bus order) is CUDA device ``device``.

    CUDA numbers the GPUs listed in CUDA_VISIBLE_DEVICES (indices or UUIDs), fastest first unless
    CUDA_DEVICE_ORDER=PCI_BUS_ID; nvidia-smi ignores both. Where the order cannot be told (several
    different GPUs, default order) None is returned rather than a wrong GPU; identical GPUs are
    interchangeable for an engine record.
    """
    visible = env.get("CUDA_VISIBLE_DEVICES")
    position = device
    if visible is not None:
        entries = [e.strip() for e in visible.split(",") if e.strip()]
        if device >= len(entries):
            return None
        entry = entries[device]
        if not entry.isdigit():  # a UUID (GPU-...) names one GPU in any order
            return next((r for r in rows if r["uuid"].startswith(entry)), None)
        position = int(entry)
    if env.get("CUDA_DEVICE_ORDER") == "PCI_BUS_ID":
        return next((r for r in rows if int(r["index"]) == position), None)
    kinds = {(r["name"], r["compute_capability"]) for r in rows}
    return rows[0] if len(kinds) == 1 and position < len(rows) else None


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
            [exe, "--query-gpu=index,uuid,name,compute_cap", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    rows = []
    for line in out.strip().splitlines():
        match = re.fullmatch(r"\s*(\d+),\s*([^,]+),\s*(.+),\s*([\d.]+)\s*", line)
        if match:
            index, uuid, name, capability = (g.strip() for g in match.groups())
            rows.append({"index": index, "uuid": uuid, "name": name, "compute_capability": capability})
    row = pick_smi_row(rows, device)
    return None if row is None else {"gpu_name": row["name"], "compute_capability": row["compute_capability"]}


def _norm(name) -> str:
    return " ".join(str(name).split()).lower()
