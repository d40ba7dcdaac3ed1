"""The few CUDA runtime calls the TensorRT backend makes, through cuda-python.

cuda-python returns ``(error, *values)`` from every call; :func:`check` turns an error into one
line. The current device is a property of the calling host thread (CUDA runtime API,
``cudaSetDevice``: "Sets device as the current device for the calling host thread"), so every
thread that allocates, copies or launches must select the device first: :func:`use_device`.
"""

from __future__ import annotations

from mnm.errors import MnmError
from mnm.runtime.backends.base import BackendUnavailable


def import_cudart():
    """``cuda.bindings.runtime`` (cuda-python 12.6 and newer) or ``cuda.cudart`` (older)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            raise BackendUnavailable(
                "cuda-python is not installed (pip install 'mnm[trt-cu12]' or 'mnm[trt-cu13]', docs/gpu.md)"
            ) from None
    return cudart


def check(cudart, result):
    """Raise ``MnmError`` on a CUDA error; return the call's value(s)."""
    err, *values = result
    if int(err) != 0:
        _, text = cudart.cudaGetErrorString(err)
        text = text.decode() if isinstance(text, bytes) else str(text)
        raise MnmError(f"CUDA error {int(err)}: {text}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def use_device(cudart, device_id: int) -> None:
    """Make ``device_id`` current on the calling thread (cheap; call it before any CUDA work)."""
    check(cudart, cudart.cudaSetDevice(device_id))


def native_handle(obj) -> int:
    """The address inside a cuda-python object (a stream) as an int.

    ``int(obj)`` is deprecated in cuda-bindings in favour of
    ``cuda.bindings.utils.get_cuda_native_handle``; older releases have only ``int``.
    """
    try:
        from cuda.bindings.utils import get_cuda_native_handle
    except ImportError:
        return int(obj)
    try:
        return int(get_cuda_native_handle(obj))
    except TypeError:  # a type this release has no getter for
        return int(obj)
