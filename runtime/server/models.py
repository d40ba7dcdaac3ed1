"""The request and response bodies of the HTTP API, typed for validation and the OpenAPI schema.

A factor is a text spec (``random``, ``code:K``, ``seed:N``; never a path: a server must not read
its own files on a client's word) or an image: in JSON, an object with the file's bytes in base64;
in a multipart form, an uploaded file. Both end up as ``ImageIn``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, WithJsonSchema, model_validator

from mnm.errors import MnmError
from mnm.runtime.requests import FACTORS, is_spec, require_factors

FORMATS = {"png": ("PNG", "image/png"), "jpeg": ("JPEG", "image/jpeg"), "webp": ("WEBP", "image/webp")}
"""Output format name → (Pillow format, media type)."""

Format = Literal["png", "jpeg", "webp"]
Mode = Literal["code", "feature"]
Stitch = Literal["background", "foreground"]
Box = tuple[float, float, float, float]


def _from_base64(value):
    """base64 text (or a ``data:`` URL) → bytes; bytes (a form upload) pass through."""
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise ValueError("expected the image file's bytes as a base64 string")
    text = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not valid base64") from None


def _spec(value):
    if isinstance(value, str) and not is_spec(value):
        raise ValueError(f"unknown factor spec {value[:40]!r}; use random, code:K, seed:N or an image")
    return value.strip() if isinstance(value, str) else value


ImageBytes = Annotated[
    bytes,
    BeforeValidator(_from_base64),
    WithJsonSchema({"type": "string", "contentEncoding": "base64",
                    "description": "the image file (PNG, JPEG, WebP, BMP, GIF, TIFF), base64"}),
]
Spec = Annotated[
    str,
    BeforeValidator(_spec),
    WithJsonSchema({"type": "string", "pattern": r"^(random|code:-?\d+|seed:-?\d+)$",
                    "description": "random, code:K (category of b, p or c) or seed:N (z)"}),
]


class ImageIn(BaseModel):
    """A reference image: its file bytes, a name (grid labels) and optionally the object's box."""

    model_config = ConfigDict(extra="forbid")
    image: ImageBytes
    filename: str = Field("image", max_length=200, description="label in grids, like a file name on the CLI")
    box: Box | None = Field(None, description="object box x, y, w, h in pixels (crop like training)")


Factor = Annotated[
    Annotated[Spec, Tag("spec")] | Annotated[ImageIn, Tag("upload")],
    Discriminator(lambda value: "spec" if isinstance(value, str) else "upload"),
]
"""A spec or an image; the discriminator picks the branch, so an error names one problem, not two."""


class _Common(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Mode = "code"
    seed: int = Field(0, ge=0, description="seed of the random factors (as mnm mix --seed)")
    format: Format = "png"
    stitch: Stitch | None = None
    box: Box | None = Field(None, description="object box for every reference image without its own")


class _Factors(_Common):
    @model_validator(mode="before")
    @classmethod
    def _every_factor_named(cls, data):
        """A factor left out (or null) is refused, as on the CLI: ``random`` is asked for by name;
        feature mode alone leaves the shape out."""
        if isinstance(data, dict):
            try:
                require_factors({k: data.get(k) is not None for k in FACTORS}, data.get("mode", "code"))
            except MnmError as exc:
                raise ValueError(str(exc)) from None
        return data


class MixRequest(_Factors):
    """One mix: each factor a spec or an image, named explicitly; the shape only in code mode (feature
    mode takes it from the pose)."""

    background: Factor
    pose: Factor
    shape: Factor | None = None
    texture: Factor


class GridRequest(_Factors):
    """Every combination of the factor lists (the last factor with several entries runs along the columns)."""

    background: list[Factor] = Field(min_length=1, max_length=64)
    pose: list[Factor] = Field(min_length=1, max_length=64)
    shape: list[Factor] | None = Field(None, min_length=1, max_length=64)
    texture: list[Factor] = Field(min_length=1, max_length=64)


class EncodeRequest(BaseModel):
    """Codes of one reference image."""

    model_config = ConfigDict(extra="forbid")
    image: ImageIn
    factors: list[Literal["z", "b", "p", "c"]] = Field(default_factory=lambda: ["z", "b", "p", "c"], min_length=1)


Vector = list[float]


class GenerateRequest(BaseModel):
    """An image from codes (code mode). z: a vector or a seed; b, p, c: an index or a probability vector.
    A code left out is sampled from ``seed``."""

    model_config = ConfigDict(extra="forbid")
    z_bg: Vector | int | None = Field(None, description="background z: a vector of Z floats or a seed")
    b: Vector | int | None = Field(None, description="background code: index or N_b probabilities")
    z_pose: Vector | int | None = Field(None, description="pose z: a vector or a seed")
    p: Vector | int | None = Field(None, description="shape code: index or N_p probabilities")
    c: Vector | int | None = Field(None, description="texture code: index or N_c probabilities")
    seed: int = Field(0, ge=0)
    format: Format = "png"


class Codes(BaseModel):
    """Codes a mix used: z_bg, b, c always; z_pose and p in code mode."""

    z_bg: Vector
    b: Vector
    c: Vector
    z_pose: Vector | None = None
    p: Vector | None = None


class ImageOut(BaseModel):
    image: str = Field(description="the image file, base64")
    format: Format
    media_type: str
    width: int
    height: int


class MixResponse(ImageOut):
    mode: Mode
    seed: int
    codes: Codes
    labels: dict[str, str]
    elapsed_ms: float


class GridCell(BaseModel):
    row: int
    col: int
    labels: dict[str, str]
    codes: Codes


class GridResponse(ImageOut):
    mode: Mode
    seed: int
    rows: int
    cols: int
    cells: list[GridCell]
    elapsed_ms: float


class EncodeResponse(BaseModel):
    codes: dict[str, Vector] = Field(description="factor → code vector (z; b, p, c as probabilities)")
    categories: dict[str, int] = Field(description="b, p, c → the most likely category (for code:K)")
    elapsed_ms: float


class GenerateResponse(ImageOut):
    codes: Codes
    elapsed_ms: float


class ErrorBody(BaseModel):
    """Every error: one line for people, a stable type for programs."""

    error: str
    type: str = Field(description="invalid_input, too_large, unsupported_media_type, overloaded, not_found, internal")
    status: int


class Limits(BaseModel):
    max_body_bytes: int
    max_pixels: int
    max_request_pixels: int
    max_queue: int | None
    max_uploads: int | None
    body_timeout_s: float
    max_streams: int
    max_grid_images: int


class Info(BaseModel):
    """The bundle and how this server runs it."""

    mnm_version: str
    bundle: str
    source: dict
    config: dict
    modes: list[str]
    graphs: list[str]
    backend: str
    batching: dict
    limits: Limits
    formats: list[str]
