"""The Python half of libmnm.so: the functions of mnm.h that run the runtime (docs/capi.md).

libmnm.c calls ``mnm_py_<name>`` (declared in bridge.h) with the caller's arguments once the
interpreter is up; each is a function below, bound by ``attach`` with ``ffi.def_extern``. Every
exception becomes a status and a one-line message for ``mnm_last_error``: nothing reaches the app's
stderr. Only the public runtime API is used (``mnm.runtime``, ``mnm.imaging``); no torch.
"""

from __future__ import annotations

import math
import os
import traceback
from dataclasses import dataclass
from pathlib import Path

import mnm
from mnm.errors import MnmError
from mnm.runtime.capi.convert import BadArgument, Boundary
from mnm.runtime.capi.handles import ClosedHandle, Handles

KINDS = ("background", "pose", "shape", "texture")
"""The factors of a request, as mnm.h names its fields."""
MODES = ("code", "feature")  # by mnm_mode value
STITCHES = (None, "background", "foreground")  # by mnm_stitch value
CODES = {"z_bg": "z", "b": "b", "z_pose": "z", "p": "p", "c": "c"}  # mnm_generate_request field -> code
DEFAULT_MAX_BATCH = 16


class Failure(Exception):
    """A failure with its own status, named as in mnm.h (``MNM_ERR_NOT_FOUND``, ...)."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


_STATUS_OF = (
    (ClosedHandle, "MNM_ERR_CLOSED"),
    (BadArgument, "MNM_ERR_ARGUMENT"),
    (MemoryError, "MNM_ERR_MEMORY"),
    (MnmError, "MNM_ERR_RUNTIME"),
)
_EXTERNS = {}
_handles = Handles()
_c: Boundary | None = None  # set by attach


def extern(function):
    """Register ``function`` as the implementation of ``mnm_py_<its name>``."""
    _EXTERNS[f"mnm_py_{function.__name__}"] = function
    return function


def attach(ffi, lib) -> None:
    """Bind every function of bridge.h (called once, by the library's embedding init code)."""
    global _c
    _c = Boundary(ffi, lib)
    for name, function in _EXTERNS.items():
        ffi.def_extern(name=name, error=lib.MNM_ERR_INTERNAL, onerror=_unreportable)(_guarded(function))


def _guarded(function):
    def call(*args):
        try:
            function(*args)
            return _c.lib.MNM_OK
        except BaseException as exc:  # nothing may unwind into C
            status, message = describe(exc)
            _c.lib.mnm_capi_set_error(message.encode("utf-8", "replace"))
            return getattr(_c.lib, status)

    return call


def describe(exc: BaseException) -> tuple[str, str]:
    """The status and the one-line message of an exception (the traceback too with MNM_CAPI_DEBUG=1)."""
    if isinstance(exc, Failure):
        return exc.status, str(exc)
    for kind, status in _STATUS_OF:
        if isinstance(exc, kind):
            return status, str(exc) or ("out of memory" if isinstance(exc, MemoryError) else type(exc).__name__)
    message = " ".join(f"internal error (please report it): {type(exc).__name__}: {exc}".split())
    if os.environ.get("MNM_CAPI_DEBUG") == "1":
        message += "\n" + "".join(traceback.format_exception(exc))
    return "MNM_ERR_INTERNAL", message


def _unreportable(exc_type, exc_value, tb):
    """cffi's last resort, for an error while reporting an error: the call returns MNM_ERR_INTERNAL."""
    return None


def _number(handle, kind: str) -> int:
    _c.require(handle, kind)
    return int(_c.ffi.cast("uintptr_t", handle))


# ---------------------------------------------------------------------- pipelines


@dataclass
class _OpenPipeline:
    """A pipeline and the C strings ``mnm_pipeline_info`` lends out (alive until the handle closes)."""

    pipeline: object
    strings: dict


@extern
def pipeline_open(bundle, options, out):
    from mnm.runtime import Bundle, Pipeline
    from mnm.runtime.backends import check_name
    from mnm.runtime.bundle import check_precision_name

    path = _c.text(bundle, "bundle")
    _c.require(out, "out")
    backend, threads, max_batch, precision = _options(options)
    try:  # before the bundle is opened (that reads every file): a typo fails at once
        check_name(backend)
        check_precision_name(precision, "options.precision")
    except MnmError as exc:
        raise BadArgument(str(exc)) from None
    if not Path(path).exists():
        raise Failure("MNM_ERR_NOT_FOUND", f"{path}: bundle folder not found")
    try:
        opened = Bundle.open(path)
    except MnmError as exc:
        raise Failure("MNM_ERR_BUNDLE", str(exc)) from None
    try:
        opened.check_precision(precision)
    except MnmError as exc:
        raise BadArgument(str(exc)) from None
    try:
        pipe = Pipeline(opened, backend=backend, max_batch=max_batch, precision=precision,
                        **({"threads": threads} if threads else {}))
    except MnmError as exc:
        raise Failure("MNM_ERR_BACKEND", str(exc)) from None
    number = _handles.add(_OpenPipeline(pipe, _info_strings(pipe)), "pipeline", pipe.close)
    out[0] = _c.ffi.cast("mnm_pipeline *", number)


def _options(options) -> tuple[str, int, int, str]:
    if options == _c.ffi.NULL:
        return "auto", 0, DEFAULT_MAX_BATCH, "auto"
    backend, precision = (_auto_or_text(getattr(options, name), f"options.{name}") for name in ("backend", "precision"))
    for name in ("threads", "max_batch"):
        if getattr(options, name) < 0:
            raise BadArgument(f"options.{name} must be 0 (the default) or more, got {getattr(options, name)}")
    return backend, options.threads, options.max_batch or DEFAULT_MAX_BATCH, precision


def _auto_or_text(pointer, name: str) -> str:
    """An optional string option: NULL or empty means ``auto``."""
    return "auto" if pointer == _c.ffi.NULL else _c.text(pointer, name) or "auto"


def _info_strings(pipe) -> dict:
    new = _c.ffi.new
    names = [new("char[]", name.encode()) for name in pipe.bundle.graphs]
    return {
        "names": names,
        "graphs": new("char *[]", names),
        "bundle": new("char[]", os.fsencode(Path(pipe.bundle.path).resolve())),
        "backend": new("char[]", pipe.backend.description.encode()),
        "version": new("char[]", mnm.__version__.encode()),
    }


@extern
def pipeline_close(pipeline):
    _handles.close(_number(pipeline, "pipeline"), "pipeline")


@extern
def pipeline_info(pipeline, out):
    _c.require(out, "out")
    with _handles.use(_number(pipeline, "pipeline"), "pipeline") as opened:
        pipe, strings = opened.pipeline, opened.strings
        dims = pipe.config.code_dims()
        out.image_size = pipe.config.image_size
        out.z_dim, out.b_dim, out.p_dim, out.c_dim = dims["z"], dims["b"], dims["p"], dims["c"]
        out.has_code_mode = int("code" in pipe.bundle.modes)
        out.has_feature_mode = int("feature" in pipe.bundle.modes)
        out.graph_count = len(strings["names"])
        out.graphs = strings["graphs"]
        out.bundle, out.backend, out.version = strings["bundle"], strings["backend"], strings["version"]


# ---------------------------------------------------------------------- requests


class _Images:
    """The caller's images of one call, each copied once: one buffer given as both the pose and the
    shape is one reference (what feature mode asks for)."""

    def __init__(self):
        self._copies = {}

    def get(self, image, what: str):
        _c.require(image, what)
        key = (int(_c.ffi.cast("uintptr_t", image.data)), image.width, image.height, image.stride, image.size)
        if key not in self._copies:
            self._copies[key] = _c.image(image, what)
        return self._copies[key]


def _factor(factor, kind: str, images: _Images, label: str = ""):
    """An ``mnm_factor`` → a runtime ``Factor`` (None when empty)."""
    from mnm.imaging import validate_box
    from mnm.runtime import Factor, parse_factor

    has_spec, has_image = factor.spec != _c.ffi.NULL, factor.image != _c.ffi.NULL
    if has_spec and has_image:
        raise BadArgument(f"{kind}: give a spec or an image, not both")
    if factor.box != _c.ffi.NULL and not has_image:
        raise BadArgument(f"{kind}: a box needs an image")
    try:
        if has_image:
            array = images.get(factor.image, kind)
            box = None
            if factor.box != _c.ffi.NULL:
                box = validate_box([factor.box[i] for i in range(4)], array.shape[1], array.shape[0], f"{kind} box")
            return Factor(image=array, box=box, label=label or "image").check(kind)
        if has_spec:
            spec = _c.text(factor.spec, f"{kind} spec").strip()
            try:
                return parse_factor(spec, kind)
            except MnmError as exc:
                is_path = spec != "random" and not spec.startswith(("code:", "seed:"))
                if is_path and not Path(spec).exists():
                    raise Failure("MNM_ERR_NOT_FOUND", str(exc)) from None
                raise
    except MnmError as exc:
        raise BadArgument(str(exc)) from None
    return None


def _mode(value: int, pipe) -> str:
    if not 0 <= value < len(MODES):
        raise BadArgument(f"mode must be MNM_MODE_CODE (0) or MNM_MODE_FEATURE (1), got {value}")
    mode = MODES[value]
    if mode not in pipe.bundle.modes:
        raise Failure("MNM_ERR_UNSUPPORTED", f"{pipe.bundle.path}: the bundle has no {mode} mode "
                                             f"(modes: {', '.join(pipe.bundle.modes)})")
    return mode


def _stitch(value: int) -> str | None:
    if not 0 <= value < len(STITCHES):
        raise BadArgument(f"stitch must be MNM_STITCH_NONE, _BACKGROUND or _FOREGROUND (0-2), got {value}")
    return STITCHES[value]


@extern
def mix(pipeline, request, out):
    _c.require(request, "request")
    with _handles.use(_number(pipeline, "pipeline"), "pipeline") as opened:
        pipe = opened.pipeline
        size = pipe.config.image_size
        _c.check_output(out, size, size, "out")
        mode, stitch = _mode(request.mode, pipe), _stitch(request.stitch)
        images = _Images()
        factors = {kind: _factor(getattr(request, kind), kind, images) for kind in KINDS}
        for kind in ("background", "pose", "texture"):
            factors[kind] = factors[kind] or "random"
        image = pipe.mix(**factors, mode=mode, seed=request.seed, stitch=stitch)
    _c.put_images([out], [image], ["out"])


@extern
def grid(pipeline, request, image, cells):
    _c.require(request, "request")
    _c.require(image, "image")
    with _handles.use(_number(pipeline, "pipeline"), "pipeline") as opened:
        pipe = opened.pipeline
        size = pipe.config.image_size
        mode = _mode(request.mode, pipe)
        images = _Images()
        lists = {kind: _factor_list(request, kind, images) for kind in KINDS}
        n = math.prod(len(values) for values in lists.values())
        outs = [] if cells == _c.ffi.NULL else [cells + i for i in range(n)]
        for i, out in enumerate(outs):
            _c.check_output(out, size, size, f"cells[{i}]")
        result = pipe.grid(**lists, mode=mode, seed=request.seed)
        picture = result.image()
    cell_images = [cell.image for cell in result.cells] if outs else []
    _c.put_images([image, *outs], [picture, *cell_images], ["image", *(f"cells[{i}]" for i in range(len(outs)))])


def _factor_list(request, kind: str, images: _Images) -> list:
    pointer, count = getattr(request, kind), getattr(request, f"n_{kind}")
    if count < 0:
        raise BadArgument(f"n_{kind} must be 0 or more, got {count}")
    if count and pointer == _c.ffi.NULL:
        raise BadArgument(f"{kind} is NULL but n_{kind} is {count}")
    values = [_factor(pointer[i], kind, images, label=f"{kind} {i + 1}") for i in range(count)] or [None]
    return values if kind == "shape" else [value or "random" for value in values]


@extern
def encode(pipeline, images, codes):
    _c.require(codes, "codes")
    _c.require(images, "images")
    if codes.count <= 0:
        raise BadArgument(f"codes.count must be positive, got {codes.count}")
    wanted = tuple(name for name in ("z", "b", "p", "c") if getattr(codes, name) != _c.ffi.NULL)
    if not wanted:
        raise BadArgument("codes: z, b, p and c are all NULL, nothing to compute")
    with _handles.use(_number(pipeline, "pipeline"), "pipeline") as opened:
        copies = _Images()
        arrays = [copies.get(images + i, f"images[{i}]") for i in range(codes.count)]
        result = opened.pipeline.encode(arrays, factors=wanted)
    for name in wanted:
        _c.put_floats(getattr(codes, name), result[name])


@extern
def generate(pipeline, request, out):
    from mnm.imaging import to_uint8

    _c.require(request, "request")
    _c.require(out, "out")
    if request.count <= 0:
        raise BadArgument(f"request.count must be positive, got {request.count}")
    with _handles.use(_number(pipeline, "pipeline"), "pipeline") as opened:
        pipe = opened.pipeline
        size, dims = pipe.config.image_size, pipe.config.code_dims()
        outs = [out + i for i in range(request.count)]
        for i, one in enumerate(outs):
            _c.check_output(one, size, size, f"out[{i}]")
        codes = {name: _c.floats(getattr(request, name), request.count, dims[code], f"request.{name}")
                 for name, code in CODES.items()}
        images = to_uint8(pipe.generate(**codes)["image"])
    _c.put_images(outs, list(images), [f"out[{i}]" for i in range(len(outs))])


# ---------------------------------------------------------------------- animators


@dataclass
class _OpenAnimator:
    animator: object
    pipeline: int  # its pipeline's handle: closing that stops the animator


@extern
def animator_open(pipeline, static_image, mode, out):
    _c.require(out, "out")
    number = _number(pipeline, "pipeline")
    with _handles.use(number, "pipeline") as opened:
        pipe = opened.pipeline
        name = _mode(mode, pipe)
        animator = pipe.animator(_c.image(static_image, "static_image"), mode=name)
    out[0] = _c.ffi.cast("mnm_animator *", _handles.add(_OpenAnimator(animator, number), "animator", _nothing))


def _nothing() -> None:
    """An animator holds nothing to release beyond what its pipeline's close releases."""


@extern
def animator_frame(animator, frame, out):
    with (
        _handles.use(_number(animator, "animator"), "animator") as opened,
        _handles.use(opened.pipeline, "pipeline", why="the animator's pipeline was closed") as pipe_open,
    ):
        size = pipe_open.pipeline.config.image_size
        _c.check_output(out, size, size, "out")
        image = opened.animator.frame(_c.image(frame, "frame"))
    _c.put_images([out], [image], ["out"])


@extern
def animator_close(animator):
    _handles.close(_number(animator, "animator"), "animator")


# ---------------------------------------------------------------------- image files


@extern
def image_load(path, out):
    from mnm.imaging import load_image

    name = _c.text(path, "path")
    _c.require(out, "out")
    if not Path(name).exists():
        raise Failure("MNM_ERR_NOT_FOUND", f"{name}: image file not found")
    _c.put_images([out], [load_image(name)], ["out"])


@extern
def image_save(path, image):
    from mnm.imaging import save_image

    save_image(_c.text(path, "path"), _c.image(image, "image"))
