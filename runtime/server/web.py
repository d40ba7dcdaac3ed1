"""The web page at ``/``: plain HTML, CSS and JavaScript from ``static/`` (package data, no build step).

The page talks to the same app's API (``/v1/info``, ``/v1/mix``, ``/v1/grid``, ``WS /v1/animate``);
its demo references are PNGs in ``static/gallery`` listed by ``gallery.json``. The page's content
security policy allows this origin only, so nothing it uses can come from anywhere else.
docs/web.md has the design.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
POLICY = ("default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:; "
          "connect-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def install(app: FastAPI) -> None:
    """Serve the page at ``/`` and its files under ``/static``."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": POLICY,
                                                            "Cache-Control": "no-cache"})
