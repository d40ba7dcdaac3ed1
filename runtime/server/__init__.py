"""``mnm serve``: the runtime as an HTTP service with cross-request batching (the ``serve`` extra).

One job per module: ``app`` assembles the FastAPI application, ``routes`` and ``animate`` are the
endpoints, ``models`` the typed bodies, ``inputs`` reads forms and JSON and decodes uploads,
``operations`` computes on worker threads, ``service`` holds the pipeline and workers, ``batching``
gathers graph runs across requests, ``limits`` bounds the queue and bodies, ``metrics`` is
Prometheus, ``errors`` turns exceptions into JSON, ``openapi`` documents form-or-JSON bodies, and
``ray_serve`` / ``ray_batching`` deploy the same app on Ray Serve. docs/server.md has the design.
Nothing here imports torch; importing ``mnm.runtime`` does not import this package.
"""
