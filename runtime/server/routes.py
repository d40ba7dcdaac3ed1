"""The HTTP endpoints: parse (``inputs``), compute on a worker (``operations``), answer image or JSON.

An image endpoint answers with the image file (``format``: PNG by default) or, when the request's
``Accept`` names ``application/json``, with the JSON model (base64 image, the codes used, labels).
``X-Elapsed-Ms`` carries the server-side time either way.
"""

from __future__ import annotations

import base64
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

import mnm
from mnm.runtime.server import operations
from mnm.runtime.server.errors import ClientError
from mnm.runtime.server.inputs import read_request
from mnm.runtime.server.models import (
    FORMATS,
    EncodeRequest,
    EncodeResponse,
    ErrorBody,
    GenerateRequest,
    GenerateResponse,
    GridRequest,
    GridResponse,
    Info,
    Limits,
    MixRequest,
    MixResponse,
)
from mnm.runtime.server.openapi import request_body
from mnm.runtime.server.service import Service

router = APIRouter()

ERRORS = {status: {"model": ErrorBody, "description": text} for status, text in (
    (400, "malformed body"), (413, "body or image too large"), (415, "not multipart/form-data or JSON"),
    (422, "invalid input (the message names the field)"), (503, "queue full: retry after Retry-After seconds"),
)}
IMAGE_CONTENT = {"content": {media: {} for _, media in FORMATS.values()},
                 "description": "the image (or, with Accept: application/json, the JSON model)"}


def service_of(request: Request) -> Service:
    return request.app.state.service


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def _answer(request: Request, out: operations.Output, start: float, model, **fields) -> Response:
    """The image itself, or ``model`` as JSON (with ``fields``) when the client accepts JSON."""
    elapsed = round((time.perf_counter() - start) * 1000, 3)
    headers = {"X-Elapsed-Ms": str(elapsed)}
    if not wants_json(request):
        return Response(out.data, media_type=out.media_type, headers=headers)
    body = model(image=base64.b64encode(out.data).decode(), format=out.format, media_type=out.media_type,
                 width=out.width, height=out.height, elapsed_ms=elapsed, **fields)
    return JSONResponse(body.model_dump(exclude_none=True), headers=headers)


@router.post("/v1/mix", response_model=MixResponse, responses={200: IMAGE_CONTENT, **ERRORS},
             openapi_extra=request_body(MixRequest), summary="One mix-and-match image")
async def mix(request: Request):
    """Each factor an uploaded image or a spec (random, code:K, seed:N); fields as ``mnm mix``'s options."""
    start, service = time.perf_counter(), service_of(request)
    req = await read_request(request, MixRequest)
    out = await service.call(operations.mix, service.pipeline, req, service.image_limits)
    return _answer(request, out, start, MixResponse, mode=req.mode, seed=req.seed, codes=out.codes,
                   labels=out.labels)


@router.post("/v1/grid", response_model=GridResponse, responses={200: IMAGE_CONTENT, **ERRORS},
             openapi_extra=request_body(GridRequest), summary="A labelled grid of every combination")
async def grid(request: Request):
    """Factors repeated (form) or lists (JSON); the last factor with several entries runs along the columns."""
    start, service = time.perf_counter(), service_of(request)
    req = await read_request(request, GridRequest)
    out = await service.call(operations.grid, service.pipeline, req, service.image_limits,
                             service.options.max_grid_images)
    return _answer(request, out, start, GridResponse, mode=req.mode, seed=req.seed, rows=out.shape[0],
                   cols=out.shape[1], cells=out.cells)


@router.post("/v1/encode", response_model=EncodeResponse, responses=ERRORS,
             openapi_extra=request_body(EncodeRequest), summary="The codes of an image")
async def encode(request: Request) -> EncodeResponse:
    """z (a vector) and b, p, c (probabilities, with the most likely category): cache them, edit them,
    send them to /v1/generate."""
    start, service = time.perf_counter(), service_of(request)
    req = await read_request(request, EncodeRequest)
    codes = await service.call(operations.encode, service.pipeline, req, service.image_limits)
    return EncodeResponse(
        codes={name: value.tolist() for name, value in codes.items()},
        categories={name: int(value.argmax()) for name, value in codes.items() if name != "z"},
        elapsed_ms=round((time.perf_counter() - start) * 1000, 3),
    )


@router.post("/v1/generate", response_model=GenerateResponse, responses={200: IMAGE_CONTENT, **ERRORS},
             summary="An image from codes (code mode)")
async def generate(request: Request, req: GenerateRequest):
    """z_bg, z_pose: vectors or seeds; b, p, c: indices or probability vectors; left out: sampled from seed."""
    start, service = time.perf_counter(), service_of(request)
    out = await service.call(operations.generate, service.pipeline, req)
    return _answer(request, out, start, GenerateResponse, codes=out.codes)


@router.get("/v1/info", response_model=Info, summary="The bundle and how this server runs it")
async def info(request: Request) -> Info:
    service = service_of(request)
    o, bundle = service.options, service.bundle
    return Info(
        mnm_version=mnm.__version__,
        bundle=str(bundle.path),
        source=bundle.manifest.get("source", {}),
        config=service.config.to_dict(),
        modes=list(bundle.modes),
        graphs=list(bundle.graphs),
        backend=service.pipeline.backend.description,
        batching={"kind": o.batching, "max_batch": o.max_batch, "max_wait_ms": o.max_wait_ms,
                  "workers": o.workers},
        limits=Limits(max_body_bytes=o.max_body_bytes, max_pixels=o.max_pixels,
                      max_request_pixels=o.max_request_pixels,
                      max_queue=o.max_queue if o.batching != "ray" else None,
                      max_uploads=o.max_uploads if o.batching != "ray" else None, body_timeout_s=o.body_timeout_s,
                      max_streams=o.max_streams,
                      max_grid_images=o.max_grid_images),
        formats=list(FORMATS),
    )


@router.get("/healthz", summary="Liveness: 200 while the server takes requests")
async def healthz(request: Request) -> dict:
    if getattr(request.app.state, "service", None) is None:
        raise ClientError(503, "starting")
    return {"status": "ok"}


@router.get("/metrics", summary="Prometheus metrics (text format)", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})
async def metrics(request: Request) -> Response:
    m = service_of(request).metrics
    return Response(m.scrape(), media_type=m.content_type)
