"""The torch-free runtime: bundles, backends, mix-and-match composition with caches, animation.

Importing ``mnm.runtime`` is cheap (numpy, onnxruntime and OpenCV load with the names below, on
first use) and never imports torch. The embedding API::

    from mnm.runtime import Pipeline
    pipe = Pipeline("bundle/")                      # backend="auto", max_batch=16
    image = pipe.mix(background="a.jpg", pose="b.jpg", shape="code:3", texture="c.jpg")
    grid = pipe.grid(background=["a.jpg", "d.jpg"], texture=["c.jpg", "random"]).image()
    animator = pipe.animator("a.jpg", mode="code"); frame_out = animator.frame(frame_rgb)
"""

from __future__ import annotations

_LAZY = {
    "Bundle": "mnm.runtime.bundle",
    "Pipeline": "mnm.runtime.pipeline",
    "Animator": "mnm.runtime.animator",
    "Mix": "mnm.runtime.requests",
    "Rendered": "mnm.runtime.results",
    "Grid": "mnm.runtime.results",
    "Factor": "mnm.runtime.requests",
    "parse_factor": "mnm.runtime.requests",
    "create_backend": "mnm.runtime.backends",
    "probe_backends": "mnm.runtime.backends",
}
_RENAMED = {"create_backend": "create", "probe_backends": "probe"}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), _RENAMED.get(name, name))
    raise AttributeError(f"module 'mnm.runtime' has no attribute {name!r}")
