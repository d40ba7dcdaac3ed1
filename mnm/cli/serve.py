"""`mnm serve`: the bundle as an HTTP service (FastAPI + uvicorn), or as a Ray Serve deployment.

FastAPI, uvicorn and Ray are optional extras, imported inside the command: ``mnm --help`` and the
other commands never load them. docs/server.md describes the service.
"""

from __future__ import annotations

import signal
import socket
import sys
from pathlib import Path

import typer

from mnm.cli.app import app
from mnm.cli.pipeline import precision_option
from mnm.errors import MnmError


@app.command("serve")
def serve(
    bundle: Path = typer.Argument(..., help="Exported bundle folder (mnm export)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port (0: any free port, printed)."),
    backend: str = typer.Option("auto", "--backend", help="auto, ort-cpu, ort-cuda, ort-trt or tensorrt."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="onnxruntime CPU threads (default: the cores)."),
    precision: str = precision_option(),
    max_batch: int | None = typer.Option(
        None, "--max-batch", min=1, help="Most images in one graph run, across requests (default: 4 on the CPU, "
        "ort-cpu; 16 on a GPU)."
    ),
    max_wait_ms: float = typer.Option(
        5.0, "--max-wait-ms", min=0, help="Longest a graph run waits for others to join its batch."
    ),
    max_queue: int = typer.Option(
        64, "--max-queue", min=1, help="Most requests in the server at once once their body has arrived (queued or "
        "running); more get 503 + Retry-After."
    ),
    max_uploads: int = typer.Option(
        64, "--max-uploads", min=1, help="Most request bodies arriving at once; more get 503 + Retry-After."
    ),
    body_timeout_s: float = typer.Option(
        60.0, "--body-timeout-s", min=0.001, help="Time a whole request body may take to arrive (else 408)."
    ),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="Threads running requests (default: the larger of 4 and --max-batch)."
    ),
    batching: bool = typer.Option(True, "--batching/--no-batching", help="Batch graph runs across requests."),
    graph_wait_s: float = typer.Option(
        120.0, "--graph-wait-s", min=0.001, help="Longest a request waits for one graph run, queue included (else 503)."
    ),
    max_body_mb: float = typer.Option(32.0, "--max-body-mb", min=0.001, help="Largest request body (MiB)."),
    max_pixels: int = typer.Option(16_000_000, "--max-pixels", min=1, help="Largest uploaded image (pixels)."),
    max_request_pixels: int = typer.Option(
        64_000_000, "--max-request-pixels", min=1, help="Most pixels all the uploads of one request decode to."
    ),
    max_streams: int = typer.Option(16, "--max-streams", min=1, help="Most /v1/animate WebSockets at once."),
    stream_idle_s: float = typer.Option(
        60.0, "--stream-idle-s", min=0.001, help="Close a /v1/animate stream whose client sends nothing for this long."
    ),
    allow_origin: list[str] | None = typer.Option(
        None, "--allow-origin", help="A web origin whose pages may open /v1/animate streams besides the server's "
        "own (repeat it; * allows any)."
    ),
    access_log: bool = typer.Option(False, "--access-log", help="Log every request (uvicorn's access log)."),
    ray: bool = typer.Option(False, "--ray", help="Deploy on Ray Serve (needs the ray extra)."),
    replicas: int = typer.Option(1, "--replicas", min=1, help="Ray Serve replicas (with --ray)."),
    address: str | None = typer.Option(
        None, "--address", help="Ray cluster to join, e.g. ray://head:10001 or auto (with --ray; default: "
        "start a local one)."
    ),
) -> None:
    """Serve mix-and-match and live animation over HTTP: POST /v1/mix, /v1/grid, /v1/encode, /v1/generate,
    WS /v1/animate, GET /v1/info, /healthz, /metrics (OpenAPI at /docs)."""
    if not ray and (address is not None or replicas != 1):
        raise MnmError("--replicas and --address need --ray")
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise MnmError(f"mnm serve needs the serve extra: pip install 'mnm[serve]' ({exc})") from None
    from mnm.runtime.server.service import ServerOptions

    options = ServerOptions(
        bundle=str(bundle.resolve()), backend=backend, threads=threads, precision=precision,
        batching="ray" if ray else ("own" if batching else "none"),
        max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue, max_uploads=max_uploads,
        body_timeout_s=body_timeout_s, graph_wait_s=graph_wait_s, workers=workers,
        max_body_bytes=int(max_body_mb * 1024 * 1024), max_pixels=max_pixels,
        max_request_pixels=max_request_pixels, max_streams=max_streams, stream_idle_s=stream_idle_s,
        allow_origins=tuple(allow_origin or ()),
    ).check()
    if ray:
        from mnm.runtime.server.ray_serve import deploy

        deploy(options, host=host, port=port, replicas=replicas, address=address)
        return
    _serve_here(options, host, port, access_log, uvicorn)


def _serve_here(options, host: str, port: int, access_log: bool, uvicorn) -> None:
    """Load the bundle, bind, serve until SIGTERM or Ctrl-C; exit 0 after a SIGTERM's graceful stop."""
    from mnm.runtime.server.app import create_app
    from mnm.runtime.server.service import Service

    service = Service(options)
    typer.echo(f"backend: {service.pipeline.backend.description}", err=True)
    for reason in getattr(service.pipeline.backend, "skipped", []):
        typer.echo(f"  not used: {reason}", err=True)
    sock = _bind(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    settings = service.options
    typer.echo(f"serving {options.bundle} on http://{shown}:{bound} (max batch {settings.max_batch}, max wait "
               f"{settings.max_wait_ms:g} ms, max queue {settings.max_queue}, {settings.workers} workers; the web page "
               "at /, API docs at /docs)", err=True)
    config = uvicorn.Config(
        create_app(options, service), log_level="info", access_log=access_log, lifespan="on",
        timeout_graceful_shutdown=60, ws_max_size=options.max_body_bytes,
    )
    signals: list[int] = []
    # uvicorn stops gracefully on SIGTERM/SIGINT, then re-raises the signal to the handler it found:
    # this one records it, so a SIGTERM ends with exit 0 instead of the default handler's kill.
    previous = {sig: signal.signal(sig, lambda number, _frame: signals.append(number))
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    typer.echo("stopped", err=True)
    if signal.SIGINT in signals:
        sys.exit(130)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise MnmError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    sock.set_inheritable(True)
    return sock
