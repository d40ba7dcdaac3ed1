"""``mnm serve --ray``: the same FastAPI app as a Ray Serve deployment with replicas.

Ray does the distributed part: it places the replicas on the cluster's nodes, runs the HTTP proxy,
routes each request to a replica, and queues and refuses (503) with ``max_ongoing_requests`` and
``max_queued_requests``. Each replica builds the app from ``ServerOptions`` (``serve.ingress`` with
a builder function, so nothing but the options is pickled) and batches its graph runs with
``@serve.batch`` (``ray_batching``). docs/server.md tells how to run it on a multi-machine cluster.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

from mnm.errors import MnmError
from mnm.runtime.server.service import ServerOptions

APP_NAME = "mnm"
GPU_BACKENDS = ("ort-cuda", "ort-trt", "tensorrt")


def build_application(options: ServerOptions, replicas: int):
    """The Ray Serve application: ``replicas`` copies of the app, each with its own pipeline."""
    from ray import serve

    def build_asgi_app():  # runs in each replica
        from mnm.runtime.server.app import create_app

        return create_app(options)

    resources = {"num_cpus": options.threads or 1, "num_gpus": 1 if options.backend in GPU_BACKENDS else 0}
    deployment = serve.deployment(
        serve.ingress(build_asgi_app)(),
        name=APP_NAME,
        num_replicas=replicas,
        max_ongoing_requests=options.workers or 16,
        max_queued_requests=options.max_queue,
        ray_actor_options=resources,
    )
    return deployment.bind()


def deploy(options: ServerOptions, host: str, port: int, replicas: int, address: str | None) -> None:
    """Deploy on the cluster at ``address`` (or a local one started here, its own processes on
    loopback), serve until SIGTERM or Ctrl-C, then delete the application and, for a local one, stop
    Ray: in that order, each step bounded by Ray's own timeouts."""
    try:
        import ray
        from ray import serve
    except ImportError as exc:
        raise MnmError(f"mnm serve --ray needs the ray extra: pip install 'mnm[ray]' ({exc})") from None
    local = {"_node_ip_address": "127.0.0.1"} if address is None else {}
    try:
        with blocked_in_children(STOP_SIGNALS if address is None else ()):
            ray.init(address=address, include_dashboard=False, **local)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError... for a bad address
        raise MnmError(f"cannot {'join the Ray cluster at ' + address if address else 'start Ray'}: {exc}") from None
    stop = threading.Event()  # handlers set after ray.init, which installs its own
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in STOP_SIGNALS}
    try:
        serve.start(http_options={"host": host, "port": port})
        serve.run(build_application(options, replicas), name=APP_NAME, route_prefix="/", blocking=False)
        print(f"serving {options.bundle} on Ray Serve at http://{host}:{port} ({replicas} replica(s)); "
              "SIGTERM or Ctrl-C stops", file=sys.stderr, flush=True)
        while not stop.wait(1.0):
            pass
        serve.delete(APP_NAME)  # the replicas finish their requests and stop
    finally:
        ray.shutdown()  # a local instance goes with it: Serve's controller and proxy, then Ray's processes
        for sig, handler in previous.items():
            signal.signal(sig, handler)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def blocked_in_children(signals):
    """Block ``signals`` while the local Ray instance starts, so its processes inherit the block: a
    SIGTERM sent to the whole process group (``kill -TERM -PGID``, a service manager stopping the
    unit, Ctrl-C in a terminal) then reaches only ``mnm serve``, which deletes the application before
    it stops Ray. Without it, Ray's GCS died first and the deletion waited 60 s for it, then failed."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
