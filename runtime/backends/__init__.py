"""Backends that run the bundle's graphs, and the choice among them.

``create(bundle, "auto")`` tries, fastest first, native TensorRT (prebuilt engines that fit this
machine), onnxruntime's TensorRT execution provider, onnxruntime CUDA, onnxruntime CPU, and keeps
the first that starts. Starting means creating it for real (engines deserialised, GPU sessions
created and run once): a backend whose libraries are listed but do not load is passed over like
one that is not installed, and ``backend.skipped`` says why each faster one was. An explicit name
that cannot run here is an error (never a silent fallback to another backend). ``probe`` creates
each backend in turn and reports which start: ``mnm info --backends`` and ``mnm bench --backend all``.
"""

from __future__ import annotations

from dataclasses import dataclass

from mnm.errors import MnmError
from mnm.runtime.backends.base import Backend, BackendUnavailable
from mnm.runtime.bundle import Bundle

NAMES = ("ort-cpu", "ort-cuda", "ort-trt", "tensorrt")
AUTO_ORDER = ("tensorrt", "ort-trt", "ort-cuda", "ort-cpu")
TENSORRT_OPTIONS = ("precision", "device_id")


def check_name(name: str, also: tuple[str, ...] = ("auto",)) -> None:
    """Refuse, in one line, a backend name that is neither in ``NAMES`` nor in ``also`` (needs no bundle,
    so callers check before they open one)."""
    if name not in (*also, *NAMES):
        raise MnmError(f"unknown backend {name!r}; choose {', '.join((*also, *NAMES))}")


def start(bundle: Bundle, name: str, **options) -> Backend:
    """Backend ``name`` created for ``bundle``, or ``BackendUnavailable`` saying why it cannot run here."""
    check_name(name, also=())
    if name == "tensorrt":
        from mnm.runtime.backends.tensorrt import TensorRTBackend

        return TensorRTBackend(bundle, **{k: v for k, v in options.items() if k in TENSORRT_OPTIONS})
    from mnm.runtime.backends.ort import OrtBackend

    return OrtBackend(bundle, name, **options)  # auto: INT8 graphs on the CPU where they passed, else fp32


def create(bundle: Bundle, name: str = "auto", **options) -> Backend:
    """A ready backend for ``bundle``; ``options`` go to the backend (precision, threads, device_id,
    max_batch...)."""
    if name == "auto":
        skipped = []
        for candidate in AUTO_ORDER:
            try:
                backend = start(bundle, candidate, **options)
            except BackendUnavailable as exc:
                skipped.append(f"{candidate}: {exc}")
                continue
            backend.skipped = skipped
            return backend
        raise MnmError("no backend can run here: " + "; ".join(skipped))
    try:
        backend = start(bundle, name, **options)
    except BackendUnavailable as exc:
        raise MnmError(f"backend {name} cannot run here: {exc}") from None
    backend.skipped = []
    return backend


@dataclass(frozen=True)
class Probe:
    """Whether a backend started on this machine: its description, or why it did not."""

    name: str
    starts: bool
    detail: str


def probe(bundle: Bundle, names=AUTO_ORDER, **options) -> dict[str, Probe]:
    """Create (then close) each named backend for ``bundle``: which really start here, and why not."""
    found = {}
    for name in names:
        try:
            backend = start(bundle, name, **options)
        except BackendUnavailable as exc:
            found[name] = Probe(name, False, str(exc))
            continue
        found[name] = Probe(name, True, backend.description)
        backend.close()
    return found


__all__ = ["AUTO_ORDER", "NAMES", "Backend", "BackendUnavailable", "Probe", "check_name", "create", "probe", "start"]
