"""Every error as a JSON body (``ErrorBody``) with a status that says whose fault it is.

A client's mistake is a 4xx: ``MnmError`` (the runtime's one-line errors, the same checks as the
CLI) is 422, an image over the pixel limit 413, a malformed body 400, a wrong content type 415,
and FastAPI's own validation errors 422 with the field named. Only a bug is a 500, and its body
says no more than "internal error" (the traceback goes to the log).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from mnm.errors import MnmError
from mnm.imaging import ImageTooLarge
from mnm.runtime.server.batching import GraphRunTimeout

log = logging.getLogger("mnm.server")

KIND_OF_STATUS = {400: "invalid_input", 404: "not_found", 405: "invalid_input", 408: "invalid_input",
                  413: "too_large", 415: "unsupported_media_type", 422: "invalid_input", 503: "overloaded"}


class ClientError(Exception):
    """A request the server refuses: ``status`` (4xx or 503), a one-line ``message``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def error_body(status: int, message: str) -> dict:
    return {"error": " ".join(message.split()), "type": KIND_OF_STATUS.get(status, "internal"), "status": status}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message), status_code=status, headers=headers)


def validation_message(errors, limit: int = 3) -> str:
    """pydantic's error list → one line: ``field: problem; field: problem``."""
    parts = []
    for error in list(errors)[:limit]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "spec", "upload"))
        message = error.get("msg", "invalid").removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts) or "invalid request"


def install(app: FastAPI) -> None:
    """Register the handlers that turn every exception into an ``ErrorBody``."""

    @app.exception_handler(ClientError)
    async def _client(_: Request, exc: ClientError):
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(GraphRunTimeout)
    async def _slow(_: Request, exc: GraphRunTimeout):
        return error_response(503, f"server busy: {exc}; retry later", {"retry-after": "1"})

    @app.exception_handler(ImageTooLarge)
    async def _too_large(_: Request, exc: ImageTooLarge):
        return error_response(413, str(exc))

    @app.exception_handler(MnmError)
    async def _mnm(_: Request, exc: MnmError):
        return error_response(422, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _request_validation(_: Request, exc: RequestValidationError):
        return error_response(422, validation_message(exc.errors()))

    @app.exception_handler(ValidationError)
    async def _validation(_: Request, exc: ValidationError):
        return error_response(422, validation_message(exc.errors()))

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException):
        return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(ClientDisconnect)
    async def _gone(_: Request, exc: ClientDisconnect):  # nobody reads this; it keeps the 500s for bugs
        return error_response(400, "the client closed the connection before the body was complete")

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):
        log.exception("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal error (the server's log has the details)")
