"""Pixels, codes and strings across the C boundary: mnm.h's structs (cffi cdata) to numpy and back.

Inputs are copied out of the caller's memory during the call (the caller lends them for the call
only) after their geometry is checked against the sizes the caller declared, so a wrong size or
stride is an ``MNM_ERR_ARGUMENT``, not a read past the buffer. Outputs go into the caller's buffer
when it gives one, else into ``malloc``'d memory that ``mnm_image_free`` releases.
"""

from __future__ import annotations

import os

import numpy as np

from mnm.imaging import DEFAULT_MAX_PIXELS


class BadArgument(Exception):
    """An argument the C caller got wrong (``MNM_ERR_ARGUMENT``)."""


class Boundary:
    """Conversions bound to the library's ``ffi`` and ``lib`` (the cffi embedding module)."""

    def __init__(self, ffi, lib):
        self.ffi, self.lib = ffi, lib

    def require(self, pointer, what: str) -> None:
        if pointer == self.ffi.NULL:
            raise BadArgument(f"{what} is NULL")

    def text(self, pointer, what: str) -> str:
        """A NUL-terminated string (UTF-8; file names as the OS gives them)."""
        self.require(pointer, what)
        return os.fsdecode(self.ffi.string(pointer))

    # ------------------------------------------------------------------ images

    def image(self, image, what: str) -> np.ndarray:
        """A copy of the caller's image as H x W x 3 uint8."""
        self.require(image, what)
        self.require(image.data, f"{what}: data")
        needed = _geometry(image.width, image.height, image.stride, image.size, what)
        view = np.frombuffer(self.ffi.buffer(image.data, needed), np.uint8)
        return np.lib.stride_tricks.as_strided(view, (image.height, image.width, 3), (image.stride, 3, 1)).copy()

    def check_output(self, out, width: int, height: int, what: str) -> None:
        """Refuse, before any work, a caller-provided output that cannot take a ``width`` x ``height`` result."""
        self.require(out, what)
        if out.data == self.ffi.NULL:
            return
        if (out.width, out.height) != (width, height):
            raise BadArgument(
                f"{what}: the result is {width}x{height} but the buffer is {out.width}x{out.height} "
                "(leave data NULL to have the library allocate it)"
            )
        _geometry(out.width, out.height, out.stride, out.size, what)

    def put_images(self, outs: list, arrays: list[np.ndarray], names: list[str]) -> None:
        """Each H x W x 3 array into its output; on failure nothing this call allocated is kept."""
        allocated = []
        try:
            for out, array, name in zip(outs, arrays, names, strict=True):
                self.check_output(out, array.shape[1], array.shape[0], name)
                if out.data == self.ffi.NULL:
                    self._allocate(out, array.shape[1], array.shape[0])
                    allocated.append(out)
                rows = np.frombuffer(self.ffi.buffer(out.data, out.size), np.uint8)
                target = np.lib.stride_tricks.as_strided(rows, array.shape, (out.stride, 3, 1))
                target[...] = array
        except BaseException:
            for out in allocated:
                self.lib.mnm_image_free(out)
            raise

    def _allocate(self, out, width: int, height: int) -> None:
        size = 3 * width * height
        memory = self.lib.malloc(size)
        if memory == self.ffi.NULL:
            raise MemoryError(f"cannot allocate a {width}x{height} image ({size} bytes)")
        out.data, out.owned = self.ffi.cast("uint8_t *", memory), memory
        out.size, out.width, out.height, out.stride = size, width, height, 3 * width

    # ------------------------------------------------------------------ codes

    def floats(self, pointer, rows: int, cols: int, what: str) -> np.ndarray:
        """A copy of a caller's row-major ``rows`` x ``cols`` float32 array, all finite."""
        self.require(pointer, what)
        array = np.frombuffer(self.ffi.buffer(pointer, 4 * rows * cols), np.float32).reshape(rows, cols).copy()
        if not np.isfinite(array).all():
            raise BadArgument(f"{what}: contains NaN or infinity")
        return array

    def put_floats(self, pointer, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array, np.float32)
        self.ffi.memmove(pointer, array, array.nbytes)


def _geometry(width: int, height: int, stride: int, size: int, what: str) -> int:
    """Bytes an image of this geometry spans; refuses sizes that do not fit."""
    if width <= 0 or height <= 0:
        raise BadArgument(f"{what}: width and height must be positive, got {width}x{height}")
    if width * height > DEFAULT_MAX_PIXELS:
        raise BadArgument(f"{what}: {width}x{height} is over the limit of {DEFAULT_MAX_PIXELS:,} pixels")
    if stride < 3 * width:
        raise BadArgument(f"{what}: stride {stride} is less than 3 x width ({3 * width} bytes of RGB per row)")
    needed = stride * (height - 1) + 3 * width
    if size < needed:
        raise BadArgument(
            f"{what}: buffer size {size} is too small for {width}x{height} RGB with stride {stride} ({needed} bytes)"
        )
    return needed
