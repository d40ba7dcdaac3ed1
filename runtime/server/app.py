"""``create_app``: the FastAPI application of ``mnm serve`` (and of each Ray Serve replica).

The service (bundle, pipeline, batcher, workers) starts in the app's lifespan, or is handed in
ready-made by the CLI, which loads the bundle before it binds the port so a bad bundle fails with
one line. Middleware, outermost first: ``Observe`` (request metrics), ``Admission`` (queue bound
and body limits). Shutdown (SIGTERM): uvicorn stops accepting and lets the requests in flight
finish, then the lifespan closes the service, which lets its running jobs finish first.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

import mnm
from mnm.runtime.server import animate, apidocs, errors, routes, web
from mnm.runtime.server.limits import Admission, Gate
from mnm.runtime.server.metrics import Observe
from mnm.runtime.server.models import EncodeRequest, GridRequest, MixRequest
from mnm.runtime.server.openapi import add_schemas
from mnm.runtime.server.service import ServerOptions, Service

DESCRIPTION = """Mix-and-match and live animation with a MixNMatch bundle (docs/server.md).

Image endpoints take a multipart form (fields named like `mnm mix`'s options, files for images) or
JSON (images in base64) and answer with the image, or JSON with `Accept: application/json`. Errors
are JSON: `{"error", "type", "status"}`."""


def create_app(options: ServerOptions, service: Service | None = None) -> FastAPI:
    """The app for ``options``; ``service`` if already started, else one started in the lifespan."""
    ray = options.batching == "ray"
    gate = Gate(
        max_in_flight=None if ray else options.max_queue,
        max_body_bytes=options.max_body_bytes,
        max_uploads=None if ray else options.max_uploads,
        retry_after_s=options.retry_after_s,
        body_timeout_s=options.body_timeout_s,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        running = service or Service(options)
        running.in_flight = lambda: gate.in_flight
        running.uploading = lambda: gate.uploading
        app.state.service = running
        try:
            yield
        finally:
            app.state.service = None
            running.close()

    app = FastAPI(title="mnm", version=mnm.__version__, description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.service = None
    errors.install(app)
    app.include_router(routes.router)
    app.include_router(animate.router)
    web.install(app)
    apidocs.install(app)
    app.add_middleware(Admission, gate=gate)
    app.add_middleware(Observe, metrics=lambda: app.state.service and app.state.service.metrics)

    def openapi() -> dict:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description,
                                   routes=app.routes)
            app.openapi_schema = add_schemas(document, [MixRequest, GridRequest, EncodeRequest])
        return app.openapi_schema

    app.openapi = openapi
    return app
