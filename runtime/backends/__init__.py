"""Backends that run the bundle's graphs, and the choice among them.

``create(bundle, "auto")`` tries, fastest first, native TensorRT (prebuilt engines that fit this
machine), onnxruntime's TensorRT execution provider, onnxruntime CUDA, onnxruntime CPU, and keeps
the first that starts; ``backend.skipped`` says why the faster ones were passed over. An explicit
name that cannot run here is an error (never a silent fallback to another backend).
"""

from __future__ import annotations

from mnm.errors import MnmError
from mnm.runtime.backends.base import Backend, BackendUnavailable
from mnm.runtime.bundle import Bundle

NAMES = ("ort-cpu", "ort-cuda", "ort-trt", "tensorrt")
AUTO_ORDER = ("tensorrt", "ort-trt", "ort-cuda", "ort-cpu")


def _build(bundle: Bundle, name: str, options: dict) -> Backend:
    if name == "tensorrt":
        from mnm.runtime.backends.tensorrt import TensorRTBackend

        allowed = {k: v for k, v in options.items() if k in ("precision", "device_id")}
        return TensorRTBackend(bundle, **allowed)
    from mnm.runtime.backends.ort import OrtBackend

    return OrtBackend(bundle, name, **options)


def create(bundle: Bundle, name: str = "auto", **options) -> Backend:
    """A ready backend for ``bundle``; ``options`` go to the backend (precision, threads, device_id...)."""
    if name == "auto":
        skipped = []
        for candidate in AUTO_ORDER:
            try:
                backend = _build(bundle, candidate, dict(options))
            except BackendUnavailable as exc:
                skipped.append(f"{candidate}: {exc}")
                continue
            backend.skipped = skipped
            return backend
        raise MnmError("no backend can run here: " + "; ".join(skipped))
    if name not in NAMES:
        raise MnmError(f"unknown backend {name!r}; choose auto, {', '.join(NAMES)}")
    try:
        backend = _build(bundle, name, options)
    except BackendUnavailable as exc:
        raise MnmError(f"backend {name} cannot run here: {exc}") from None
    backend.skipped = []
    return backend


def available(bundle: Bundle | None = None) -> dict[str, str | None]:
    """Each backend → None if it should start here, else why not; cheap (nothing is loaded).

    Without a bundle, TensorRT is judged by its installation alone; with one, also by whether
    the bundle holds engines that fit this machine.
    """
    from mnm.runtime.backends import ort

    status: dict[str, str | None] = {}
    try:
        from mnm.runtime.backends import tensorrt

        machine = tensorrt.machine_info()
        if bundle is not None:
            tensorrt.choose_engines(bundle, machine)
        status["tensorrt"] = None
    except MnmError as exc:
        status["tensorrt"] = str(exc)
    for name in ("ort-trt", "ort-cuda", "ort-cpu"):
        status[name] = ort.unavailable_reason(name)
    return status


__all__ = ["AUTO_ORDER", "NAMES", "Backend", "BackendUnavailable", "available", "create"]
