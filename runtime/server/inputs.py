"""Reading a request: a multipart form or a JSON body → the typed request; uploads → arrays and factors.

The form's fields are named like the CLI options (``background``, ``pose``, ``shape``, ``texture``,
``mode``, ``seed``, ``format``, ``stitch``, ``box``; a factor repeated for a grid) and go through
the same pydantic model as the JSON body, so both are checked alike. Uploads are decoded with
``mnm.imaging.decode_image_bytes`` (the checks of ``load_image``, under the server's pixel limits) and
factors made by ``parse_factor``, so the server refuses exactly what ``mnm mix`` refuses.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.requests import Request

from mnm.errors import MnmError
from mnm.imaging import ImageTooLarge, decode_image_bytes, reference_square, validate_box
from mnm.runtime.pipeline import Pipeline
from mnm.runtime.requests import FACTORS, Factor, parse_box, parse_factor
from mnm.runtime.server.errors import ClientError, validation_message
from mnm.runtime.server.models import ImageIn

MAX_FORM_FIELDS = 300
"""Most parts in one multipart form (a grid of four 64-entry lists fits)."""


async def read_request(request: Request, model: type[BaseModel]) -> BaseModel:
    """The body as ``model``: JSON, or a form (multipart with files for images, or URL-encoded specs only);
    4xx for anything else."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "application/json":
        body = await request.body()
        try:
            return model.model_validate_json(body)
        except ValidationError as exc:
            if any(e["type"] == "json_invalid" for e in exc.errors()):
                raise ClientError(400, f"the body is not valid JSON ({validation_message(exc.errors())})") from None
            raise
    if media_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.form(max_files=MAX_FORM_FIELDS, max_fields=MAX_FORM_FIELDS)
        try:
            fields = await _form_fields(form.multi_items(), model)
        finally:
            await form.close()
        return model.model_validate(fields)
    raise ClientError(415, f"send multipart/form-data, application/x-www-form-urlencoded or application/json, "
                           f"not {media_type or 'no content type'!r}")


async def _form_fields(items, model: type[BaseModel]) -> dict:
    """Form parts → the model's fields: files become ``ImageIn``, list fields collect repeats, empty parts
    (a browser's unfilled inputs) are left out."""
    known = model.model_fields
    fields: dict[str, list] = {}
    for name, value in items:
        if name not in known:
            raise ClientError(422, f"unknown form field {name!r}; fields are {', '.join(known)}")
        if isinstance(value, UploadFile):
            data = await value.read()
            if not data and not value.filename:
                continue
            value = ImageIn(image=data, filename=Path(value.filename or "upload").name or "upload")
        elif not value.strip():
            continue
        elif name == "box":
            value = parse_box(value, source="box")
        fields.setdefault(name, []).append(value)
    out = {}
    for name, values in fields.items():
        if _is_list(known[name].annotation):
            out[name] = [v for value in values for v in _split(value)]
        elif len(values) > 1:
            raise ClientError(422, f"{name}: given {len(values)} times; one value here (a grid takes lists: /v1/grid)")
        else:
            out[name] = values[0]
    return out


def _is_list(annotation) -> bool:
    return "list[" in str(annotation)


def _split(value):
    """``code:1,code:2`` → two specs, as the CLI's comma lists; files stay whole."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [value]


class Uploads:
    """Decodes the images of one request and reduces each to the model's S x S reference at once
    (``reference_square``: the crop and resize the pipeline would make), so a request holds one
    full-size image at a time however many it uploads. Each distinct file and box is done once (the
    same file twice is one image, as the same path twice is on the CLI: feature mode needs shape and
    pose to be that one image). The header sizes of the images decoded count against
    ``max_request_pixels`` before each is decoded (413 past it)."""

    def __init__(self, pipe: Pipeline, max_pixels: int, max_request_pixels: int):
        self.size, self.fit = pipe.config.image_size, pipe.fit
        self.max_pixels, self.max_request_pixels = max_pixels, max_request_pixels
        self.decoded = 0  # pixels, by the headers
        self._squares: dict[tuple, np.ndarray] = {}

    def image(self, value: ImageIn, what: str, default_box=None) -> np.ndarray:
        """The upload as the S x S reference of its box (its own, else ``default_box``)."""
        name = f"{what} ({value.filename})"
        box = value.box if value.box is not None else default_box
        key = (hashlib.sha256(value.image).digest(), None if box is None else tuple(box))
        if key not in self._squares:
            array = decode_image_bytes(value.image, name, self.max_pixels, admit=lambda w, h: self._admit(name, w, h),
                                       filename=value.filename)
            if box is not None:
                box = validate_box(box, array.shape[1], array.shape[0], source=f"{name} box")
            self._squares[key] = reference_square(array, self.size, box, self.fit, name)
        return self._squares[key]

    def _admit(self, name: str, width: int, height: int) -> None:
        self.decoded += width * height
        if self.decoded > self.max_request_pixels:
            raise ImageTooLarge(f"{name}: with it this request's images take {self.decoded:,} pixels, over this "
                                f"server's limit of {self.max_request_pixels:,} pixels per request")

    def factor(self, kind: str, value: str | ImageIn | None, default_box=None) -> Factor | None:
        """A spec or an upload → the ``Factor`` the pipeline takes (None stays None: shape left out)."""
        if value is None:
            return None
        if isinstance(value, str):
            return parse_factor(value, kind)
        return Factor(image=self.image(value, kind, default_box), label=value.filename).check(kind)

    def factors(self, values: dict, default_box=None) -> dict[str, Factor | None]:
        return {kind: self.factor(kind, values[kind], default_box) for kind in FACTORS}


def check_grid_size(lists: dict[str, list | None], limit: int) -> None:
    n = int(np.prod([len(v) for v in lists.values() if v]))
    if n > limit:
        raise MnmError(f"grid: {n} images is over this server's limit of {limit}")
