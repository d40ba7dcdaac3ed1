"""What onnxruntime's CUDA and TensorRT execution providers need before a session starts.

- CUDA and cuDNN: onnxruntime-gpu 1.21 and newer has ``onnxruntime.preload_dlls()``, which loads
  them from the nvidia-* wheels that ``onnxruntime-gpu[cuda,cudnn]`` installs (then from the
  default search path). It is called once, its printed complaints kept for the skip reason.
- TensorRT from pip keeps libnvinfer in ``tensorrt_libs/``, outside every search path; ``import
  tensorrt`` loads them (its ``tensorrt_libs`` package opens each library of its folder), after
  which the TensorRT provider finds them. The provider links one TensorRT major
  (``libnvinfer.so.N`` in ``libonnxruntime_providers_tensorrt.so``): another installed major is
  refused with the pin that fits.
- fp32 means fp32: the CUDA provider's ``use_tf32`` is on by default and is turned off for fp32
  graphs, as the native TensorRT engines and the PyTorch baselines do.
- The TensorRT provider gets one explicit optimisation profile, batch 1..max_batch tuned for
  max_batch (``trt_profile_min/opt/max_shapes``), so no batch size triggers an engine rebuild; its
  engine and timing caches live in a folder keyed by what invalidates them: onnxruntime and
  TensorRT versions, compute capability, precision and the profile.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import threading
from pathlib import Path

from mnm.runtime.backends.base import BackendUnavailable, first_line
from mnm.runtime.bundle import Bundle, GraphEntry

_preload = {"done": False, "notes": ""}
_preload_lock = threading.Lock()


def preload_cuda_libraries() -> str:
    """Run ``onnxruntime.preload_dlls()`` once (where it exists); returns which libraries it could
    not load. Also quiets onnxruntime's own warning about a provider that fails to start: the
    backend reports that itself, with this note, as the reason it is skipped."""
    import onnxruntime as ort

    with _preload_lock:
        if not _preload["done"]:
            ort.set_default_logger_severity(4)  # fatal only: failures reach the user as skip reasons
            if hasattr(ort, "preload_dlls"):
                printed = io.StringIO()
                with contextlib.redirect_stdout(printed):  # it prints its failures; keep stdout clean
                    try:
                        ort.preload_dlls()
                    except Exception as exc:
                        print(f"preload_dlls failed: {first_line(exc)}")
                _preload["notes"] = _missing_libraries(printed.getvalue())
        _preload["done"] = True
        return _preload["notes"]


def _missing_libraries(printed: str) -> str:
    """``Failed to load libcudnn.so.9: ...`` lines → "missing libcudnn.so.9, ..."; anything else as is."""
    names = re.findall(r"Failed to load (\S+?):", printed)
    if names:
        return "missing " + ", ".join(dict.fromkeys(names))
    return " ".join(printed.split())


def import_tensorrt(capi: Path | None = None) -> str | None:
    """Import the tensorrt wheel (loading its libraries) if installed; its version, else None.

    Refuses, as ``BackendUnavailable``, a TensorRT major that the TensorRT provider of the installed
    onnxruntime (its ``capi`` folder) was not built for."""
    try:
        import tensorrt
    except ImportError:
        return None
    except Exception as exc:
        raise BackendUnavailable(f"the tensorrt package is installed but does not load ({first_line(exc)})") from None
    linked = linked_tensorrt_major(capi)
    installed = str(tensorrt.__version__)
    if linked is not None and installed.split(".")[0] != str(linked):
        cuda = _cuda_suffix()
        raise BackendUnavailable(
            f"onnxruntime's TensorRT provider is built for TensorRT {linked} (libnvinfer.so.{linked}) but "
            f"tensorrt {installed} is installed; pip install 'tensorrt-{cuda}>={linked},<{linked + 1}'"
        )
    return installed


def linked_tensorrt_major(capi: Path | None = None) -> int | None:
    """The TensorRT major the installed onnxruntime's TensorRT provider library was linked against."""
    if capi is None:
        import onnxruntime

        capi = Path(onnxruntime.__file__).parent / "capi"
    for lib in sorted(capi.glob("*onnxruntime_providers_tensorrt*")):
        match = re.search(rb"libnvinfer\.so\.(\d+)", lib.read_bytes())
        if match:
            return int(match.group(1))
    return None


def onnxruntime_cuda_version() -> str | None:
    """The CUDA version this onnxruntime build targets (onnxruntime-gpu records it), else None."""
    try:
        from onnxruntime.capi import build_and_package_info as info
    except ImportError:
        return None
    return getattr(info, "cuda_version", None) or None


def _cuda_suffix() -> str:
    version = onnxruntime_cuda_version() or "12"
    return f"cu{version.split('.')[0]}"


def cuda_options(device_id: int, precision: str) -> dict:
    """CUDA provider options: the device, exhaustive convolution search, TF32 off for fp32."""
    return {
        "device_id": str(device_id),
        "cudnn_conv_algo_search": "EXHAUSTIVE",
        "use_tf32": "0" if precision == "fp32" else "1",
    }


def tensorrt_options(graph: GraphEntry, device_id: int, precision: str, max_batch: int, cache_dir: Path) -> dict:
    """TensorRT provider options: fp16 for fp16 graphs, the explicit profile, both caches."""
    low, opt, high = profile_shapes(graph, max_batch)
    return {
        "device_id": str(device_id),
        "trt_fp16_enable": "1" if precision == "fp16" else "0",
        "trt_engine_cache_enable": "1",
        "trt_engine_cache_path": str(cache_dir),
        "trt_timing_cache_enable": "1",
        "trt_timing_cache_path": str(cache_dir),
        "trt_profile_min_shapes": low,
        "trt_profile_opt_shapes": opt,
        "trt_profile_max_shapes": high,
    }


def profile_shapes(graph: GraphEntry, max_batch: int) -> tuple[str, str, str]:
    """``input:1x3x64x64,...`` strings for batch 1, max_batch (opt) and max_batch (max)."""

    def shapes(batch: int) -> str:
        return ",".join(
            f"{t.name}:" + "x".join(str(batch if d == "batch" else d) for d in t.shape) for t in graph.inputs
        )

    return shapes(1), shapes(max_batch), shapes(max_batch)


def tensorrt_cache_dir(bundle: Bundle, precision: str, max_batch: int, device_id: int,
                       base: Path | None = None) -> Path:
    """``<cache>/mnm/ort-trt/<bundle>/ort<v>-trt<v>-sm<cc>/<precision>-b<max_batch>``."""
    import onnxruntime as ort

    from mnm.runtime.engine_record import local_gpu

    if base is None:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mnm" / "ort-trt"
    digest = "".join(sorted(g.sha256[:8] for g in bundle.graphs.values()))[:32]
    try:
        import tensorrt

        trt_version = str(tensorrt.__version__)
    except Exception:
        trt_version = f"{linked_tensorrt_major() or 'unknown'}.x"
    gpu = local_gpu(device_id)
    capability = gpu["compute_capability"].replace(".", "") if gpu else "unknown"
    return base / digest / f"ort{ort.__version__}-trt{trt_version}-sm{capability}" / f"{precision}-b{max_batch}"
