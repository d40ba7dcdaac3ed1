"""Torch-free image loading and the one preprocessing shared by training and the runtime.

Photos arrive in every format and mode; this module turns each into H x W x 3 uint8 RGB, refuses
what it cannot read with one line naming the file, and maps images to the model's 3 x S x S
float32 input in [-1, 1]. numpy, Pillow and OpenCV only: the lean runtime imports it.

Decisions (also recorded in the bundle manifest's ``normalization``):
- transparency (LA, RGBA, palette or grey with a transparent colour) is composited over white,
  a neutral background for reference photos;
- 16-bit grey is scaled with rounding (v / 257); 32-bit integer grey is read as 16-bit data
  (values clipped to 0..65535); 16-bit RGB keeps Pillow's high byte;
- CMYK uses Pillow's conversion (Adobe-inverted JPEGs handled, R = (255 - C)(255 - K) / 255);
  embedded ICC profiles are not applied;
- only PNG, JPEG, WebP, BMP, GIF and TIFF are decoded (``open_image``), and a file named with one of
  their suffixes must be that format;
- EXIF orientation is applied; GIF, APNG and multi-page TIFF give their first frame;
- without a box, the reference is the largest centred square (``fit="crop"``, a plain resize would
  distort); ``fit="squash"`` resizes the whole image to S x S as the MixNMatch authors' evaluation
  does (PIL bilinear, like torchvision's ``Resize((S, S))``), to reproduce their inputs exactly.
"""

from __future__ import annotations

import io
import math
import os
import re
import struct
import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mnm.atomic import write_bytes
from mnm.errors import MnmError

DEFAULT_MAX_PIXELS = 100_000_000
"""Largest image (width x height) decoded by default: 100 megapixels, about 300 MB as RGB."""

BOX_TOLERANCE = 1.0
"""Pixels a box may reach past the image edge (annotation tools round outward; the crop is clipped)."""

DECODED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
"""The only Pillow plugins that ever read a user's file (the formats the docs list). ``Image.open`` is
always given this list, so no other plugin is reached: not EPS (Pillow hands PostScript to
Ghostscript), PSD, ICO, PDF..."""
FORMAT_OF_SUFFIX = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".gif": "GIF",
                    ".tif": "TIFF", ".tiff": "TIFF"}
"""A file named with one of these suffixes must be that format (a TIFF named .png is refused)."""
_SAME_FORMAT = {"MPO": "JPEG"}  # a phone's multi-picture JPEG is a JPEG

_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)
_GREY16_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa")
_SAVE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")
_LOSSY_QUALITY = 95
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")

FITS = ("crop", "squash")
"""How a reference without a box becomes square: the centred square, or the whole image resized."""

ImageSource = str | os.PathLike | np.ndarray


class ImageTooLarge(MnmError):
    """An image with more pixels than the decoding limit (a server answers it with 413, not 422)."""


def open_image(source: str | os.PathLike | io.BytesIO, name, filename: str | None = None) -> Image.Image:
    """``Image.open`` of ``DECODED_FORMATS`` only; when ``filename``'s suffix names one of them, the file
    must be that one (else ``MnmError``). Every decoder of user images opens them here: the CLI, the
    server, the C API and the data loaders. Pillow's own errors pass through to the caller."""
    image = Image.open(source, formats=DECODED_FORMATS)
    suffix = Path(filename).suffix.lower() if filename else ""
    claimed, actual = FORMAT_OF_SUFFIX.get(suffix), _SAME_FORMAT.get(image.format, image.format)
    if claimed is not None and actual != claimed:
        image.close()
        raise MnmError(f"{name}: the file is {actual}, but its name says {claimed} ({suffix}); rename it or "
                       f"convert it to {claimed}")
    return image


def load_image(source: ImageSource, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file (or validate an H x W x 3 uint8 array) as H x W x 3 uint8 RGB.

    The pixel count is checked from the header before anything is decoded, so a small file that
    would decode to gigabytes is refused at once.
    """
    if isinstance(source, np.ndarray):
        return _check_rgb(source, "image array")
    path = Path(source)
    if not path.exists():
        raise MnmError(f"{path}: image file not found")
    if path.is_dir():
        raise MnmError(f"{path}: is a folder, not an image file")
    try:  # read a byte rather than trust st_size: /proc and FUSE files report 0 and may be unreadable
        with open(path, "rb") as probe:
            empty = not probe.read(1)
    except PermissionError:
        raise MnmError(f"{path}: cannot read the file (permission denied)") from None
    except OSError as exc:
        raise MnmError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    if empty:
        raise MnmError(f"{path}: empty file (0 bytes), not an image")
    return _open_decoded(path, path, max_pixels, filename=path.name)


def decode_image_bytes(data: bytes, name: str, max_pixels: int = DEFAULT_MAX_PIXELS,
                       admit: Callable[[int, int], None] | None = None, filename: str | None = None) -> np.ndarray:
    """An image file's bytes (an upload) → H x W x 3 uint8 RGB, with every check of ``load_image``.

    ``name`` stands for the file in error messages (say, the form field and the uploaded file name).
    ``admit(width, height)``, when given, is called with the header's size before decoding and may
    refuse the image by raising (a server's budget of decoded pixels per request). ``filename``, the
    upload's own name, must agree with the format (``open_image``).
    """
    if not data:
        raise MnmError(f"{name}: empty file (0 bytes), not an image")
    return _open_decoded(io.BytesIO(data), name, max_pixels, admit, filename)


def _open_decoded(source: Path | io.BytesIO, name, max_pixels: int, admit=None, filename=None) -> np.ndarray:
    """Open ``source``, refuse it before decoding if it has more than ``max_pixels`` (or ``admit``
    refuses its size), decode to RGB."""
    try:
        with warnings.catch_warnings():
            # Our own limit below replaces Pillow's warning; its hard error is still caught.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = open_image(source, name, filename)
    except PermissionError:
        raise MnmError(f"{name}: cannot read the file (permission denied)") from None
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"{name}: image too large to decode: {exc} (limit {max_pixels:,} pixels)") from None
    except UnidentifiedImageError:
        raise MnmError(f"{name}: not a recognised image (PNG, JPEG, WebP, BMP, GIF or TIFF)") from None
    except OSError as exc:
        raise MnmError(f"{name}: cannot read the file ({exc})") from None
    except _DECODE_ERRORS as exc:  # a damaged header some plugin claims (e.g. a truncated PNG IHDR chunk)
        raise MnmError(f"{name}: corrupt or truncated image ({type(exc).__name__}: {exc})") from None
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise ImageTooLarge(
                f"{name}: image is {width}x{height} ({width * height:,} pixels), over the limit of "
                f"{max_pixels:,} pixels"
            )
        if admit is not None:
            admit(width, height)
        try:
            return _decode_rgb(image, name)
        except _DECODE_ERRORS as exc:
            raise MnmError(f"{name}: corrupt or truncated image ({type(exc).__name__}: {exc})") from None


def _decode_rgb(image: Image.Image, path) -> np.ndarray:
    image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode == "F":
        raise MnmError(f"{path}: 32-bit float pixels have no standard range; save the image as 8- or 16-bit")
    if mode in _GREY16_MODES:
        values = np.clip(np.asarray(image), 0, 65535).astype(np.uint32)
        grey = ((values * 255 + 32767) // 65535).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    if "transparency" in image.info and mode in ("P", "L", "RGB"):
        image = image.convert("RGBA")
    if image.mode in _ALPHA_MODES:
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image.convert("RGBA"))
    try:
        rgb = image.convert("RGB")
    except ValueError:
        raise MnmError(f"{path}: unsupported pixel mode {mode}") from None
    return _check_rgb(np.array(rgb), str(path))


def _check_rgb(array: np.ndarray, what: str) -> np.ndarray:
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8 or 0 in array.shape:
        raise MnmError(
            f"{what}: expected an H x W x 3 uint8 RGB image, got shape {array.shape} dtype {array.dtype}"
        )
    return np.ascontiguousarray(array)


def validate_box(box, width: int, height: int, source: str = "box") -> tuple[float, float, float, float]:
    """Check a pixel box ``(x, y, w, h)`` against a ``width`` x ``height`` image; return it as floats.

    ``source`` names where the box came from (a file and line) in the error message. Boxes of at
    most one pixel each way are refused as normalised 0-1 units, the common mistake.
    """
    try:
        x, y, w, h = (float(v) for v in box)
    except (TypeError, ValueError):
        raise MnmError(f"{source}: a box needs 4 numbers x y w h in pixels, got {box!r}") from None
    shown = f"({x:g}, {y:g}, {w:g}, {h:g})"
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise MnmError(f"{source}: box {shown} has a non-finite value")
    if w <= 0 or h <= 0:
        raise MnmError(f"{source}: box {shown} has zero or negative width or height (x y w h)")
    if x < 0 or y < 0:
        raise MnmError(f"{source}: box {shown} starts at a negative coordinate")
    if w <= 1 and h <= 1 and max(width, height) > 2:
        raise MnmError(
            f"{source}: box {shown} looks like normalised 0-1 units; boxes must be in pixels (x y w h)"
        )
    if x + w > width + BOX_TOLERANCE or y + h > height + BOX_TOLERANCE:
        raise MnmError(f"{source}: box {shown} extends outside the {width}x{height} image")
    return x, y, w, h


def object_crop_box(box, width: int, height: int, source: str = "box") -> tuple[int, int, int, int]:
    """The object crop ``(x0, y0, x1, y1)``: a square of side 1.5 * max(w, h) around the box centre.

    Integer arithmetic and clipping follow the reference (FineGAN), so a box near the border gives
    a clipped, non-square crop that the resize then stretches, as in training there. The half side
    is at least one pixel so the crop is never empty.
    """
    x, y, w, h = validate_box(box, width, height, source)
    half = max(1, int(max(w, h) * 0.75))
    cx, cy = int((2 * x + w) / 2), int((2 * y + h) / 2)
    return max(0, cx - half), max(0, cy - half), min(width, cx + half), min(height, cy + half)


def crop_resize(image: np.ndarray, box_xyxy, size: int) -> np.ndarray:
    """Crop ``(x0, y0, x1, y1)`` and resize to ``size`` x ``size`` uint8 RGB.

    Shrinking both ways uses cv2.INTER_AREA (averages, no aliasing); otherwise cv2.INTER_LINEAR.
    """
    image = _check_rgb(image, "image array")
    height, width = image.shape[:2]
    x0, y0, x1, y1 = (int(v) for v in box_xyxy)
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise MnmError(f"crop box {tuple(box_xyxy)} is empty or outside the {width}x{height} image")
    crop = image[y0:y1, x0:x1]
    if crop.shape[:2] == (size, size):
        return crop.copy()
    shrink = (x1 - x0) >= size and (y1 - y0) >= size
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def to_model_input(image: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 RGB -> 3 x H x W float32 in [-1, 1] (v / 127.5 - 1)."""
    image = _check_rgb(image, "image array")
    chw = image.transpose(2, 0, 1).astype(np.float32, order="C")
    chw /= 127.5
    chw -= 1.0
    return chw


def to_uint8(array: np.ndarray) -> np.ndarray:
    """Float images in [-1, 1] -> uint8 with channels last, rounded and clipped.

    Accepts CHW or HWC (CHW wins when both dimensions are 3) -> HWC, and NCHW or NHWC -> NHWC.
    Exact inverse of ``to_model_input`` on uint8 images.
    """
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.floating):
        raise MnmError(f"image array: expected floats in [-1, 1], got dtype {array.dtype}")
    if array.ndim == 3 and array.shape[0] == 3:
        array = array.transpose(1, 2, 0)
    elif array.ndim == 4 and array.shape[1] == 3:
        array = array.transpose(0, 2, 3, 1)
    elif array.ndim not in (3, 4) or array.shape[-1] != 3:
        raise MnmError(
            f"image array: expected CHW, HWC, NCHW or NHWC with 3 channels, got shape {array.shape}"
        )
    if not np.isfinite(array).all():
        raise MnmError("image array: contains NaN or infinite values")
    scaled = (array.astype(np.float32) + 1.0) * 127.5
    return np.ascontiguousarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))


def prepare_reference(
    source: ImageSource, size: int, box=None, max_pixels: int = DEFAULT_MAX_PIXELS, fit: str = "crop"
) -> np.ndarray:
    """THE preprocessing of training and the runtime: load, crop, resize, normalise -> 3 x S x S float32.

    With a pixel box ``(x, y, w, h)`` the crop is ``object_crop_box``. Without one, ``fit`` decides:
    ``crop`` takes the largest centred square, ``squash`` the whole image resized to S x S.
    """
    check_fit(fit)
    image = load_image(source, max_pixels=max_pixels)
    name = "image array" if isinstance(source, np.ndarray) else str(source)
    return to_model_input(reference_square(image, size, box, fit, name))


def reference_square(image: np.ndarray, size: int, box=None, fit: str = "crop", name: str = "box") -> np.ndarray:
    """The S x S uint8 reference that ``prepare_reference`` normalises: the object crop of ``box``,
    else the centred square (``crop``) or the whole image (``squash``) resized. An S x S result given
    back without a box comes out unchanged, so a server can reduce an upload at once and prepare it
    later. ``name`` names the image in a box's error message."""
    check_fit(fit)
    height, width = image.shape[:2]
    if box is not None:
        return crop_resize(image, object_crop_box(box, width, height, source=name), size)
    if fit == "squash":
        return squash_resize(image, size)
    side = min(width, height)
    x0, y0 = (width - side) // 2, (height - side) // 2
    return crop_resize(image, (x0, y0, x0 + side, y0 + side), size)


def squash_resize(image: np.ndarray, size: int) -> np.ndarray:
    """The whole image resized to ``size`` x ``size`` with Pillow's bilinear filter: what the
    MixNMatch evaluation code's ``transforms.Resize((S, S))`` does to a PIL image."""
    image = _check_rgb(image, "image array")
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))


def check_fit(fit: str) -> str:
    if fit not in FITS:
        raise MnmError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")
    return fit


def save_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an H x W x 3 uint8 RGB image atomically; the extension picks the format."""
    path = Path(path)
    image = _check_rgb(image, f"{path}: image to save")
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt not in _SAVE_FORMATS:
        raise MnmError(
            f"{path}: cannot tell the image format from the extension {path.suffix!r}; "
            "use .png, .jpg, .webp, .bmp, .tif or .gif"
        )
    try:
        write_bytes(path, encode_image(image, fmt))
    except OSError as exc:
        raise MnmError(f"{path}: cannot write the image ({exc.strerror or exc})") from None


def encode_image(image: np.ndarray, fmt: str = "PNG") -> bytes:
    """An H x W x 3 uint8 RGB image as the bytes of a ``fmt`` file (PNG, JPEG, WEBP...), as ``save_image`` writes."""
    image = _check_rgb(image, "image to encode")
    options = {"quality": _LOSSY_QUALITY} if fmt in ("JPEG", "WEBP") else {}
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The images directly in ``folder`` (by suffix; hidden files left out) in natural name order:
    frame2 before frame10."""
    files = [
        p for p in Path(folder).iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    ]
    return sorted(files, key=natural_key)


def natural_key(path: Path) -> list:
    """Sort key that compares the digit runs of a name as numbers."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]
